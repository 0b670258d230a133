package limiter

import (
	"errors"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/redistest"
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
		// A waiter queued by a process that then died: queued, never polled.
		cfg, _ := s.acquireConfig(nil)
		if r, err := s.callAcquire(t.Context(), "dead-waiter", cfg, "wait"); err != nil || r.granted {
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
