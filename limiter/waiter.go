package limiter

import (
	"context"
	"sync"
	"time"
)

// waiter is one Acquire queued in Redis by this process.
type waiter struct {
	token string
	cfg   acquireConfig
	ch    chan grant // the first grant wins: from Pub/Sub or from a poll

	mu  sync.Mutex
	err error // the last poll's Redis error, nil after a successful poll

	// requeueMu orders requeue against Acquire's return, so that a waiter
	// that was granted or gave up is never put back in the queue.
	requeueMu sync.Mutex
	gone      bool // Acquire has returned or is giving up
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

// addWaiter queues w for the safety-net poller, starting the poller when w is
// this semaphore's first local waiter. hint is the time until the earliest
// lease expires (negative for none): a poll then hands that slot on.
func (s *Semaphore) addWaiter(w *waiter, hint time.Duration) {
	s.mu.Lock()
	s.waiters[w.token] = w
	start := !s.polling
	s.polling = true
	s.mu.Unlock()
	if start {
		go s.pollLoop(hint)
	}
}

// removeWaiter marks w as finished, so that no poll queues it again, and
// stops polling for it.
func (s *Semaphore) removeWaiter(w *waiter) {
	w.requeueMu.Lock()
	w.gone = true
	w.requeueMu.Unlock()
	s.mu.Lock()
	delete(s.waiters, w.token)
	s.mu.Unlock()
}

// poke asks the poller for an early poll.
func (s *Semaphore) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// pollLoop runs while this semaphore has local waiters. Each round is one
// Redis call for all of them: it heartbeats them, reaps expired leases,
// hands free slots on, and reports grants whose Pub/Sub message was lost.
// It polls every SleepDelay (the smallest asked for), and also right when
// the earliest lease is due to expire, so an expired lease is handed on at
// once rather than a poll interval later.
func (s *Semaphore) pollLoop(hint time.Duration) {
	timer := time.NewTimer(s.nextPoll(hint))
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-s.kick:
		}
		ws := s.snapshot()
		if ws == nil {
			return
		}
		hint = s.poll(ws)
		timer.Reset(s.nextPoll(hint))
	}
}

// snapshot returns the local waiters, or nil after marking the poller stopped
// when there are none.
func (s *Semaphore) snapshot() []*waiter {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.waiters) == 0 {
		s.polling = false
		return nil
	}
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

// poll runs one safety-net round for ws and returns the time until the
// earliest lease expires (negative for none, or on error).
func (s *Semaphore) poll(ws []*waiter) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.WaiterTTL)
	defer cancel()
	args := make([]any, 0, 3+len(ws))
	args = append(args, s.keys.channel, s.limit, s.opts.WaiterTTL.Milliseconds())
	for _, w := range ws {
		args = append(args, w.token)
	}
	res, err := scriptPoll.Run(ctx, s.rdb, s.keys.keys, args...).Int64Slice()
	if err != nil || len(res) != 1+3*len(ws) {
		for _, w := range ws {
			w.setErr(err)
		}
		return -1
	}
	for i, w := range ws {
		w.setErr(nil)
		status, fence, lease := res[1+3*i], res[2+3*i], res[3+3*i]
		switch status {
		case 1:
			offer(w.ch, grant{fence: fence, lease: ms(lease)})
		case -1:
			s.requeue(ctx, w)
		}
	}
	return ms(res[0])
}

// requeue puts back a waiter that expired from the queue (its heartbeats
// failed for a WaiterTTL); it joins at the tail.
func (s *Semaphore) requeue(ctx context.Context, w *waiter) {
	w.requeueMu.Lock()
	defer w.requeueMu.Unlock()
	if w.gone {
		return
	}
	r, err := s.callAcquire(ctx, w.token, w.cfg, "wait")
	switch {
	case err != nil:
		w.setErr(err)
	case r.granted:
		offer(w.ch, grant{fence: r.fence, lease: r.lease})
	case r.rejected:
		offer(w.ch, grant{})
	}
}
