package limiter

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// grant is what a waiter receives: a slot (fence > 0), or a rejection
// (fence 0) when its weight no longer fits under the limit.
type grant struct {
	fence int64
	lease time.Duration
}

// hubLinger is how long a hub keeps its subscription after its last waiter
// left, so that bursts of contention do not pay for a new SUBSCRIBE each time.
const hubLinger = 30 * time.Second

// A hub multiplexes every waiter of one process on one Redis client and
// prefix onto one Pub/Sub connection. Grants name the waiter's token, which
// is unique, so the hub routes them without knowing the semaphore. A hub
// leaves the process-wide map when it stops (idle, or its client closed),
// so closed clients are not kept alive by it.
type hub struct {
	rdb     redis.UniversalClient
	channel string

	mu       sync.Mutex
	waiters  map[string]func(grant)
	ps       *redis.PubSub
	ready    chan struct{} // closed once the subscription is confirmed
	idle     *time.Timer   // checks, once per hubLinger, whether to stop
	lastUsed time.Time
}

type hubKey struct {
	rdb     redis.UniversalClient
	channel string
}

var (
	hubsMu sync.Mutex
	hubs   = map[hubKey]*hub{}
)

func hubFor(rdb redis.UniversalClient, channel string) *hub {
	hubsMu.Lock()
	defer hubsMu.Unlock()
	k := hubKey{rdb, channel}
	h := hubs[k]
	if h == nil {
		h = &hub{rdb: rdb, channel: channel, waiters: map[string]func(grant){}}
		hubs[k] = h
	}
	return h
}

// register routes grants for token to deliver and starts the subscription
// if it is not running. It returns a channel that is closed once the
// subscription is confirmed; grants published before then may be missed,
// and the caller re-checks with a poll after it closes. deliver must not
// block.
func (h *hub) register(token string, deliver func(grant)) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.waiters[token] = deliver
	if h.ps == nil {
		h.ps = h.rdb.Subscribe(context.Background())
		h.ready = make(chan struct{})
		go h.run(h.ps, h.ready)
	}
	return h.ready
}

// unregister stops routing grants for token. The subscription stays up
// until no waiter has used it for hubLinger; one timer checks that, so an
// acquire that never waits costs no timer.
func (h *hub) unregister(token string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.waiters, token)
	h.lastUsed = time.Now()
	if h.ps != nil && h.idle == nil {
		h.idle = time.AfterFunc(hubLinger, h.stopIfIdle)
	}
}

func (h *hub) stopIfIdle() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if left := hubLinger - time.Since(h.lastUsed); len(h.waiters) > 0 || left > 0 {
		h.idle.Reset(max(left, time.Second))
		return
	}
	ps := h.ps
	h.ps, h.idle = nil, nil
	if ps != nil {
		_ = ps.Close()
	}
	forget(h)
}

// forget drops h from the process-wide map, unless a new hub took its
// place. The next hubFor makes a new one.
func forget(h *hub) {
	hubsMu.Lock()
	defer hubsMu.Unlock()
	k := hubKey{h.rdb, h.channel}
	if hubs[k] == h {
		delete(hubs, k)
	}
}

// run subscribes, then delivers grants until the PubSub is closed. go-redis
// reconnects and resubscribes on its own; grants published while it was
// away are found by the waiters' safety-net poll.
func (h *hub) run(ps *redis.PubSub, ready chan struct{}) {
	for {
		err := ps.Subscribe(context.Background(), h.channel)
		if err == nil {
			_, err = ps.Receive(context.Background())
		}
		if err == nil {
			break
		}
		if errors.Is(err, redis.ErrClosed) {
			h.closed(ps)
			close(ready)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	close(ready)
	for msg := range ps.Channel(redis.WithChannelHealthCheckInterval(5 * time.Second)) {
		h.dispatch(msg.Payload)
	}
	h.closed(ps)
}

// closed forgets h once ps is closed: by stopIfIdle, or because its client
// was closed.
func (h *hub) closed(ps *redis.PubSub) {
	h.mu.Lock()
	if h.ps == ps {
		h.ps = nil
	}
	h.mu.Unlock()
	forget(h)
}

// dispatch parses "token:fence:lease_ms ..." and hands each grant to its
// waiter, if it is in this process.
func (h *hub) dispatch(payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, item := range strings.Fields(payload) {
		token, rest, ok := strings.Cut(item, ":")
		if !ok {
			continue
		}
		deliver := h.waiters[token]
		if deliver == nil {
			continue
		}
		fenceStr, leaseStr, _ := strings.Cut(rest, ":")
		fence, err1 := strconv.ParseInt(fenceStr, 10, 64)
		lease, err2 := strconv.ParseInt(leaseStr, 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		deliver(grant{fence: fence, lease: time.Duration(lease) * time.Millisecond})
	}
}

// offer delivers g unless ch already holds a grant.
func offer(ch chan grant, g grant) {
	select {
	case ch <- g:
	default:
	}
}
