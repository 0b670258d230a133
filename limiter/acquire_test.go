package limiter

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
)

func TestAcquireUpToLimitThenTryFails(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "api", 3, nil)
		var ps []*Permit
		for range 3 {
			ps = append(ps, mustAcquire(t, s))
		}
		if _, err := s.TryAcquire(t.Context()); !errors.Is(err, ErrNoSlot) {
			t.Fatalf("TryAcquire on a full semaphore: got %v, want ErrNoSlot", err)
		}
		locked, err := s.Locked(t.Context())
		if err != nil || !locked {
			t.Fatalf("Locked = %v, %v; want true", locked, err)
		}
		info := mustInfo(t, s)
		if info.Held != 3 || info.Free != 0 || info.Waiting != 0 || len(info.Holders) != 3 {
			t.Fatalf("info = %+v", info)
		}
		mustRelease(t, ps[0])
		locked, _ = s.Locked(t.Context())
		if locked {
			t.Fatal("Locked after a release: want false")
		}
		p, err := s.TryAcquire(t.Context())
		if err != nil {
			t.Fatalf("TryAcquire after release: %v", err)
		}
		for _, p := range append(ps[1:], p) {
			mustRelease(t, p)
		}
		if info := mustInfo(t, s); info.Held != 0 || info.Free != 3 {
			t.Fatalf("after releasing all: %+v", info)
		}
	})
}

func TestFencesStrictlyIncrease(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "fence", 2, nil)
		var last int64
		for i := range 20 {
			var p *Permit
			var err error
			if i%2 == 0 {
				p, err = s.Acquire(t.Context())
			} else {
				p, err = s.TryAcquire(t.Context())
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Fence() <= last {
				t.Fatalf("fence %d after %d: not increasing", p.Fence(), last)
			}
			last = p.Fence()
			mustRelease(t, p)
		}
		// Handed-over grants (through the queue) get fences too.
		hold := mustAcquire(t, s, WithWeight(2))
		ch := acquireAsync(t.Context(), s)
		waitingIs(t, s, 1)
		mustRelease(t, hold)
		r := recv(t, ch, 5*time.Second)
		if r.err != nil || r.p.Fence() <= hold.Fence() {
			t.Fatalf("handed-over grant: fence %v err %v, want > %d", r.p, r.err, hold.Fence())
		}
		if got := mustInfo(t, s).Fence; got != r.p.Fence() {
			t.Fatalf("Info.Fence = %d, want last issued %d", got, r.p.Fence())
		}
		mustRelease(t, r.p)
	})
}

func TestTryAcquireNeverQueuesOrOvertakes(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "try", 2, nil)
		big := mustAcquire(t, s, WithWeight(2))
		ch := acquireAsync(t.Context(), s, WithWeight(2))
		waitingIs(t, s, 1)
		if _, err := s.TryAcquire(t.Context()); !errors.Is(err, ErrNoSlot) {
			t.Fatalf("TryAcquire: %v, want ErrNoSlot", err)
		}
		if n := mustInfo(t, s).Waiting; n != 1 {
			t.Fatalf("TryAcquire queued itself: waiting = %d", n)
		}
		mustRelease(t, big)
		r := granted(t, ch, 5*time.Second)
		mustRelease(t, r.p)
	})
}

func TestAcquireErrorsTellTimeoutCancelAndDeadlineApart(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "errs", 1, nil)
		hold := mustAcquire(t, s)
		defer mustRelease(t, hold)

		_, err := s.Acquire(t.Context(), WithTimeout(100*time.Millisecond))
		if !errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			t.Fatalf("own timeout: got %v, want ErrTimeout alone", err)
		}

		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(100*time.Millisecond, cancel)
		_, err = s.Acquire(ctx)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
			t.Fatalf("cancel: got %v, want context.Canceled", err)
		}

		ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
		defer cancel()
		_, err = s.Acquire(ctx)
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("ctx deadline: got %v, want ErrTimeout and DeadlineExceeded", err)
		}

		// Options.AcquireTimeout is the default; WithTimeout overrides it.
		s2 := newSem(t, b, "errs", 1, &Options{AcquireTimeout: 50 * time.Millisecond})
		start := time.Now()
		if _, err := s2.Acquire(t.Context()); !errors.Is(err, ErrTimeout) {
			t.Fatalf("default timeout: %v", err)
		}
		if _, err := s2.Acquire(t.Context(), WithTimeout(400*time.Millisecond)); !errors.Is(err, ErrTimeout) {
			t.Fatalf("overridden timeout: %v", err)
		}
		if el := time.Since(start); el < 400*time.Millisecond {
			t.Fatalf("override ignored: both acquires took only %v", el)
		}
		if info := mustInfo(t, s); info.Waiting != 0 || info.Held != 1 {
			t.Fatalf("failed acquires left state behind: %+v", info)
		}
	})
}

func TestReleaseTwiceIsNoOpAndCannotRaiseCapacity(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "twice", 2, nil)
		p1 := mustAcquire(t, s)
		mustRelease(t, p1)
		if err := p1.Release(t.Context()); err != nil {
			t.Fatalf("second Release: %v, want nil", err)
		}
		// A stale permit copy releasing again (as a buggy caller might, or
		// a client that sent the call again after a lost reply) must not
		// free a slot it does not hold; while its lease would still be live,
		// it is the same release run twice, which succeeds.
		p2 := mustAcquire(t, s)
		p3 := mustAcquire(t, s)
		stale := s.newPermit(p1.token, acquireConfig{weight: 1}, p1.fence, time.Now(), time.Hour, true)
		if err := stale.Release(t.Context()); err != nil {
			t.Fatalf("releasing a token that was released already: %v, want nil", err)
		}
		expired := s.newPermit(p1.token, acquireConfig{weight: 1}, p1.fence, time.Now().Add(-time.Hour), time.Minute, true)
		if err := expired.Release(t.Context()); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("releasing a token whose lease ran out: %v, want ErrLeaseLost", err)
		}
		if _, err := s.TryAcquire(t.Context()); !errors.Is(err, ErrNoSlot) {
			t.Fatalf("capacity rose above the limit: %v", err)
		}
		if info := mustInfo(t, s); info.Held != 2 {
			t.Fatalf("held = %d, want 2", info.Held)
		}
		mustRelease(t, p2)
		mustRelease(t, p3)
	})
}

func TestWakeOnReleaseWithoutPolling(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// The safety-net poll runs every 10 s here, so a prompt hand-over can
		// only come from the releasing script's Pub/Sub grant.
		s := newSem(t, b, "wake", 1, &Options{SleepDelay: 10 * time.Second, WaiterTTL: 30 * time.Second})
		hold := mustAcquire(t, s)
		// Let the process's subscription come up once, so the measured
		// hand-over is the steady state.
		warm := acquireAsync(t.Context(), s, WithTimeout(50*time.Millisecond))
		if r := recv(t, warm, 5*time.Second); !errors.Is(r.err, ErrTimeout) {
			t.Fatalf("warm-up: %v", r.err)
		}
		for i := range 5 {
			ch := acquireAsync(t.Context(), s)
			waitingIs(t, s, 1)
			start := time.Now()
			mustRelease(t, hold)
			r := granted(t, ch, 2*time.Second)
			if el := time.Since(start); el > time.Second {
				t.Fatalf("round %d: hand-over took %v", i, el)
			}
			hold = r.p
		}
		mustRelease(t, hold)
	})
}

func TestManyWaitersShareFewConnections(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "many", 1, nil)
		hold := mustAcquire(t, s)
		const n = 300
		var wg sync.WaitGroup
		var mu sync.Mutex
		var granted int
		for range n {
			wg.Go(func() {
				p, err := s.Acquire(t.Context(), WithTimeout(30*time.Second))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				granted++
				mu.Unlock()
				_ = p.Release(context.Background())
			})
		}
		waitingIs(t, s, n)
		// 300 waiters wait on one Pub/Sub connection and a shared poll; the
		// pool (64 connections) would be exhausted by blocking pops.
		wait.Until(t, 2*time.Second, "pooled connections to go idle", func() bool {
			st := b.Client.PoolStats()
			return st.TotalConns-st.IdleConns <= 2
		})
		mustRelease(t, hold)
		wg.Wait()
		if granted != n {
			t.Fatalf("granted %d of %d", granted, n)
		}
	})
}
