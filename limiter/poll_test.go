package limiter

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
)

// onlyWaiter returns the token of s's one local waiter.
func onlyWaiter(t *testing.T, s *Semaphore) string {
	t.Helper()
	var token string
	wait.Until(t, 5*time.Second, "a local waiter", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for tok := range s.waiters {
			token = tok
		}
		return token != ""
	})
	return token
}

func TestPollDeliversAGrantWhoseMessageWasLost(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "lostmsg", 1, &Options{SleepDelay: 50 * time.Millisecond})
		other := newSem(t, b, "lostmsg", 1, nil) // so that the grant is published, not in a reply of s
		hold := mustAcquire(t, other)
		ch := acquireAsync(t.Context(), s)
		waitingIs(t, s, 1)
		s.hub.unregister(onlyWaiter(t, s)) // its Pub/Sub message goes nowhere
		mustRelease(t, hold)
		r := granted(t, ch, 3*time.Second)
		info := mustInfo(t, s)
		if info.Held != 1 || info.Holders[0].Token != r.p.Token() {
			t.Fatalf("after the poll's delivery: %+v", info)
		}
		// Taking the grant up removes it from the poll's list.
		wait.Until(t, 2*time.Second, "the grant to be taken up", func() bool {
			return b.Client.ZCard(t.Context(), s.keys.keys[5]).Val() == 0
		})
		mustRelease(t, r.p)
	})
}

func TestWaitersRejoinWhenRedisForgotThem(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "forgot", 1, &Options{SleepDelay: 50 * time.Millisecond})
		hold := mustAcquire(t, s)
		ch := acquireAsync(t.Context(), s)
		waitingIs(t, s, 1)
		// As after a restart without persistence: every key is gone.
		if err := b.Client.Del(t.Context(), s.keys.keys...).Err(); err != nil {
			t.Fatal(err)
		}
		r := recv(t, ch, 3*time.Second)
		if r.err != nil {
			t.Fatalf("a waiter Redis forgot did not queue again: %v", r.err)
		}
		if err := hold.Release(t.Context()); err == nil {
			t.Fatal("releasing a permit Redis forgot reported success")
		}
		mustRelease(t, r.p)
	})
}

func TestPollGivesOnAGrantNobodyWaitsFor(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "orphan", 1, &Options{SleepDelay: 50 * time.Millisecond})
		hold := mustAcquire(t, s)
		// An acquire of this value that gave up but failed to leave the
		// queue: queued, heartbeated with the others, never taken up.
		cfg, _ := s.acquireConfig(nil)
		orphan := s.proc + ".orphan.1"
		if r, err := s.callAcquire(t.Context(), orphan, cfg, acquireCall{mode: modeWait}); err != nil || r.status != statusQueued {
			t.Fatalf("queue orphan: %+v %v", r, err)
		}
		ch := acquireAsync(t.Context(), s)
		waitingIs(t, s, 2)
		mustRelease(t, hold)
		r := granted(t, ch, 3*time.Second)
		if info := mustInfo(t, s); info.Held != 1 || info.Holders[0].Token != r.p.Token() {
			t.Fatalf("the orphan's grant was not given on: %+v", info)
		}
		mustRelease(t, r.p)
	})
}

func TestAGrantThatExpiredBeforeItWasTakenUpIsNotUsed(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "stalegrant", 1, &Options{SleepDelay: 10 * time.Second, WaiterTTL: 30 * time.Second})
		other := newSem(t, b, "stalegrant", 1, nil)
		hold := mustAcquire(t, other)
		ch := acquireAsync(t.Context(), s)
		waitingIs(t, s, 1)
		// Grant messages that arrive after their short lease ran out (a
		// long wait or a stalled connection), or late duplicates: their
		// fences are not above the one the last heartbeat saw, so nothing
		// proves them live, and the token holds nothing any more.
		w := s.waiters[onlyWaiter(t, s)]
		offer(w.ch, grant{fence: 999, lease: time.Second})
		notYet(t, ch, 300*time.Millisecond)
		offer(w.ch, grant{fence: hold.Fence(), lease: time.Second})
		notYet(t, ch, 300*time.Millisecond)
		if info := mustInfo(t, s); info.Waiting != 1 || info.Held != 1 {
			t.Fatalf("the waiter left the queue: %+v", info)
		}
		mustRelease(t, hold)
		r := granted(t, ch, 5*time.Second)
		if r.p.Fence() <= hold.Fence() {
			t.Fatal("Acquire returned a grant it never took up")
		}
		if info := mustInfo(t, s); info.Held != 1 || info.Holders[0].Token != r.p.Token() {
			t.Fatalf("after the real grant: %+v", info)
		}
		mustRelease(t, r.p)
	})
}

func TestPollSparesAGrantWhoseQueueingReplyIsStillOnItsWay(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// This value's second queueing call runs on the server, but its
		// reply is late. The token is granted meanwhile, and a poll for the
		// value's other waiter sees the grant not taken up: it must not
		// give on a slot whose Acquire is still running.
		const delay = 500 * time.Millisecond
		f := redistest.NewFaulty(b.Client, func(call int) redistest.Fault {
			if call == 2 {
				return redistest.SlowReply
			}
			return redistest.Pass
		})
		f.Delay = delay
		f.Only = queueingCalls
		s, err := New(f, "latequeue", 2, &Options{Prefix: b.Prefix, SleepDelay: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		other := newSem(t, b, "latequeue", 2, nil)
		hold := mustAcquire(t, other, WithWeight(2))
		first := acquireAsync(t.Context(), s)
		waitingIs(t, s, 1)
		late := acquireAsync(t.Context(), s)
		waitingIs(t, s, 2)
		third := acquireAsync(t.Context(), s) // keeps the poll running
		waitingIs(t, s, 3)
		mustRelease(t, hold) // grants first and late; third waits

		p1, p2 := recv(t, first, 3*time.Second), recv(t, late, 3*time.Second)
		if p1.err != nil || p2.err != nil {
			t.Fatalf("first: %v, late: %v", p1.err, p2.err)
		}
		info := mustInfo(t, s)
		if info.Held != 2 || info.Waiting != 1 {
			t.Fatalf("with two permits out: %+v", info)
		}
		for _, p := range []*Permit{p1.p, p2.p} {
			if !slices.ContainsFunc(info.Holders, func(h Holder) bool { return h.Token == p.Token() }) {
				t.Fatalf("permit %s was returned but its slot went to %+v", p.Token(), info.Holders)
			}
		}
		notYet(t, third, delay)
		mustRelease(t, p2.p)
		mustRelease(t, p1.p)
		r := granted(t, third, 3*time.Second)
		mustRelease(t, r.p)
	})
}

func TestWaitersDroppedWhileTheirProcessWasGoneQueueAgainAtTheirOldPlace(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// A's process stops heartbeating (a partition, a long pause) until
		// Redis drops A when it reaches the head. Then a new Acquire B of
		// the same value heartbeats the process before its next poll does.
		// A must still queue again, at its old place, ahead of B.
		var partitioned atomic.Bool
		f := redistest.NewFaulty(b.Client, func(int) redistest.Fault {
			if partitioned.Load() {
				return redistest.FailBefore
			}
			return redistest.Pass
		})
		s, err := New(f, "masked", 1, &Options{Prefix: b.Prefix, SleepDelay: 50 * time.Millisecond, WaiterTTL: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		f.Only = pollCalls(s)
		other := newSem(t, b, "masked", 1, nil)
		hold := mustAcquire(t, other)
		a := acquireAsync(t.Context(), s)
		waitingIs(t, s, 1)
		partitionUntilDropped(t, s, other, &partitioned)
		bch := acquireAsync(t.Context(), s)
		// B queues; A may queue again already, if B's reply told the
		// process that Redis had forgotten it.
		wait.Until(t, 5*time.Second, "B to queue", func() bool { return mustInfo(t, s).Waiting >= 1 })
		partitioned.Store(false)
		waitingIs(t, s, 2) // and A again
		mustRelease(t, hold)
		ra := granted(t, a, 3*time.Second)
		notYet(t, bch, 100*time.Millisecond)
		mustRelease(t, ra.p)
		rb := granted(t, bch, 3*time.Second)
		mustRelease(t, rb.p)
	})
}

func TestARejectionWhoseMessageWasLostArrivesByThePoll(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "lostreject", 2, &Options{SleepDelay: 50 * time.Millisecond})
		hold := mustAcquire(t, s)
		ch := acquireAsync(t.Context(), s, WithWeight(2))
		waitingIs(t, s, 1)
		s.hub.unregister(onlyWaiter(t, s)) // its Pub/Sub message goes nowhere
		if err := s.SetLimit(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		if r := recv(t, ch, 3*time.Second); !errors.Is(r.err, ErrWeightAboveLimit) {
			t.Fatalf("after a lowered limit: permit %v, err %v; want ErrWeightAboveLimit", r.p != nil, r.err)
		}
		mustRelease(t, hold)
		// The rejection's record is gone with it.
		wait.Until(t, 2*time.Second, "the rejection's record to go", func() bool {
			return b.Client.ZCard(t.Context(), s.keys.keys[5]).Val() == 0 && b.Client.HLen(t.Context(), s.keys.keys[3]).Val() == 0
		})
	})
}

func TestAPermitCarriesTheFenceOfTheGrantItsTokenHolds(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// A grant message that came twice (by Pub/Sub and by the poll) for a
		// grant that had expired: the first copy sends the Acquire back to
		// the queue, the second waits in its channel while the token is
		// granted again. The permit must carry the new grant's fence.
		slow := make(chan struct{})
		f := redistest.NewFaulty(b.Client, func(call int) redistest.Fault {
			if call == 2 {
				return redistest.SlowReply
			}
			return redistest.Pass
		})
		f.Delay = 500 * time.Millisecond
		f.Only = queueingCalls
		f.Holding = func() { close(slow) }
		s, err := New(f, "stalefence", 1, &Options{Prefix: b.Prefix, SleepDelay: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		other := newSem(t, b, "stalefence", 1, nil)
		hold := mustAcquire(t, other)
		a := acquireAsync(t.Context(), s)
		waitingIs(t, s, 1)
		token := onlyWaiter(t, s)
		s.mu.Lock()
		w := s.waiters[token]
		s.mu.Unlock()
		stale := grant{fence: hold.Fence(), lease: time.Second}
		offer(w.ch, stale) // taken up: it had expired, so A asks again
		<-slow             // A's second call has run; its reply is held back
		offer(w.ch, stale) // the copy, which A reads after that reply
		// The token, still queued, is granted now, while the copy waits.
		mustRelease(t, hold)
		r := granted(t, a, 3*time.Second)
		info := mustInfo(t, s)
		if info.Held != 1 || info.Holders[0].Token != r.p.Token() || info.Holders[0].Fence != r.p.Fence() {
			t.Fatalf("permit %s with fence %d; Redis: %+v", r.p.Token(), r.p.Fence(), info.Holders)
		}
		if r.p.Fence() <= hold.Fence() {
			t.Fatalf("fence %d is not above the previous holder's %d", r.p.Fence(), hold.Fence())
		}
		mustRelease(t, r.p)
	})
}

func TestThePollDoesNotGiveOnALostPermitsSlotBeforeItsLeaseEnds(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// A handed-over permit that could never renew: Lost closes a tenth
		// of its lease before Redis may give the slot on, and the poll
		// (running for the waiter behind it) must leave that tenth alone.
		const ttl = time.Second
		f := redistest.NewFaulty(b.Client, func(int) redistest.Fault { return redistest.FailBefore })
		// Only the granted permit's own renewals fail: a renewal made while
		// the grant is handed over (when its reply came late) must succeed,
		// or Acquire rightly reports the error instead of a permit.
		var victim atomic.Value
		f.Only = func(args []any) bool {
			return renewCalls(args) && victim.Load() == args[6]
		}
		s, err := New(f, "lostmargin", 1, &Options{Prefix: b.Prefix, SleepDelay: 20 * time.Millisecond, WaiterTTL: ttl, Lease: ttl})
		if err != nil {
			t.Fatal(err)
		}
		other := newSem(t, b, "lostmargin", 1, nil)
		hold := mustAcquire(t, other)
		first := acquireAsync(t.Context(), s)
		waitingIs(t, s, 1)
		second := acquireAsync(t.Context(), s)
		waitingIs(t, s, 2)
		mustRelease(t, hold)
		r1 := granted(t, first, 3*time.Second)
		victim.Store(any(r1.p.Token()))
		select {
		case <-r1.p.Lost():
		case <-time.After(3 * ttl):
			t.Fatal("a permit that could not renew was never lost")
		}
		lost := time.Now()
		r2 := granted(t, second, 3*time.Second)
		if gap := time.Since(lost); gap < ttl/20 {
			t.Fatalf("the slot went on %v after Lost closed; the holder was promised about %v", gap, ttl/10)
		}
		if err := r1.p.Release(t.Context()); !errors.Is(err, ErrLeaseLost) {
			t.Fatalf("releasing the lost permit: %v", err)
		}
		mustRelease(t, r2.p)
	})
}

func TestAHandedOverGrantFoundByAnAcquireCallIsRenewedAtOnce(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// The grant's message and the poll both miss the waiter, which
		// then asks Redis again (as after a failed call or a rejoin) and
		// is told it holds the slot, on a lease that runs only to its
		// process's heartbeat expiry. The permit must renew it at once,
		// not a RenewInterval later, after that short lease has run out.
		const ttl = time.Second
		f := redistest.NewFaulty(b.Client, func(int) redistest.Fault { return redistest.FailBefore })
		s, err := New(f, "heldreply", 1, &Options{Prefix: b.Prefix, SleepDelay: 100 * time.Millisecond, WaiterTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		f.Only = pollCalls(s)
		other := newSem(t, b, "heldreply", 1, nil)
		hold := mustAcquire(t, other)
		ch := acquireAsync(t.Context(), s)
		waitingIs(t, s, 1)
		token := onlyWaiter(t, s)
		s.hub.unregister(token)
		s.mu.Lock()
		w := s.waiters[token]
		s.mu.Unlock()
		mustRelease(t, hold)
		wait.Until(t, 2*time.Second, "the hand-over", func() bool { return mustInfo(t, s).Held == 1 })
		w.askAgain()
		r := granted(t, ch, 2*time.Second)
		select {
		case <-r.p.Lost():
			t.Fatal("the permit was lost at its hand-over lease's end")
		case <-time.After(3 * ttl / 2):
		}
		if info := mustInfo(t, s); info.Held != 1 || info.Holders[0].LeaseLeft < s.opts.Lease/2 {
			t.Fatalf("the hand-over lease was not renewed: %+v", info)
		}
		mustRelease(t, r.p)
	})
}

func TestWaitersQueueAgainWhenTheReplyThatRevivedTheirProcessWasLost(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// A is dropped while its process's polls fail. Then a new Acquire
		// B of the same value heartbeats the process, but B's reply is
		// lost and B gives up. The next poll must still tell A to queue
		// again.
		var partitioned, loseNext atomic.Bool
		f := redistest.NewFaulty(b.Client, nil)
		s, err := New(f, "revivallost", 1, &Options{Prefix: b.Prefix, SleepDelay: 50 * time.Millisecond, WaiterTTL: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		isPoll := pollCalls(s)
		f.Decide = func(args []any) redistest.Fault {
			switch {
			case isPoll(args) && partitioned.Load():
				return redistest.FailBefore
			case queueingCalls(args) && loseNext.CompareAndSwap(true, false):
				return redistest.LoseReply
			}
			return redistest.Pass
		}
		other := newSem(t, b, "revivallost", 1, nil)
		hold := mustAcquire(t, other)
		a := acquireAsync(t.Context(), s)
		waitingIs(t, s, 1)
		partitionUntilDropped(t, s, other, &partitioned)
		loseNext.Store(true)
		if _, err := s.Acquire(t.Context()); !errors.Is(err, redistest.ErrInjected) {
			t.Fatalf("B: %v, want the injected fault", err)
		}
		partitioned.Store(false)
		waitingIs(t, s, 1) // A, again
		mustRelease(t, hold)
		r := granted(t, a, 3*time.Second)
		mustRelease(t, r.p)
	})
}

func TestManyWaitersOfANewProcessQueueWithOneCallEach(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// The first queueing call starts the process's first incarnation;
		// the waiters queued under it must not be sent to queue again.
		const n = 50
		var calls atomic.Int64
		f := redistest.NewFaulty(b.Client, nil)
		f.Decide = func(args []any) redistest.Fault {
			if queueingCalls(args) {
				calls.Add(1)
			}
			return redistest.Pass
		}
		s, err := New(f, "burst", 1, &Options{Prefix: b.Prefix})
		if err != nil {
			t.Fatal(err)
		}
		other := newSem(t, b, "burst", 1, nil)
		hold := mustAcquire(t, other)
		errs := make(chan error, n)
		for range n {
			go func() {
				p, err := s.Acquire(t.Context())
				if err == nil {
					err = p.Release(context.Background())
				}
				errs <- err
			}()
		}
		waitingIs(t, s, n)
		if got := calls.Load(); got != n {
			t.Fatalf("%d waiters made %d queueing calls", n, got)
		}
		mustRelease(t, hold)
		for range n {
			select {
			case err := <-errs:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("waiters stuck: %+v", mustInfo(t, s))
			}
		}
		if got := calls.Load(); got != n {
			t.Fatalf("%d waiters made %d queueing calls by the end", n, got)
		}
	})
}

func TestAWaiterThatLearnsOfItsRejectionFromACallLeavesTheQueue(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// A queued waiter of weight 2 asks again (as when told to rejoin)
		// after the limit fell to 1, and is rejected by that call. It must
		// leave the queue, and leave no record behind.
		s := newSem(t, b, "rejectcall", 2, &Options{SleepDelay: 50 * time.Millisecond})
		other := newSem(t, b, "rejectcall", 2, nil)
		hold := mustAcquire(t, other, WithWeight(2))
		head := acquireAsync(t.Context(), other) // weight 1: fits the lowered limit, but no room
		waitingIs(t, s, 1)
		a := acquireAsync(t.Context(), s, WithWeight(2))
		waitingIs(t, s, 2)
		token := onlyWaiter(t, s)
		s.mu.Lock()
		w := s.waiters[token]
		s.mu.Unlock()
		if err := s.SetLimit(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		w.askAgain()
		if r := recv(t, a, 3*time.Second); !errors.Is(r.err, ErrWeightAboveLimit) {
			t.Fatalf("A: permit %v, err %v; want ErrWeightAboveLimit", r.p != nil, r.err)
		}
		if info := mustInfo(t, s); info.Waiting != 1 {
			t.Fatalf("the rejected waiter is still queued: %+v", info)
		}
		mustRelease(t, hold)
		r := granted(t, head, 3*time.Second)
		mustRelease(t, r.p)
		if n, d := b.Client.ZCard(t.Context(), s.keys.keys[5]).Val(), b.Client.HLen(t.Context(), s.keys.keys[3]).Val(); n != 0 || d != 0 {
			t.Fatalf("left behind: %d notices, %d records", n, d)
		}
	})
}

// partitionUntilDropped makes s's polls fail (its Faulty client fails
// them while partitioned is set) until Redis has dropped s's waiters, which
// any change made through other reaps once s's heartbeat has lapsed.
func partitionUntilDropped(t *testing.T, s, other *Semaphore, partitioned *atomic.Bool) {
	t.Helper()
	partitioned.Store(true)
	wait.Until(t, 5*time.Second, "Redis to drop the waiters", func() bool {
		if err := other.SetLimit(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		return mustInfo(t, s).Waiting == 0
	})
}

func TestARejectionSurvivesALostPollReply(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// The rejection's Pub/Sub message goes nowhere, and the reply of the
		// first poll that carries it is lost: the next poll must carry it
		// again. Polls run only when the test pokes the poller.
		f := redistest.NewFaulty(b.Client, nil)
		s, err := New(f, "lostpollreject", 2, &Options{Prefix: b.Prefix, SleepDelay: time.Minute, WaiterTTL: 5 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		var polls atomic.Int64
		var armed atomic.Bool
		isPoll := pollCalls(s)
		f.Decide = func(args []any) redistest.Fault {
			if !isPoll(args) || !armed.Load() {
				return redistest.Pass
			}
			if polls.Add(1) == 1 {
				return redistest.LoseReply
			}
			return redistest.Pass
		}
		other := newSem(t, b, "lostpollreject", 2, nil)
		hold := mustAcquire(t, other, WithWeight(2))
		// Warm the subscription up, so that no poll follows it.
		if _, err := s.Acquire(t.Context(), WithTimeout(50*time.Millisecond)); !errors.Is(err, ErrTimeout) {
			t.Fatalf("warm-up: %v", err)
		}
		ch := acquireAsync(t.Context(), s, WithWeight(2))
		waitingIs(t, s, 1)
		s.hub.unregister(onlyWaiter(t, s))
		if err := other.SetLimit(t.Context(), 1); err != nil {
			t.Fatal(err)
		}
		armed.Store(true)
		s.poke()
		wait.Until(t, 2*time.Second, "the first poll", func() bool { return polls.Load() == 1 })
		notYet(t, ch, 100*time.Millisecond)
		s.poke()
		if r := recv(t, ch, 3*time.Second); !errors.Is(r.err, ErrWeightAboveLimit) {
			t.Fatalf("after a lowered limit: permit %v, err %v; want ErrWeightAboveLimit", r.p != nil, r.err)
		}
		if n := polls.Load(); n != 2 {
			t.Fatalf("%d polls, want the lost one and one more", n)
		}
		mustRelease(t, hold)
	})
}

func TestAPollsWorkDoesNotGrowWithTheQueueWhenAProcessDied(t *testing.T) {
	// A long queue of live waiters behind the dead waiters of a process that
	// stopped heartbeating: a poll drops nothing it does not reach, and the
	// dead waiters cost one step each when they reach the head. A private
	// server: its command count is this test's alone.
	srv := redistest.StartServer(t)
	b := redistest.Backend{Name: "redis", Client: srv.Client(nil), Prefix: redistest.NewPrefix()}
	s := newSem(t, b, "longqueue", 1, &Options{WaiterTTL: 300 * time.Millisecond})
	other := newSem(t, b, "longqueue", 1, nil)
	hold := mustAcquire(t, other)
	queue := func(proc string, n int) {
		t.Helper()
		pipe := b.Client.Pipeline()
		for i := range n {
			pipe.EvalSha(t.Context(), scriptAcquire.Hash(), s.keys.keys,
				s.args(fmt.Sprintf("%s.%d.1", proc, i), modeWait, s.opts.Lease.Milliseconds(), "", s.opts.WaiterTTL.Milliseconds(), 0, "", "")...)
		}
		if _, err := pipe.Exec(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	if err := scriptAcquire.Load(t.Context(), b.Client).Err(); err != nil {
		t.Fatal(err)
	}
	queue("dead", 5)
	queue("alive", 20000)
	time.Sleep(400 * time.Millisecond) // both processes' heartbeats expire
	// Keep "alive" alive, as its poller would; "dead" stays dead.
	if err := b.Client.ZAdd(t.Context(), s.keys.keys[4], redis.Z{Score: float64(time.Now().Add(time.Hour).UnixMilli()), Member: "alive"}).Err(); err != nil {
		t.Fatal(err)
	}
	before := commandCount(t, b.Client)
	if _, err := scriptPoll.Run(t.Context(), b.Client, s.keys.keys, s.args(s.opts.WaiterTTL.Milliseconds(), "0")...).Result(); err != nil {
		t.Fatal(err)
	}
	n := commandCount(t, b.Client) - before
	t.Logf("one poll with a queue of 20,005 ran %d commands", n)
	if n > 60 {
		t.Fatalf("one poll ran %d commands with a queue of 20,005", n)
	}
	before = commandCount(t, b.Client)
	mustRelease(t, hold) // the five dead heads are dropped on the way to the first live one
	n = commandCount(t, b.Client) - before
	t.Logf("a release behind 5 dead waiters ran %d commands", n)
	if n > 100 {
		t.Fatalf("a release behind 5 dead waiters ran %d commands", n)
	}
	if info := mustInfo(t, s); info.Held != 1 || info.Holders[0].Token != "alive.0.1" {
		t.Fatalf("the slot went to %+v, want alive.0.1", info.Holders)
	}
}

// commandCount is the number of commands the server has run, including
// those inside scripts.
func commandCount(t *testing.T, c *redis.Client) int64 {
	t.Helper()
	stats, err := c.Info(t.Context(), "stats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(stats) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no total_commands_processed in INFO stats")
	return 0
}
