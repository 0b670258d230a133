package limiter

import (
	"sync"
	"time"
)

// waiter is one Acquire queued in Redis by this process as a live waiter:
// it stays queued while its process heartbeats. Only its own Acquire calls
// Redis for it; the poller, the hub and the replies of other calls only
// signal it.
type waiter struct {
	token  string
	cfg    acquireConfig
	ch     chan grant    // the first grant wins: from Pub/Sub, a reply or a poll
	rejoin chan struct{} // w may have left the queue without a grant: ask again

	mu     sync.Mutex
	err    error // the last poll's Redis error, nil after a successful poll
	queued bool  // a call left w queued
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

func (w *waiter) markQueued() {
	w.mu.Lock()
	w.queued = true
	w.mu.Unlock()
}

func (w *waiter) isQueued() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.queued
}

// askAgain tells w's Acquire to call Redis again: w was dropped while its
// process had stopped heartbeating, or Redis lost the queue.
func (w *waiter) askAgain() {
	select {
	case w.rejoin <- struct{}{}:
	default:
	}
}

// track makes w known to the poller and to the replies of this value's
// calls before w's first call to Redis: from then on a grant to w's token
// is delivered to w, never given on as an orphan, even while that call's
// reply is still on its way.
func (s *Semaphore) track(w *waiter) {
	s.mu.Lock()
	s.waiters[w.token] = w
	s.mu.Unlock()
}

// untrack stops delivering to w: from then on a grant to its token that
// nobody took up is given on.
func (s *Semaphore) untrack(w *waiter) {
	s.mu.Lock()
	delete(s.waiters, w.token)
	s.mu.Unlock()
}

// noteBeat records a call that heartbeated this value's process.
func (s *Semaphore) noteBeat(sent time.Time, fence int64) {
	s.mu.Lock()
	if sent.After(s.beat.sent) {
		s.beat = beat{sent: sent, fence: fence}
	}
	s.mu.Unlock()
}

// beatDue reports whether a queueing call sent now should heartbeat: no
// heartbeat has surely kept this value's process alive in Redis for the
// next half WaiterTTL.
func (s *Semaphore) beatDue(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return now.Sub(s.beat.sent) > s.opts.WaiterTTL/2
}

// grantLiveUntil returns the time until which a grant with fence to one
// of this value's live waiters surely lasts, and false when nothing can be
// said: a grant lasts until its process's heartbeat expiry, which a
// heartbeat that Redis ran before the grant (one that saw a lower fence)
// set to at least its send time plus WaiterTTL.
func (s *Semaphore) grantLiveUntil(fence int64) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.beat.sent.IsZero() || fence <= s.beat.fence {
		return time.Time{}, false
	}
	return s.beat.sent.Add(s.opts.WaiterTTL), true
}

// noteBorn takes the fence floor of the state a reply came from. A new one
// means Redis lost the semaphore's state (a restart without persistence, a
// failover that lost writes): every queued waiter and caught ticket asks
// again, since its place may be gone.
func (s *Semaphore) noteBorn(born int64) {
	if born == 0 {
		return
	}
	var stale []*waiter
	var tickets []*Ticket
	s.mu.Lock()
	if s.born != 0 && born != s.born {
		s.beat = beat{} // the process's heartbeat went with the state
		for _, w := range s.waiters {
			stale = append(stale, w)
		}
		for _, t := range s.catching {
			tickets = append(tickets, t)
		}
	}
	s.born = born
	s.mu.Unlock()
	for _, w := range stale {
		w.askAgain()
	}
	for _, t := range tickets {
		t.askAgain()
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
