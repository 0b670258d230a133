package limiter

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/redistest"
)

func TestHeldPermitRenewsPastItsLease(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "renew", 1, &Options{Lease: 300 * time.Millisecond})
		p := mustAcquire(t, s)
		time.Sleep(time.Second) // three leases: only renewals keep it
		select {
		case <-p.Lost():
			t.Fatal("lease lost while renewals work")
		default:
		}
		if _, err := s.TryAcquire(t.Context()); !errors.Is(err, ErrNoSlot) {
			t.Fatalf("slot free while renewed: %v", err)
		}
		if info := mustInfo(t, s); len(info.Holders) != 1 || info.Holders[0].LeaseLeft <= 0 {
			t.Fatalf("holders: %+v", info.Holders)
		}
		mustRelease(t, p)
	})
}

func TestCrashedHoldersSlotReturnsAfterLease(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		const lease = 400 * time.Millisecond
		s := newSem(t, b, "crash", 1, &Options{Lease: lease, SleepDelay: 5 * time.Second, WaiterTTL: 20 * time.Second})
		dead := mustAcquire(t, s)
		crash(dead)
		start := time.Now()
		// The waiter is handed the slot when the lease expires: the poller
		// wakes at the expiry it was told, not at its 5 s poll interval.
		r := recv(t, acquireAsync(t.Context(), s), 5*time.Second)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if el := time.Since(start); el > lease+500*time.Millisecond {
			t.Fatalf("slot came back after %v, lease %v", el, lease)
		}
		if err := dead.Release(t.Context()); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("releasing an expired permit: %v, want ErrLeaseLost", err)
		}
		// That release must not have freed the new holder's slot.
		if info := mustInfo(t, s); info.Held != 1 || info.Holders[0].Token != r.p.Token() {
			t.Fatalf("after stale release: %+v", info)
		}
		mustRelease(t, r.p)
	})
}

func TestRenewalFailuresReportLeaseLoss(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		f := redistest.NewFaulty(b.Client, nil)
		s, err := New(f, "lose", 1, &Options{Prefix: b.Prefix, Lease: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		f.SetPlan(func(int) redistest.Fault { return redistest.FailBefore })
		select {
		case <-p.Lost():
		case <-time.After(2 * time.Second):
			t.Fatal("Lost not closed although every renewal failed")
		}
		f.SetPlan(nil)
		if err := p.Release(t.Context()); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("Release after loss: %v, want ErrLeaseLost", err)
		}
	})
}

func TestRenewalFindingExpiredLeaseReportsLoss(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "expired", 1, &Options{Lease: 300 * time.Millisecond})
		p := mustAcquire(t, s)
		// Another process takes over after the lease expired (for example
		// this one was paused): pretend that by removing the holder.
		if err := b.Client.ZRem(t.Context(), s.keys.keys[1], p.Token()).Err(); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.Lost():
		case <-time.After(2 * time.Second):
			t.Fatal("a renewal that found no lease did not report the loss")
		}
	})
}

func TestConcurrentReleasesOfOnePermitBothSucceed(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "doublerelease", 1, nil)
		for i := range 100 {
			p := mustAcquire(t, s)
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for j := range errs {
				wg.Go(func() { errs[j] = p.Release(context.Background()) })
			}
			wg.Wait()
			if errs[0] != nil || errs[1] != nil {
				t.Fatalf("round %d: concurrent releases returned %v and %v", i, errs[0], errs[1])
			}
			select {
			case <-p.Lost():
				t.Fatalf("round %d: Lost closed after a successful release", i)
			default:
			}
		}
	})
}
