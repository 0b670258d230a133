package limiter

import (
	"slices"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/redistest"
)

// onlyWaiter returns the token of s's one local waiter.
func onlyWaiter(t *testing.T, s *Semaphore) string {
	t.Helper()
	var token string
	eventually(t, 5*time.Second, "a local waiter", func() bool {
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
		hold := mustAcquire(t, s)
		ch := acquireAsync(t.Context(), s)
		waitingIs(t, s, 1)
		s.hub.unregister(onlyWaiter(t, s)) // its Pub/Sub message goes nowhere
		mustRelease(t, hold)
		r := recv(t, ch, 3*time.Second)
		if r.err != nil {
			t.Fatal(r.err)
		}
		info := mustInfo(t, s)
		if info.Held != 1 || info.Holders[0].Token != r.p.Token() {
			t.Fatalf("after the poll's delivery: %+v", info)
		}
		// Taking the grant up removes it from the poll's list.
		eventually(t, 2*time.Second, "the grant to be taken up", func() bool {
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
		orphan := s.proc + ".orphan"
		if r, err := s.callAcquire(t.Context(), orphan, cfg, "wait"); err != nil || r.granted {
			t.Fatalf("queue orphan: %+v %v", r, err)
		}
		ch := acquireAsync(t.Context(), s)
		waitingIs(t, s, 2)
		mustRelease(t, hold)
		r := recv(t, ch, 3*time.Second)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if info := mustInfo(t, s); info.Held != 1 || info.Holders[0].Token != r.p.Token() {
			t.Fatalf("the orphan's grant was not given on: %+v", info)
		}
		mustRelease(t, r.p)
	})
}

func TestAGrantThatExpiredBeforeItWasTakenUpIsNotUsed(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// No poll runs during the test: it would record a fresh heartbeat.
		s := newSem(t, b, "stalegrant", 1, &Options{SleepDelay: 10 * time.Second, WaiterTTL: 30 * time.Second})
		hold := mustAcquire(t, s)
		ch := acquireAsync(t.Context(), s)
		waitingIs(t, s, 1)
		// A grant message that arrives after its short lease ran out (a
		// long wait or a stalled connection): the token holds nothing any
		// more.
		token := onlyWaiter(t, s)
		s.mu.Lock()
		w := s.waiters[token]
		s.mu.Unlock()
		w.queued(time.Now().Add(-s.opts.WaiterTTL), 0) // as after a long wait
		offer(w.ch, grant{fence: 999, lease: time.Second})
		notYet(t, ch, 300*time.Millisecond)
		// A grant older than the last call that left the waiter queued (a
		// late duplicate), however recent that call: not used either.
		w.queued(time.Now(), 2000)
		offer(w.ch, grant{fence: 1500, lease: time.Second})
		notYet(t, ch, 300*time.Millisecond)
		if info := mustInfo(t, s); info.Waiting != 1 || info.Held != 1 {
			t.Fatalf("the waiter left the queue: %+v", info)
		}
		mustRelease(t, hold)
		r := recv(t, ch, 5*time.Second)
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.p.Fence() == 999 {
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
		f.Only = func(args []any) bool { return slices.Contains(args, any("wait")) }
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
		r := recv(t, third, 3*time.Second)
		if r.err != nil {
			t.Fatal(r.err)
		}
		mustRelease(t, r.p)
	})
}
