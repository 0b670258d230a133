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
	lost   chan struct{}

	ctx    context.Context // cancelled by Release, to cut a renewal short
	cancel context.CancelFunc

	mu       sync.Mutex
	timer    *time.Timer // the next renewal
	expiry   *time.Timer // closes Lost at deadline, whatever a renewal is doing
	deadline time.Time   // when this process must stop: the lease's end, less a margin
	end      time.Time   // the lease's end: Redis may give the slot on after it
	stopped  bool        // no more renewals: Release began, or the lease is lost
	taken    bool        // the grant was taken up: no notice or claim of it is left
	isLost   bool
	released bool

	// releaseMu makes a second Release wait for the first one's outcome.
	releaseMu sync.Mutex
}

// Token returns the permit's unique holder ID, as shown by [Semaphore.Info].
func (p *Permit) Token() string { return p.token }

// Fence returns the fencing token: strictly greater than that of every
// permit granted before it by the same semaphore. Every fence is also at
// least the Redis server's clock in microseconds when it was granted, so
// fences keep rising across a restart that lost all the data or only the
// last grants (a failover to a replica that missed them), as long as that
// clock moved forward and grants did not outrun a million a second. Pass
// it to a downstream system so that it can reject a stale holder whose
// lease was lost.
func (p *Permit) Fence() int64 { return p.fence }

// Weight returns the number of slots the permit holds.
func (p *Permit) Weight() int { return p.weight }

// Lost returns a channel that is closed when the permit's lease is lost: a
// renewal found the lease expired, or renewals failed until only a tenth of
// the lease was left by this process's clock (that tenth is the holder's
// time to stop before Redis can give the slot to someone else). It is never
// closed after a successful [Permit.Release].
func (p *Permit) Lost() <-chan struct{} { return p.lost }

// newPermit registers the permit and schedules its first renewal. The
// lease is surely live until sent + lease: sent is when the request that
// granted or last renewed it was sent (by this process's clock), and lease
// the lease Redis counted from a moment after that. taken says the grant
// needs no taking up: it has a full lease, and no notice or claim of it is
// left. One that is not taken up (a hand-over's short lease) is renewed
// halfway to its deadline, so that a permit released before then costs no
// renewal.
func (s *Semaphore) newPermit(token string, cfg acquireConfig, fence int64, sent time.Time, lease time.Duration, taken bool) *Permit {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Permit{
		sem:      s,
		token:    token,
		fence:    fence,
		weight:   cfg.weight,
		lost:     make(chan struct{}),
		ctx:      ctx,
		cancel:   cancel,
		deadline: localDeadline(sent, lease),
		end:      sent.Add(lease),
		taken:    taken,
	}
	s.mu.Lock()
	s.permits[token] = p
	s.mu.Unlock()
	first := s.opts.RenewInterval
	if !taken {
		first = min(first, time.Until(p.deadline)/2)
	}
	p.mu.Lock()
	p.timer = time.AfterFunc(first, p.renewOnce)
	p.expiry = time.AfterFunc(time.Until(p.deadline), p.expire)
	p.mu.Unlock()
	return p
}

// localDeadline is when a lease that Redis counted from a moment after sent
// surely still runs, less a tenth of it: the holder is told to stop (Lost)
// that long before Redis can hand the slot to someone else, so that its
// last call can end first.
func localDeadline(sent time.Time, lease time.Duration) time.Time {
	return sent.Add(lease - lease/10)
}

// expire closes Lost when the deadline passed without a renewal, even while
// a renewal call is still stuck on a stalled connection.
func (p *Permit) expire() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	if left := time.Until(p.deadline); left > 0 {
		p.expiry.Reset(left)
		return
	}
	p.loseLocked()
}

// renewOnce renews the lease and schedules the next renewal: after
// RenewInterval, or sooner after a failure. It gives up when a renewal finds
// the lease gone, or when renewals failed until the lease ran out.
func (p *Permit) renewOnce() {
	s := p.sem
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	p.mu.Lock()
	wait := min(s.opts.RenewInterval, max(time.Until(p.deadline), time.Millisecond))
	p.mu.Unlock()
	sent := time.Now()
	ctx, cancel := context.WithTimeout(p.ctx, wait)
	lease, _, err := s.renewLease(ctx, p.token)
	cancel()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return
	}
	switch {
	case err == nil && lease > 0:
		p.deadline, p.end, p.taken = localDeadline(sent, lease), sent.Add(lease), true
		p.expiry.Reset(time.Until(p.deadline))
		p.timer.Reset(s.opts.RenewInterval)
	case err == nil || !time.Now().Before(p.deadline):
		p.loseLocked()
	default:
		p.timer.Reset(min(s.opts.RenewInterval/4+time.Millisecond, time.Until(p.deadline)))
	}
}

// loseLocked stops renewals and closes Lost. The poller keeps counting the
// permit as taken up until its lease has surely ended, so that it never
// gives the slot on during the margin its holder has to stop.
func (p *Permit) loseLocked() {
	p.stopped = true
	p.timer.Stop()
	p.expiry.Stop()
	if !p.isLost {
		p.isLost = true
		close(p.lost)
	}
	time.AfterFunc(time.Until(p.end), func() { p.sem.forget(p.token) })
}

func (s *Semaphore) forget(token string) {
	s.mu.Lock()
	delete(s.permits, token)
	s.mu.Unlock()
}

// Release gives the slot back and hands it to the next waiter. Calling it
// again after it succeeded is a no-op that returns nil, and so is a call
// that Redis ran twice (a client's retry after a lost reply).
//
// It returns [ErrLeaseLost] when the lease had been lost (the slot may have
// gone to someone else; Release never frees another holder's slot), also
// when [Permit.Lost] was closed before, and a
// wrapped Redis error when Redis failed: the permit then stays releasable,
// and its slot comes back by itself one lease later.
func (p *Permit) Release(ctx context.Context) error {
	p.releaseMu.Lock()
	defer p.releaseMu.Unlock()
	p.mu.Lock()
	if p.released {
		p.mu.Unlock()
		return nil
	}
	p.stopped = true
	p.timer.Stop()
	p.expiry.Stop()
	taken := p.taken
	p.mu.Unlock()
	p.cancel()
	s := p.sem
	status, born, err := s.callRelease(ctx, p.token, taken)
	if err != nil {
		return s.wrap("release", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.released = true
	s.forget(p.token)
	// Nothing to free: the lease had run out, Redis lost the state since
	// the grant (a new state's fence floor is above the permit's fence), or
	// this very release ran once before and its reply was lost (go-redis
	// sends a script again after a network error). Only the last is a
	// success, and only it is possible when the lease was surely live when
	// the reply came (so also when the call ran) and the state is the
	// permit's own.
	live := !p.isLost && time.Now().Before(p.deadline)
	if (status == 1 && !p.isLost) || (status == -1 && live && born < p.fence) {
		return nil
	}
	p.loseLocked()
	return s.wrap("release", ErrLeaseLost)
}
