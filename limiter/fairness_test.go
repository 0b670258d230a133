package limiter

import (
	"errors"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
)

func TestWaitersAreServedInArrivalOrder(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// Two Semaphore values on two clients stand for two processes.
		other := b.Client.Options()
		c2 := redistestClient(t, other)
		s1 := newSem(t, b, "fifo", 1, nil)
		s2, _ := New(c2, "fifo", 1, &Options{Prefix: b.Prefix})
		hold := mustAcquire(t, s1)
		const n = 6
		chans := make([]<-chan result, n)
		for i := range n {
			s := s1
			if i%2 == 1 {
				s = s2
			}
			chans[i] = acquireAsync(t.Context(), s)
			waitingIs(t, s1, i+1)
		}
		// A newcomer never overtakes a live waiter.
		if _, err := s2.TryAcquire(t.Context()); !errors.Is(err, ErrNoSlot) {
			t.Fatalf("TryAcquire overtook the queue: %v", err)
		}
		mustRelease(t, hold)
		for i := range n {
			r := recv(t, chans[i], 5*time.Second)
			if r.err != nil {
				t.Fatalf("waiter %d: %v", i, r.err)
			}
			for j := i + 1; j < n; j++ {
				notYet(t, chans[j], 0)
			}
			mustRelease(t, r.p)
		}
	})
}

func TestLargeWaiterAtHeadIsNotStarved(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "weighted", 4, nil)
		small := []*Permit{mustAcquire(t, s), mustAcquire(t, s), mustAcquire(t, s)}
		big := acquireAsync(t.Context(), s, WithWeight(3))
		waitingIs(t, s, 1)
		smallWaiter := acquireAsync(t.Context(), s)
		waitingIs(t, s, 2)
		// One slot is free, but the head needs three: the small waiter
		// behind it must not take the free slot.
		if _, err := s.TryAcquire(t.Context()); !errors.Is(err, ErrNoSlot) {
			t.Fatalf("TryAcquire passed a queued large waiter: %v", err)
		}
		mustRelease(t, small[0])
		notYet(t, smallWaiter, 300*time.Millisecond)
		notYet(t, big, 0)
		mustRelease(t, small[1])
		r := recv(t, big, 5*time.Second)
		if r.err != nil || r.p.Weight() != 3 {
			t.Fatalf("large waiter: %v", r.err)
		}
		notYet(t, smallWaiter, 100*time.Millisecond) // 3 + 1 held = limit
		mustRelease(t, small[2])
		if r := recv(t, smallWaiter, 5*time.Second); r.err != nil {
			t.Fatal(r.err)
		} else {
			mustRelease(t, r.p)
		}
		mustRelease(t, r.p)
	})
}

func TestDeadWaiterLeavesQueueAfterWaiterTTL(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "deadwaiter", 1, &Options{SleepDelay: 20 * time.Millisecond, WaiterTTL: 300 * time.Millisecond})
		hold := mustAcquire(t, s)
		// A waiter queued by a process that then died: queued and
		// heartbeated once, never polled.
		cfg, _ := s.acquireConfig(nil)
		if r, err := s.callAcquire(t.Context(), "deadproc.waiter.1", cfg, acquireCall{mode: modeWait, beat: true}); err != nil || r.status != statusQueued {
			t.Fatalf("queue dead waiter: %+v %v", r, err)
		}
		live := acquireAsync(t.Context(), s)
		waitingIs(t, s, 2)
		start := time.Now()
		mustRelease(t, hold)
		// The slot goes to the dead head first (its grant is bounded by its
		// waiter expiry), then on to the live waiter.
		r := granted(t, live, 5*time.Second)
		if el := time.Since(start); el > 300*time.Millisecond+time.Second {
			t.Fatalf("dead waiter blocked the queue for %v", el)
		}
		mustRelease(t, r.p)
	})
}

func TestWaitersOfDeadProcessesLockNothing(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// Limit 2, one slot held; a waiter of weight 2 (which does not fit)
		// queued by a process that then died. Once its heartbeat expired,
		// Locked, Info and TryAcquire must agree that a slot is free.
		s := newSem(t, b, "deadlock", 2, &Options{SleepDelay: 20 * time.Millisecond, WaiterTTL: 200 * time.Millisecond})
		hold := mustAcquire(t, s)
		cfg := acquireConfig{weight: 2}
		if r, err := s.callAcquire(t.Context(), "gone.waiter.2", cfg, acquireCall{mode: modeWait, beat: true}); err != nil || r.status != statusQueued {
			t.Fatalf("queue the dead waiter: %+v %v", r, err)
		}
		// The dead waiter's process is not s's: the heartbeat it made is
		// for process "gone".
		if info := mustInfo(t, s); info.Waiting != 1 {
			t.Fatalf("while its process lives: %+v", info)
		}
		wait.Until(t, 2*time.Second, "the dead waiter to stop counting", func() bool { return mustInfo(t, s).Waiting == 0 })
		if locked, err := s.Locked(t.Context()); err != nil || locked {
			t.Fatalf("Locked = %v, %v; want false: a slot is free and nobody live waits", locked, err)
		}
		p, err := s.TryAcquire(t.Context())
		if err != nil {
			t.Fatalf("TryAcquire: %v", err)
		}
		mustRelease(t, p)
		mustRelease(t, hold)
	})
}

func TestAWaiterQueuedWithoutAHeartbeatAfterIdlenessIsServed(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// The semaphore goes idle between two waits of one process; the
		// second waiter queues without a heartbeat (the process heartbeated
		// lately) and must not be taken for a dead process's.
		s := newSem(t, b, "idlebeat", 1, &Options{SleepDelay: 5 * time.Second, WaiterTTL: 20 * time.Second})
		other := newSem(t, b, "idlebeat", 1, nil)
		for round := range 3 {
			hold := mustAcquire(t, other)
			ch := acquireAsync(t.Context(), s)
			wait.Until(t, 2*time.Second, "the waiter to queue", func() bool {
				return b.Client.ZCard(t.Context(), s.keys.keys[2]).Val() == 1
			})
			mustRelease(t, hold)
			r := granted(t, ch, 3*time.Second)
			mustRelease(t, r.p) // idle now
			if info := mustInfo(t, s); info.Held != 0 || info.Waiting != 0 {
				t.Fatalf("round %d: not idle: %+v", round, info)
			}
		}
	})
}
