package limiter

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// The modes of acquire.lua.
const (
	modeTry    = "try"
	modeCheck  = "check"
	modeWait   = "wait"
	modeTicket = "ticket"
)

// The statuses acquire.lua replies with.
const (
	statusRejected  = -1
	statusQueued    = 0
	statusGranted   = 1
	statusCheckFree = 2
)

// acquireCall is one call of acquire.lua.
type acquireCall struct {
	mode    string
	beat    bool          // the call heartbeats this value's process
	hint    bool          // ask when the earliest lease expires
	catch   time.Duration // ticket: how long this value catches it
	payload string        // ticket: what its owner is woken with
}

type acquireReply struct {
	status int64
	fence  int64         // the grant's fence, or the last one issued
	lease  time.Duration // granted: the lease left
	taken  bool          // granted: no notice or claim of the grant is left
	born   int64         // not granted: the state's fence floor
	hint   time.Duration // not granted: until the earliest lease expires; < 0 none
	limit  int64         // rejected: the limit
	grants []delivery
}

func (s *Semaphore) callAcquire(ctx context.Context, token string, cfg acquireConfig, c acquireCall) (acquireReply, error) {
	beat := "0"
	if c.beat {
		beat = strconv.FormatInt(s.opts.WaiterTTL.Milliseconds(), 10)
	}
	hint := ""
	if c.hint {
		hint = "hint"
	}
	res, err := scriptAcquire.Run(ctx, s.rdb, s.keys.keys, s.args(token, c.mode,
		s.opts.Lease.Milliseconds(), cfg.holder, beat, c.catch.Milliseconds(), c.payload, hint)...).Slice()
	if err != nil {
		return acquireReply{}, err
	}
	head, grants, err := parseReply(res, 4)
	if err != nil {
		return acquireReply{}, err
	}
	r := acquireReply{status: head[0], grants: grants}
	switch r.status {
	case statusGranted:
		r.fence, r.lease, r.taken = head[1], ms(head[2]), head[3] == 1
	case statusRejected:
		r.limit = head[1]
	default:
		r.fence, r.born, r.hint = head[1], head[2], ms(head[3])
	}
	return r, nil
}

// delivery is a grant (fence > 0) or a rejection (fence 0) that a script
// made or took on, for the process named recipient.
type delivery struct {
	token     string
	fence     int64
	lease     time.Duration
	recipient string
	payload   string
}

// parseReply splits a script's reply into its n leading integers and the
// grants that follow them (see finish in lua/common.lua).
func parseReply(res []any, n int) ([]int64, []delivery, error) {
	if len(res) < n || (len(res)-n)%5 != 0 {
		return nil, nil, fmt.Errorf("limiter: unexpected reply of %d items", len(res))
	}
	head := make([]int64, n)
	for i := range n {
		head[i] = asInt(res[i])
	}
	return head, parseGrants(res[n:]), nil
}

func parseGrants(res []any) []delivery {
	var out []delivery
	for i := 0; i+4 < len(res); i += 5 {
		token, _ := res[i].(string)
		recipient, _ := res[i+3].(string)
		payload, _ := res[i+4].(string)
		out = append(out, delivery{token: token, fence: asInt(res[i+1]), lease: ms(asInt(res[i+2])),
			recipient: recipient, payload: payload})
	}
	return out
}

// deliver hands each grant meant for this value to its live waiter or to
// the ticket it catches, and a ticket's grant that nobody here catches to
// OnReservation, on the calling goroutine: the call whose reply made the
// grant returns after OnReservation did. A grant to one of this value's tokens that nobody waits
// for any more (its Acquire gave up, and its attempt to leave failed) is
// given on.
func (s *Semaphore) deliver(grants []delivery) {
	for _, d := range grants {
		if d.recipient != s.proc {
			continue
		}
		g := grant{fence: d.fence, lease: d.lease}
		if isTicketToken(d.token) {
			s.ticketGrant(d.token, d.payload, g, true)
			continue
		}
		s.mu.Lock()
		w, p := s.waiters[d.token], s.permits[d.token]
		s.mu.Unlock()
		switch {
		case w != nil:
			offer(w.ch, g)
		case p == nil:
			go s.abandon(context.Background(), d.token)
		}
	}
}

func asInt(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case string:
		i, _ := strconv.ParseInt(n, 10, 64)
		return i
	}
	return 0
}
