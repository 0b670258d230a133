package limiter

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
)

func TestOneOffSemaphoresLeaveNoKeysAndNoMemoryBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 semaphores")
	}
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		const n = 10000
		const idle = 300 * time.Millisecond
		others := pollers() // of semaphores that earlier tests left with tickets
		opts := &Options{IdleTimeout: idle, SleepDelay: 20 * time.Millisecond, WaiterTTL: 200 * time.Millisecond}
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		stored := 0
		for i := range n {
			name := fmt.Sprintf("one-off-%d", i)
			s := newSem(t, b, name, 1, opts)
			switch i % 100 {
			case 0: // a hand-over through the queue: heartbeats, notices
				other := newSem(t, b, name, 1, opts)
				hold := mustAcquire(t, other)
				ch := acquireAsync(t.Context(), s)
				waitingIs(t, s, 1)
				mustRelease(t, hold)
				mustRelease(t, granted(t, ch, 3*time.Second).p)
			case 1: // a stored limit, which must outlive idleness
				if err := s.SetLimit(t.Context(), 2); err != nil {
					t.Fatal(err)
				}
				stored++
				fallthrough
			default:
				mustRelease(t, mustAcquire(t, s))
			}
		}
		if b.Mini != nil {
			b.Mini.FastForward(2 * idle) // miniredis ages keys only when told to
		}
		wait.Until(t, 5*time.Second, "the idle semaphores' keys to expire", func() bool {
			return len(b.Client.Keys(t.Context(), b.Prefix+"*").Val()) == stored
		})
		for _, k := range b.Client.Keys(t.Context(), b.Prefix+"*").Val() {
			if typ := b.Client.Type(t.Context(), k).Val(); typ != "string" || k[len(k)-len(":limit"):] != ":limit" {
				t.Fatalf("left behind: %s (%s)", k, typ)
			}
		}
		wait.Until(t, 5*time.Second, "the pollers to stop", func() bool { return pollers() <= others })
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		t.Logf("%d semaphores: %d keys left (stored limits), heap %+d bytes", n, stored, grew)
		// miniredis runs in this process, so its own memory would count.
		if b.Mini == nil && grew > 4<<20 {
			t.Fatalf("the heap grew by %d bytes for %d semaphores that are gone", grew, n)
		}
	})
}

// pollers counts the running safety-net pollers of every semaphore.
func pollers() int {
	buf := make([]byte, 4<<20)
	return strings.Count(string(buf[:runtime.Stack(buf, true)]), "limiter.(*Semaphore).pollLoop(")
}

func TestAStoredLimitOutlivesIdleness(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "kept", 1, &Options{IdleTimeout: 50 * time.Millisecond})
		if err := s.SetLimit(t.Context(), 3); err != nil {
			t.Fatal(err)
		}
		mustRelease(t, mustAcquire(t, s))
		if b.Mini != nil {
			b.Mini.FastForward(time.Second)
		}
		wait.Until(t, 3*time.Second, "the state to expire", func() bool {
			return b.Client.Exists(t.Context(), s.keys.keys[0]).Val() == 0
		})
		fresh := newSem(t, b, "kept", 1, nil)
		if info := mustInfo(t, fresh); info.Limit != 3 {
			t.Fatalf("after idleness: limit %d, want the stored 3", info.Limit)
		}
		var ps []*Permit
		for range 3 {
			ps = append(ps, mustAcquire(t, fresh))
		}
		for _, p := range ps {
			mustRelease(t, p)
		}
	})
}

func TestAHubLetsGoOfAClosedClient(t *testing.T) {
	b := redistest.Any(t)
	c := redis.NewClient(&redis.Options{Addr: b.Client.Options().Addr, DB: b.Client.Options().DB})
	s, err := New(c, "closedhub", 1, &Options{Prefix: b.Prefix})
	if err != nil {
		t.Fatal(err)
	}
	hold := mustAcquire(t, s)
	// A waiter starts the hub's subscription; the client then closes.
	_, _ = s.Acquire(t.Context(), WithTimeout(100*time.Millisecond))
	mustRelease(t, hold)
	_ = c.Close()
	wait.Until(t, 5*time.Second, "the hub to leave the map", func() bool {
		hubsMu.Lock()
		defer hubsMu.Unlock()
		for k := range hubs {
			if k.rdb == redis.UniversalClient(c) {
				return false
			}
		}
		return true
	})
}

func TestAValueIsIdleOnlyWithNothingInFlight(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := newSem(t, b, "inflight", 1, &Options{SleepDelay: 20 * time.Millisecond})
		if !s.Idle() {
			t.Fatal("a new value is not idle")
		}
		p := mustAcquire(t, s)
		if s.Idle() {
			t.Fatal("idle while it holds a permit")
		}
		ctx, cancel := context.WithCancel(t.Context())
		w := acquireAsync(ctx, s)
		waitingIs(t, s, 1)
		mustRelease(t, p)
		r := granted(t, w, 3*time.Second)
		if s.Idle() {
			t.Fatal("idle while it holds the waiter's permit")
		}
		mustRelease(t, r.p)
		cancel()
		// The poller stops at its next round once nothing waits.
		wait.Until(t, 5*time.Second, "the value to be idle", s.Idle)
	})
}
