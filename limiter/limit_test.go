package limiter

import (
	"errors"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/redistest"
)

func TestSetLimitRaiseWakesWaiters(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "raise", 1, &Options{SleepDelay: 10 * time.Second, WaiterTTL: 30 * time.Second})
		hold := mustAcquire(t, s)
		a := acquireAsync(t.Context(), s)
		c := acquireAsync(t.Context(), s)
		waitingIs(t, s, 2)
		if err := s.SetLimit(t.Context(), 3); err != nil {
			t.Fatal(err)
		}
		ra, rc := recv(t, a, 2*time.Second), recv(t, c, 2*time.Second)
		if ra.err != nil || rc.err != nil {
			t.Fatal(ra.err, rc.err)
		}
		if info := mustInfo(t, s); info.Limit != 3 || info.Held != 3 {
			t.Fatalf("after raise: %+v", info)
		}
		for _, p := range []*Permit{hold, ra.p, rc.p} {
			mustRelease(t, p)
		}
	})
}

func TestSetLimitLowerRevokesNothingAndHoldsBackNewAcquires(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "lower", 3, nil)
		ps := []*Permit{mustAcquire(t, s), mustAcquire(t, s), mustAcquire(t, s)}
		// Another process created with a different limit sees the stored one.
		other := newSem(t, b, "lower", 10, nil)
		if err := other.SetLimit(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		info := mustInfo(t, s)
		if info.Limit != 1 || info.Held != 3 || info.Free != 0 {
			t.Fatalf("after lowering: %+v", info)
		}
		for _, p := range ps {
			select {
			case <-p.Lost():
				t.Fatal("lowering the limit revoked a permit")
			default:
			}
		}
		w := acquireAsync(t.Context(), s)
		waitingIs(t, s, 1)
		mustRelease(t, ps[0])
		notYet(t, w, 200*time.Millisecond) // 2 held, limit 1
		mustRelease(t, ps[1])
		notYet(t, w, 200*time.Millisecond) // 1 held, limit 1
		mustRelease(t, ps[2])
		r := granted(t, w, 5*time.Second)
		if _, err := other.TryAcquire(t.Context()); !errors.Is(err, ErrNoSlot) {
			t.Fatalf("stored limit 1 not enforced on a process created with 10: %v", err)
		}
		mustRelease(t, r.p)
	})
}

func TestStoredLimitWinsOverConstructor(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		first := newSem(t, b, "stored", 2, nil)
		p := mustAcquire(t, first)
		second := newSem(t, b, "stored", 5, nil)
		if info := mustInfo(t, second); info.Limit != 2 {
			t.Fatalf("limit = %d, want the stored 2", info.Limit)
		}
		mustRelease(t, p)
	})
}

func TestWeightAboveLimitIsRejected(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "heavy", 2, nil)
		if _, err := s.Acquire(t.Context(), WithWeight(3)); !errors.Is(err, ErrWeightAboveLimit) {
			t.Fatalf("weight 3 of limit 2: %v", err)
		}
		if _, err := s.TryAcquire(t.Context(), WithWeight(3)); !errors.Is(err, ErrWeightAboveLimit) {
			t.Fatalf("try weight 3 of limit 2: %v", err)
		}
		// A queued waiter whose weight no longer fits after the limit was
		// lowered is told so instead of blocking the queue forever.
		hold := mustAcquire(t, s)
		big := acquireAsync(t.Context(), s, WithWeight(2))
		waitingIs(t, s, 1)
		small := acquireAsync(t.Context(), s)
		waitingIs(t, s, 2)
		if err := s.SetLimit(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		if r := recv(t, big, 5*time.Second); !errors.Is(r.err, ErrWeightAboveLimit) {
			t.Fatalf("queued heavy waiter after lowering: %v", r.err)
		}
		mustRelease(t, hold)
		if r := recv(t, small, 5*time.Second); r.err != nil {
			t.Fatal(r.err)
		} else {
			mustRelease(t, r.p)
		}
	})
}
