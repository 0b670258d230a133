package limiter

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// waiter is one Acquire queued in Redis by this process. Only its own
// Acquire calls Redis for it; the poller and the hub only signal it.
type waiter struct {
	token  string
	cfg    acquireConfig
	ch     chan grant    // the first grant wins: from Pub/Sub or from a poll
	rejoin chan struct{} // w may have been dropped from the queue: queue again

	mu          sync.Mutex
	err         error     // the last poll's Redis error, nil after a successful poll
	queuedAt    time.Time // when the last call that left w queued was sent
	queuedFence int64     // the last fence issued when that call ran
	since       int64     // the incarnation of this value's process it queued under
}

func newWaiter(token string, cfg acquireConfig) *waiter {
	return &waiter{token: token, cfg: cfg, ch: make(chan grant, 1), rejoin: make(chan struct{}, 1)}
}

func (w *waiter) setErr(err error) {
	w.mu.Lock()
	w.err = err
	w.mu.Unlock()
}

func (w *waiter) lastErr() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// track makes w known to the safety-net poller before w's first call to
// Redis: from then on a grant to w's token is delivered to w, never given on
// as an orphan, even while that call's reply is still on its way.
func (s *Semaphore) track(w *waiter) {
	s.mu.Lock()
	s.waiters[w.token] = w
	s.mu.Unlock()
}

// startPolling starts the safety-net poller, once a tracked waiter is
// queued, unless it is running. hint is the time until the earliest lease
// expires (negative for none): a poll then hands that slot on.
func (s *Semaphore) startPolling(hint time.Duration) {
	s.mu.Lock()
	start := !s.polling
	s.polling = true
	s.mu.Unlock()
	if start {
		go s.pollLoop(hint)
	}
}

// queued records that a call sent at sent found w queued (or queued it),
// when fence was the last fencing token issued and since the incarnation of
// w's process. A grant with a greater fence was made after that call ran,
// and lives at least until its process's heartbeat expiry, which that call
// set to at least sent + WaiterTTL (by any clock running at this one's
// rate).
func (w *waiter) queued(sent time.Time, fence, since int64) {
	w.mu.Lock()
	w.queuedAt, w.queuedFence, w.since = sent, fence, since
	w.mu.Unlock()
}

func (w *waiter) isQueued() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.since != 0
}

// grantLiveUntil returns the time until which a grant to w with fence is
// surely live, and false when nothing can be said (an older grant).
func (s *Semaphore) grantLiveUntil(w *waiter, fence int64) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if fence <= w.queuedFence {
		return time.Time{}, false
	}
	return w.queuedAt.Add(s.opts.WaiterTTL), true
}

// removeWaiter stops polling for w: from then on a grant to its token that
// nobody took up is given on.
func (s *Semaphore) removeWaiter(w *waiter) {
	s.mu.Lock()
	delete(s.waiters, w.token)
	s.mu.Unlock()
}

// noteIncarnation takes the incarnation of this value's process reported
// by a call: by a queueing call, or by a poll. The process gets a new
// incarnation when its heartbeat lapsed, and Redis may then have dropped
// the waiters queued under the old one: when the report differs from the
// last one, each waiter queued under another incarnation is told to queue
// again, which costs one idempotent call for a waiter that was not dropped.
// A report that is out of date (a reply that was on its way while the
// process was revived) costs each waiter at most one more such call, and
// the next report puts it right; a report is never a reason to ask again
// by itself, so a value that went down in Redis (a clock stepped back)
// cannot make a waiter loop.
func (s *Semaphore) noteIncarnation(since int64) {
	var stale []*waiter
	s.mu.Lock()
	if since != s.since {
		s.since = since
		for _, w := range s.waiters {
			w.mu.Lock()
			if w.since != 0 && w.since != since {
				stale = append(stale, w)
			}
			w.mu.Unlock()
		}
	}
	s.mu.Unlock()
	for _, w := range stale {
		select {
		case w.rejoin <- struct{}{}:
		default:
		}
	}
}

// drain empties a waiter's grant channel.
func drain(ch chan grant) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// poke asks the poller for an early poll.
func (s *Semaphore) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// pollLoop runs while this semaphore value has queued waiters. Each round
// is one Redis call whose cost does not grow with the number of waiters: it
// heartbeats this value's proc (which keeps all its waiters queued), reaps
// expired leases, hands free slots on, and returns the grants to its
// waiters that none has taken up (their Pub/Sub message may have been
// lost). It polls every SleepDelay (the smallest asked for), and also right
// when the earliest lease is due to expire, so an expired lease is handed on
// at once rather than a poll interval later.
func (s *Semaphore) pollLoop(hint time.Duration) {
	timer := time.NewTimer(s.nextPoll(hint))
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-s.kick:
		}
		if !s.stillPolling() {
			return
		}
		hint = s.poll()
		timer.Reset(s.nextPoll(hint))
	}
}

// stillPolling reports whether there are queued waiters, marking the poller
// stopped when there are none.
func (s *Semaphore) stillPolling() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.waiters {
		if w.isQueued() {
			return true
		}
	}
	s.polling = false
	return false
}

func (s *Semaphore) snapshot() []*waiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := make([]*waiter, 0, len(s.waiters))
	for _, w := range s.waiters {
		ws = append(ws, w)
	}
	return ws
}

func (s *Semaphore) nextPoll(hint time.Duration) time.Duration {
	d := s.opts.SleepDelay
	s.mu.Lock()
	for _, w := range s.waiters {
		d = min(d, w.cfg.sleepDelay)
	}
	s.mu.Unlock()
	if hint >= 0 && hint+time.Millisecond < d {
		d = hint + time.Millisecond
	}
	return d
}

// poll runs one safety-net round and returns the time until the earliest
// lease expires (negative for none, or on error).
func (s *Semaphore) poll() time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.WaiterTTL)
	defer cancel()
	res, err := scriptPoll.Run(ctx, s.rdb, s.keys.keys, s.keys.channel, s.limit, s.opts.WaiterTTL.Milliseconds(), s.proc).Slice()
	if err == nil && (len(res) < 2 || (len(res)-2)%3 != 0) {
		err = fmt.Errorf("limiter: unexpected poll reply of %d items", len(res))
	}

	ws := s.snapshot()
	for _, w := range ws {
		w.setErr(err)
	}
	if err != nil {
		return -1
	}
	// After heartbeats failed for a WaiterTTL, or Redis lost its data,
	// this value's process has a new incarnation.
	s.noteIncarnation(asInt(res[1]))
	for i := 2; i < len(res); i += 3 {
		token, _ := res[i].(string)
		g := grant{fence: asInt(res[i+1]), lease: ms(asInt(res[i+2]))}
		s.mu.Lock()
		w, p := s.waiters[token], s.permits[token]
		s.mu.Unlock()
		switch {
		case w != nil:
			offer(w.ch, g)
		case p == nil:
			// Granted to (or rejected for) an acquire that has given up,
			// whose own attempt to leave the queue failed: give the slot on
			// (or drop the rejection's record).
			_ = scriptRelease.Run(ctx, s.rdb, s.keys.keys, s.keys.channel, s.limit, token).Err()
		}
	}
	return ms(asInt(res[0]))
}
