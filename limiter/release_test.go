package limiter

import (
	"bytes"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/netproxy"
	"github.com/slotguard/slotguard/internal/redistest"
)

func TestAReleaseThatRanTwiceAfterALostReplySucceeds(t *testing.T) {
	// go-redis sends a script again when its reply is lost (EOF): the
	// second run finds the slot freed by the first, which is a success, not
	// a lost lease.
	b := redistest.Real(t)
	proxy, err := netproxy.Start(b.Client.Options().Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxy.Close() })
	c := redis.NewClient(&redis.Options{Addr: proxy.Addr(), DB: b.Client.Options().DB, MaxRetries: 3})
	t.Cleanup(func() { _ = c.Close() })
	s, err := New(c, "retried", 1, &Options{Prefix: b.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	p := mustAcquire(t, s)
	var runs int
	released := scriptRelease.Hash()
	proxy.LoseReply(func(req []byte) bool {
		if bytes.Contains(req, []byte(released)) {
			runs++
			return true
		}
		return false
	})
	if err := p.Release(t.Context()); err != nil {
		t.Fatalf("a release whose first reply was lost: %v, want nil", err)
	}
	if runs != 1 {
		t.Fatalf("the lost reply was picked %d times", runs)
	}
	select {
	case <-p.Lost():
		t.Fatal("Lost closed for a release that succeeded")
	default:
	}
	if info := mustInfo(t, s); info.Held != 0 {
		t.Fatalf("after the release: %+v", info)
	}
	q := mustAcquire(t, s)
	mustRelease(t, q)
}

func TestALocalHandOffNeedsNeitherPubSubNorAPoll(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		// No poll in the test's time, and the waiter's Pub/Sub route is
		// cut: only the reply of its own process's release can hand the
		// slot over.
		s := newSem(t, b, "local", 1, &Options{SleepDelay: 10 * time.Second, WaiterTTL: 30 * time.Second})
		hold := mustAcquire(t, s)
		ch := acquireAsync(t.Context(), s)
		waitingIs(t, s, 1)
		s.hub.unregister(onlyWaiter(t, s))
		start := time.Now()
		mustRelease(t, hold)
		r := granted(t, ch, 2*time.Second)
		if took := time.Since(start); took > time.Second {
			t.Fatalf("the hand-over took %v", took)
		}
		mustRelease(t, r.p)
	})
}
