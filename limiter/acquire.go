package limiter

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Acquire blocks until a slot is granted, ctx is done or the acquire timeout
// ([Options.AcquireTimeout], or [WithTimeout]) passes. Waiters are served in
// arrival order across all processes.
//
// On success it returns a [Permit] whose lease is renewed until it is
// released. On failure it returns a nil permit and leaves no slot held and no
// waiter queued (a grant that raced with the failure is given back):
//   - [ErrTimeout] when the acquire timeout passed, joined with
//     ctx.Err() when ctx's deadline passed;
//   - ctx.Err() when ctx was cancelled;
//   - [ErrWeightAboveLimit] when the weight can never fit;
//   - a wrapped Redis error when the first call to Redis failed.
func (s *Semaphore) Acquire(ctx context.Context, opts ...AcquireOption) (*Permit, error) {
	cfg, err := s.acquireConfig(opts)
	if err != nil {
		return nil, s.wrap("acquire", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	if cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, cfg.timeout, ErrTimeout)
		defer cancel()
	}
	w := newWaiter(s.newToken(cfg.weight), cfg)
	ready := s.hub.register(w.token, func(g grant) { offer(w.ch, g) })
	defer s.hub.unregister(w.token)
	select {
	case <-ready:
		ready = nil // live before the first call: no grant can have been missed
	default:
	}
	s.track(w)
	defer s.untrack(w)
	for {
		p, err, next := s.askForSlot(ctx, w)
		switch next {
		case askDone:
			return p, err
		case askAgain:
			continue
		}
		g, err := s.awaitGrant(ctx, w, &ready)
		if err != nil {
			return nil, err
		}
		if g == nil {
			continue // dropped from the queue, or a failed call to retry
		}
		p, err = s.takeGrant(ctx, w, *g)
		if !errors.Is(err, errExpired) {
			return p, err
		}
		drain(w.ch) // the grant expired before it was seen: ask again
	}
}

// What Acquire does after askForSlot.
const (
	askWait  = iota // wait for a grant
	askAgain        // call again now
	askDone         // return the permit and error
)

// askForSlot makes w's queueing call: it takes a slot, or queues w (or
// finds it queued still). A failed call while w was queued before is
// retried later; a grant that expired before its reply came makes w ask
// again at once.
func (s *Semaphore) askForSlot(ctx context.Context, w *waiter) (p *Permit, err error, next int) {
	sent := time.Now()
	beat := s.beatDue(sent)
	r, err := s.callAcquire(ctx, w.token, w.cfg, acquireCall{mode: modeWait, beat: beat, hint: !s.isPolling()})
	switch {
	case err != nil && (!w.isQueued() || ctx.Err() != nil):
		s.leave(ctx, w)
		if ctx.Err() != nil {
			return nil, s.doneErr(ctx, err), askDone
		}
		return nil, s.wrap("acquire", err), askDone
	case err != nil:
		w.setErr(err)
		return nil, nil, askWait
	}
	s.deliver(r.grants)
	switch r.status {
	case statusRejected:
		s.leave(ctx, w) // it may still be queued from before
		return nil, s.wrap("acquire", fmt.Errorf("%w: weight %d, limit %d", ErrWeightAboveLimit, w.cfg.weight, r.limit)), askDone
	case statusGranted:
		p, err := s.hand(ctx, "acquire", w.token, w.cfg, r.fence, sent, r.lease, r.taken)
		if errors.Is(err, errExpired) {
			return nil, nil, askAgain // it expired before this process saw it
		}
		return p, s.acquireErr(ctx, err), askDone
	}
	w.setErr(nil)
	w.markQueued()
	if beat {
		s.noteBeat(sent, r.fence)
	}
	s.startPolling(r.hint)
	s.noteBorn(r.born)
	return nil, nil, askWait
}

// awaitGrant waits for a grant to w: from the reply of a release in this
// process, from Pub/Sub, or from the poll. It returns nil (and no error)
// when w must ask again, and Acquire's error when ctx ended (having left
// the queue).
func (s *Semaphore) awaitGrant(ctx context.Context, w *waiter, ready *<-chan struct{}) (*grant, error) {
	var retry <-chan time.Time
	if w.lastErr() != nil {
		retry = time.After(w.cfg.sleepDelay)
	}
	for {
		select {
		case g := <-w.ch:
			return &g, nil
		case <-*ready:
			*ready = nil
			s.poke() // grants published before the subscription was live
		case <-retry:
			return nil, nil
		case <-w.rejoin:
			return nil, nil
		case <-ctx.Done():
			s.leave(ctx, w)
			return nil, s.doneErr(ctx, w.lastErr())
		}
	}
}

// takeGrant turns a grant that reached a queued waiter into a permit. A
// rejection (fence 0) ends Acquire with ErrWeightAboveLimit. A live
// waiter's grant lasts until its process's heartbeat expiry; when a
// heartbeat that Redis ran before the grant proves that at least half a
// WaiterTTL of it is left, the permit is handed over now and taken up (its
// lease renewed) in the background before that half has passed; otherwise
// (an older grant, a long wait, a stalled connection) it is taken up first. It returns
// errExpired, having dropped the grant, when the grant had expired.
func (s *Semaphore) takeGrant(ctx context.Context, w *waiter, g grant) (*Permit, error) {
	if g.fence == 0 {
		s.leave(ctx, w) // clears the rejection's notice
		return nil, s.wrap("acquire", fmt.Errorf("%w: weight %d", ErrWeightAboveLimit, w.cfg.weight))
	}
	if until, ok := s.grantLiveUntil(g.fence); ok && time.Until(until) > s.opts.WaiterTTL/2 {
		return s.confirm(ctx, "acquire", s.newPermit(w.token, w.cfg, g.fence, until.Add(-s.opts.WaiterTTL), s.opts.WaiterTTL, false))
	}
	p, err := s.hand(ctx, "acquire", w.token, w.cfg, g.fence, time.Time{}, g.lease, false)
	return p, s.acquireErr(ctx, err)
}

// leave stops delivering to w and gives back whatever its token may hold,
// be queued for or have a notice of, when its Acquire gives up.
func (s *Semaphore) leave(ctx context.Context, w *waiter) {
	s.untrack(w)
	s.abandon(ctx, w.token)
}

// acquireErr is Acquire's error for a failed hand-over (already wrapped),
// or ctx's when ctx ended meanwhile.
func (s *Semaphore) acquireErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return s.doneErr(ctx, err)
	}
	return err
}

// errExpired says a grant expired before this process could use it.
var errExpired = errors.New("limiter: grant expired before it was taken up")

// hand turns a grant into a Permit, making sure the grant is still live: a
// grant whose reply or message came so late that less than half its lease
// is left by this process's clock (or whose sent time is zero) is first
// renewed, so that no caller starts work on a grant that has already
// expired and gone to someone else. A renewal also tells the fence of the
// grant token holds now, which the permit carries (a late duplicate
// message may have named an older one). taken says the grant needs no
// taking up (its lease is a full one, with no notice left). It returns
// errExpired, having given the slot back, when the grant had expired, and
// a wrapped Redis error (likewise) when a renewal failed.
func (s *Semaphore) hand(ctx context.Context, op, token string, cfg acquireConfig, fence int64, sent time.Time, lease time.Duration, taken bool) (*Permit, error) {
	for try := 0; time.Since(sent) > lease/2; try++ {
		if try == 3 {
			s.abandon(ctx, token)
			return nil, errExpired
		}
		sent = time.Now()
		var err error
		lease, fence, err = s.renewLease(ctx, token)
		if err != nil {
			s.abandon(ctx, token)
			return nil, s.wrap(op, err)
		}
		if lease == 0 {
			return nil, errExpired
		}
		taken = true
	}
	return s.confirm(ctx, op, s.newPermit(token, cfg, fence, sent, lease, taken))
}

// doneErr is Acquire's error once ctx is done: ErrTimeout for its own
// timeout (joined with the last Redis error, if the wait saw one), else ctx's.
func (s *Semaphore) doneErr(ctx context.Context, redisErr error) error {
	if context.Cause(ctx) != ErrTimeout {
		return ctxErr(ctx.Err())
	}
	if redisErr != nil && !errors.Is(redisErr, context.DeadlineExceeded) {
		return s.wrap("acquire", errors.Join(ErrTimeout, redisErr))
	}
	return s.wrap("acquire", ErrTimeout)
}
