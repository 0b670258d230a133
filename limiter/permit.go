package limiter

import (
	"context"
	"sync"
	"time"
)

// Permit is a held slot (or [WithWeight] slots) of a [Semaphore]. Its lease
// is renewed in the background until [Permit.Release]; if renewals fail until
// the lease has run out, [Permit.Lost] is closed and the holder should stop
// using the resource. A Permit is safe for concurrent use.
type Permit struct {
	sem    *Semaphore
	token  string
	fence  int64
	weight int

	lost    chan struct{}
	stop    context.CancelFunc
	stopped chan struct{}

	mu       sync.Mutex
	deadline time.Time // local estimate of when the lease runs out
	isLost   bool
	released bool
}

// Token returns the permit's unique holder ID, as shown by [Semaphore.Info].
func (p *Permit) Token() string { return p.token }

// Fence returns the fencing token: strictly greater than that of every
// permit granted before it by the same semaphore. Pass it to a downstream
// system so that it can reject a stale holder whose lease was lost.
func (p *Permit) Fence() int64 { return p.fence }

// Weight returns the number of slots the permit holds.
func (p *Permit) Weight() int { return p.weight }

// Lost returns a channel that is closed when the permit's lease is lost: a
// renewal found the lease expired, or renewals failed until the lease ran
// out by this process's clock. It is never closed after a successful
// [Permit.Release].
func (p *Permit) Lost() <-chan struct{} { return p.lost }

// newPermit starts the keepalive. sent is when the granting request was sent
// (or the grant received), and lease the lease Redis reported remaining then.
// A permit handed over from the queue renews at once: its lease ran only to
// its waiter expiry.
func (s *Semaphore) newPermit(token string, cfg acquireConfig, fence int64, sent time.Time, lease time.Duration, renewNow bool) *Permit {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Permit{
		sem:      s,
		token:    token,
		fence:    fence,
		weight:   cfg.weight,
		lost:     make(chan struct{}),
		stop:     cancel,
		stopped:  make(chan struct{}),
		deadline: sent.Add(lease),
	}
	first := s.opts.RenewInterval
	if renewNow {
		first = 0
	}
	go p.keepalive(ctx, first)
	return p
}

// keepalive renews the lease every RenewInterval. After a failed renewal it
// retries sooner, and gives up when the lease has run out.
func (p *Permit) keepalive(ctx context.Context, next time.Duration) {
	defer close(p.stopped)
	s := p.sem
	timer := time.NewTimer(next)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		sent := time.Now()
		left, err := p.renew(ctx)
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		switch {
		case err == nil && left > 0:
			p.deadline = sent.Add(left)
			next = s.opts.RenewInterval
		case err == nil || !time.Now().Before(p.deadline):
			p.markLostLocked()
			p.mu.Unlock()
			return
		default:
			next = min(s.opts.RenewInterval/4+time.Millisecond, time.Until(p.deadline))
		}
		p.mu.Unlock()
		timer.Reset(next)
	}
}

func (p *Permit) renew(ctx context.Context) (time.Duration, error) {
	s := p.sem
	ctx, cancel := context.WithTimeout(ctx, s.opts.RenewInterval)
	defer cancel()
	n, err := scriptRenew.Run(ctx, s.rdb, s.keys.keys, s.keys.channel, s.limit, p.token, s.opts.Lease.Milliseconds()).Int64()
	return ms(n), err
}

func (p *Permit) markLostLocked() {
	if !p.isLost {
		p.isLost = true
		close(p.lost)
	}
}

// Release gives the slot back and hands it to the next waiter. Calling it
// again after it succeeded is a no-op that returns nil.
//
// It returns [ErrLeaseLost] when the lease had been lost (the slot may have
// gone to someone else; Release never frees another holder's slot), and a
// wrapped Redis error when Redis failed: the permit then stays releasable,
// and its slot comes back by itself one lease later.
func (p *Permit) Release(ctx context.Context) error {
	p.mu.Lock()
	if p.released {
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	p.stop()
	<-p.stopped
	s := p.sem
	n, err := scriptRelease.Run(ctx, s.rdb, s.keys.keys, s.keys.channel, s.limit, p.token).Int64()
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		return s.wrap("release", err)
	}
	p.released = true
	if n != 1 || p.isLost {
		p.markLostLocked()
		return s.wrap("release", ErrLeaseLost)
	}
	return nil
}
