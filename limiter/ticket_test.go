package limiter

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
)

// reservations collects what OnReservation hands a value.
type reservations chan Reservation

func (r reservations) options(o Options) *Options {
	o.OnReservation = func(res Reservation) { r <- res }
	return &o
}

func (r reservations) next(t *testing.T, d time.Duration) Reservation {
	t.Helper()
	select {
	case res := <-r:
		return res
	case <-time.After(d):
		t.Fatalf("no reservation within %v", d)
		return Reservation{}
	}
}

func (r reservations) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case res := <-r:
		t.Fatalf("unexpected reservation %+v", res)
	case <-time.After(d):
	}
}

func TestATicketOutlivesItsProcessAndGoesToWhoeverFreesTheSlot(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		gotA := reservations(make(chan Reservation, 4))
		a := newSem(t, b, "tickets", 1, gotA.options(Options{}))
		hold := mustAcquire(t, a)
		// Another process queues a ticket and stops: nothing keeps it alive.
		gone := newSem(t, b, "tickets", 1, nil)
		p, tk, err := gone.AcquireTicket(t.Context(), "task-1", "payload-1", 0)
		if err != nil || p != nil || tk == nil {
			t.Fatalf("AcquireTicket: %v %v %v", p, tk, err)
		}
		if info := mustInfo(t, a); info.Waiting != 1 || info.Parked != 1 {
			t.Fatalf("with a ticket queued: %+v", info)
		}
		mustRelease(t, hold)
		res := gotA.next(t, 2*time.Second)
		if res.Semaphore != "tickets" || res.Payload != "payload-1" || res.Rejected() || res.Fence <= hold.Fence() {
			t.Fatalf("reservation %+v", res)
		}
		if info := mustInfo(t, a); info.Held != 1 || info.Parked != 0 || info.Holders[0].Fence != res.Fence {
			t.Fatalf("the slot is not reserved for the ticket: %+v", info)
		}
		// Whoever runs the task redeems the reservation by its key.
		runner := newSem(t, b, "tickets", 1, nil)
		q, tk2, err := runner.AcquireTicket(t.Context(), "task-1", "payload-1", 0)
		if err != nil || q == nil || tk2 != nil {
			t.Fatalf("redeem: %v %v %v", q, tk2, err)
		}
		if q.Fence() != res.Fence {
			t.Fatalf("redeemed fence %d, reserved %d", q.Fence(), res.Fence)
		}
		if info := mustInfo(t, a); info.Holders[0].LeaseLeft < runner.opts.Lease/2 {
			t.Fatalf("the redeemed permit has no full lease: %+v", info)
		}
		mustRelease(t, q)
	})
}

func TestTicketsKeepTheirPlaceAmongLiveWaiters(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		got := reservations(make(chan Reservation, 4))
		s := newSem(t, b, "order", 1, got.options(Options{}))
		hold := mustAcquire(t, s)
		first := acquireAsync(t.Context(), s)
		waitingIs(t, s, 1)
		if _, _, err := s.AcquireTicket(t.Context(), "middle", "m", 0); err != nil {
			t.Fatal(err)
		}
		last := acquireAsync(t.Context(), s)
		waitingIs(t, s, 3)
		mustRelease(t, hold)
		r := granted(t, first, 2*time.Second)
		notYet(t, last, 100*time.Millisecond)
		got.none(t, 50*time.Millisecond)
		mustRelease(t, r.p)
		if res := got.next(t, 2*time.Second); res.Payload != "m" {
			t.Fatalf("reservation %+v", res)
		}
		notYet(t, last, 100*time.Millisecond)
		if err := s.CancelTicket(t.Context(), "middle"); err != nil {
			t.Fatal(err)
		}
		mustRelease(t, granted(t, last, 2*time.Second).p)
	})
}

func TestACaughtTicketsGrantGoesToItsWait(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		gotHolder := reservations(make(chan Reservation, 4))
		holder := newSem(t, b, "catch", 1, gotHolder.options(Options{}))
		gotCatcher := reservations(make(chan Reservation, 4))
		catcher := newSem(t, b, "catch", 1, gotCatcher.options(Options{}))
		hold := mustAcquire(t, holder)
		_, tk, err := catcher.AcquireTicket(t.Context(), "caught", "c", 5*time.Second)
		if err != nil || tk == nil {
			t.Fatal(tk, err)
		}
		// A grant published before the catcher's first subscription is
		// confirmed reaches it only when its catch has ended.
		subscribed(t, catcher)
		done := make(chan result, 1)
		go func() { p, err := tk.Wait(t.Context()); done <- result{p, err} }()
		mustRelease(t, hold)
		r := granted(t, done, 2*time.Second)
		gotHolder.none(t, 100*time.Millisecond)
		gotCatcher.none(t, 10*time.Millisecond)
		if info := mustInfo(t, holder); info.Held != 1 || info.Holders[0].Fence != r.p.Fence() {
			t.Fatalf("%+v", info)
		}
		mustRelease(t, r.p)
	})
}

func TestATicketWhoseCatchEndedGoesToTheReleasersOnReservation(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		gotHolder := reservations(make(chan Reservation, 4))
		holder := newSem(t, b, "catchend", 1, gotHolder.options(Options{}))
		gotCatcher := reservations(make(chan Reservation, 4))
		catcher := newSem(t, b, "catchend", 1, gotCatcher.options(Options{}))
		hold := mustAcquire(t, holder)
		_, tk, err := catcher.AcquireTicket(t.Context(), "late", "l", 100*time.Millisecond)
		if err != nil || tk == nil {
			t.Fatal(tk, err)
		}
		// Redis counts the window from when its script ran, which is
		// before this reply came (same clock: the server is local).
		redisEnd := time.Now().Add(100 * time.Millisecond)
		start := time.Now()
		if p, err := tk.Wait(t.Context()); !errors.Is(err, ErrStillQueued) || p != nil {
			t.Fatalf("Wait: %v, %v; want ErrStillQueued", p, err)
		}
		if el := time.Since(start); el > time.Second {
			t.Fatalf("Wait took %v for a 100ms catch", el)
		}
		// Once the catch has ended in Redis too, the grant goes to the
		// process whose call makes it. (Between the two ends it goes to
		// the catcher's OnReservation.)
		time.Sleep(time.Until(redisEnd))
		mustRelease(t, hold)
		if res := gotHolder.next(t, 2*time.Second); res.Payload != "l" {
			t.Fatalf("%+v", res)
		}
		gotCatcher.none(t, 50*time.Millisecond)
		if err := holder.CancelTicket(t.Context(), "late"); err != nil {
			t.Fatal(err)
		}
		if info := mustInfo(t, holder); info.Held != 0 || info.Waiting != 0 {
			t.Fatalf("after cancelling the reservation: %+v", info)
		}
	})
}

func TestAnUnredeemedReservationGoesOnAfterTheTicketLease(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		got := reservations(make(chan Reservation, 4))
		s := newSem(t, b, "unredeemed", 1, got.options(Options{TicketLease: 300 * time.Millisecond, SleepDelay: 20 * time.Millisecond}))
		hold := mustAcquire(t, s)
		if _, _, err := s.AcquireTicket(t.Context(), "never", "n", 0); err != nil {
			t.Fatal(err)
		}
		next := acquireAsync(t.Context(), s)
		waitingIs(t, s, 2)
		mustRelease(t, hold)
		got.next(t, 2*time.Second) // nobody acts on it
		start := time.Now()
		r := granted(t, next, 3*time.Second)
		if el := time.Since(start); el < 200*time.Millisecond {
			t.Fatalf("the reserved slot went on after %v, before the 300ms ticket lease", el)
		}
		mustRelease(t, r.p)
		// Redeeming late finds nothing reserved: the ticket queues anew.
		p, tk, err := s.AcquireTicket(t.Context(), "never", "n", 0)
		if err != nil || p == nil || tk != nil {
			t.Fatalf("late redeem on a free semaphore: %v %v %v", p, tk, err)
		}
		mustRelease(t, p)
	})
}

func TestAGrantNobodyActedOnIsTakenOnByAPoll(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// The process that frees the slot handles no tickets: a process
		// that does takes the grant on at its next poll.
		plain := newSem(t, b, "claim", 1, nil)
		got := reservations(make(chan Reservation, 4))
		handler := newSem(t, b, "claim", 1, got.options(Options{}))
		hold := mustAcquire(t, plain)
		if _, _, err := handler.AcquireTicket(t.Context(), "orphan", "o", 0); err != nil {
			t.Fatal(err)
		}
		mustRelease(t, hold)
		if res := got.next(t, 3*time.Second); res.Payload != "o" || res.Rejected() {
			t.Fatalf("%+v", res)
		}
		if err := handler.CancelTicket(t.Context(), "orphan"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestARejectedTicketIsReportedAndCleared(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		got := reservations(make(chan Reservation, 4))
		s := newSem(t, b, "rejectticket", 2, got.options(Options{}))
		hold := mustAcquire(t, s)
		if _, _, err := s.AcquireTicket(t.Context(), "heavy", "h", 0, WithWeight(2)); err != nil {
			t.Fatal(err)
		}
		if err := s.SetLimit(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		if res := got.next(t, 3*time.Second); !res.Rejected() || res.Payload != "h" {
			t.Fatalf("%+v", res)
		}
		if _, _, err := s.AcquireTicket(t.Context(), "heavy", "h", 0, WithWeight(2)); !errors.Is(err, ErrWeightAboveLimit) {
			t.Fatalf("asking again: %v, want ErrWeightAboveLimit", err)
		}
		mustRelease(t, hold)
		if n := b.Client.HLen(t.Context(), s.keys.keys[3]).Val(); n != 0 {
			t.Fatalf("%d records left", n)
		}
	})
}

func TestAValueThatSeesQueuedTicketsInItsReleaseReplyPollsForThem(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// A process holds one slot of two and queues a ticket of weight 2,
		// then dies. The survivor never queued a ticket: it learns of that
		// one from its own release's reply, and polls, so that when the
		// dead holder's lease runs out its poll makes the grant and its
		// OnReservation wakes the ticket's task.
		got := reservations(make(chan Reservation, 4))
		survivor := newSem(t, b, "orphaned", 2, got.options(Options{}))
		gone := newSem(t, b, "orphaned", 2, &Options{Lease: 300 * time.Millisecond})
		dead := mustAcquire(t, gone)
		crash(dead)
		mine := mustAcquire(t, survivor)
		if _, tk, err := gone.AcquireTicket(t.Context(), "task-2", "payload-2", 0, WithWeight(2)); err != nil || tk == nil {
			t.Fatalf("AcquireTicket: %v %v", tk, err)
		}
		mustRelease(t, mine)
		if res := got.next(t, 3*time.Second); res.Payload != "payload-2" || res.Rejected() {
			t.Fatalf("reservation %+v", res)
		}
		redeemAndRelease(t, survivor, "task-2", WithWeight(2))
	})
}

// redeemAndRelease takes up the reservation of the ticket named key and
// gives the slot back, so that no ticket is left for pollers to watch.
func redeemAndRelease(t *testing.T, s *Semaphore, key string, opts ...AcquireOption) {
	t.Helper()
	p, tk, err := s.AcquireTicket(t.Context(), key, "", 0, opts...)
	if err != nil || p == nil || tk != nil {
		t.Fatalf("redeem %s: %v %v %v", key, p, tk, err)
	}
	mustRelease(t, p)
}

func TestWatchTicketsPollsForTicketsThatOthersQueued(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// Every process that knew of the ticket is gone, and the slot's
		// holder died. A process that starts then and watches the
		// semaphore's tickets makes the grant when the lease runs out.
		gone := newSem(t, b, "watched", 1, &Options{Lease: 300 * time.Millisecond})
		crash(mustAcquire(t, gone))
		if _, tk, err := gone.AcquireTicket(t.Context(), "task-3", "payload-3", 0); err != nil || tk == nil {
			t.Fatalf("AcquireTicket: %v %v", tk, err)
		}
		got := reservations(make(chan Reservation, 4))
		late := newSem(t, b, "watched", 1, got.options(Options{}))
		late.WatchTickets()
		if res := got.next(t, 3*time.Second); res.Payload != "payload-3" || res.Rejected() {
			t.Fatalf("reservation %+v", res)
		}
		redeemAndRelease(t, late, "task-3")
	})
}

// subscribed waits until s's Pub/Sub subscription is confirmed.
func subscribed(t *testing.T, s *Semaphore) {
	t.Helper()
	wait.Until(t, 5*time.Second, "the grant subscription", func() bool {
		s.hub.mu.Lock()
		ready := s.hub.ready
		s.hub.mu.Unlock()
		select {
		case <-ready:
			return true
		default:
			return false
		}
	})
}

func TestAPollReplyOlderThanATicketDoesNotStopItsPoller(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// A poll runs in Redis before the ticket is queued, and its reply
		// (no tickets) arrives after the ticket's: the poller must go on,
		// or the ticket's grant, which no other process takes on, waits.
		f := redistest.NewFaulty(b.Client, nil)
		f.Delay = 300 * time.Millisecond
		ran := make(chan struct{}, 1)
		f.Holding = func() { ran <- struct{}{} }
		got := reservations(make(chan Reservation, 4))
		opts := got.options(Options{Prefix: b.Prefix})
		s, err := New(f, "stale", 1, opts)
		if err != nil {
			t.Fatal(err)
		}
		var slowed atomic.Bool
		isPoll := pollCalls(s)
		f.Decide = func(args []any) redistest.Fault {
			if isPoll(args) && slowed.CompareAndSwap(false, true) {
				return redistest.SlowReply
			}
			return redistest.Pass
		}
		other := newSem(t, b, "stale", 1, nil)
		hold := mustAcquire(t, other)
		s.WatchTickets()
		<-ran // the poll ran and saw no ticket; its reply is held back
		if _, tk, err := s.AcquireTicket(t.Context(), "late", "l", 0); err != nil || tk == nil {
			t.Fatalf("AcquireTicket: %v %v", tk, err)
		}
		time.Sleep(2 * f.Delay) // the old reply arrives: a shorter wait would only weaken the test
		mustRelease(t, hold)    // no caller takes the grant on but a poll
		if res := got.next(t, 3*time.Second); res.Payload != "l" || res.Rejected() {
			t.Fatalf("reservation %+v", res)
		}
		redeemAndRelease(t, s, "late")
	})
}

func TestAValueThatSeesAnUnwokenReservationInItsReleaseReplyTakesItOn(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// A process that handles no tickets grants a queued ticket by its
		// release, and nobody is told of the reservation. The survivor's
		// own release reply shows it (no ticket queued, a claim due), so the
		// survivor polls and takes it on.
		got := reservations(make(chan Reservation, 4))
		survivor := newSem(t, b, "unwoken", 2, got.options(Options{}))
		gone := newSem(t, b, "unwoken", 2, nil)
		mine := mustAcquire(t, survivor)
		theirs := mustAcquire(t, gone)
		if _, tk, err := gone.AcquireTicket(t.Context(), "task-4", "payload-4", 0); err != nil || tk == nil {
			t.Fatalf("AcquireTicket: %v %v", tk, err)
		}
		mustRelease(t, theirs) // grants the ticket; gone has no OnReservation
		mustRelease(t, mine)
		if res := got.next(t, 3*time.Second); res.Payload != "payload-4" || res.Rejected() {
			t.Fatalf("reservation %+v", res)
		}
		redeemAndRelease(t, survivor, "task-4")
	})
}
