package limiter

import (
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/redistest"
)

// TestFencesKeepRisingAfterALossOfTheLastGrants stands in for a Sentinel
// failover to a replica that had not received the last grants (replication
// is asynchronous), or a restart from an AOF that lost its last second: the
// semaphore's keys are put back as they were before the last three grants,
// on a server whose clock went on. The next fence must be above every fence
// handed out: each fence is at least the Redis clock in microseconds, not
// only the first of a new state.
func TestFencesKeepRisingAfterALossOfTheLastGrants(t *testing.T) {
	b := redistest.Real(t)
	s := newSem(t, b, "lost-grants", 1, nil)
	mustRelease(t, mustAcquire(t, s))
	ctx := t.Context()
	type saved struct {
		dump string
		ttl  time.Duration
	}
	kept := map[string]saved{}
	for _, k := range s.keys.keys {
		dump, err := b.Client.Dump(ctx, k).Result()
		if err != nil {
			continue // no such key
		}
		ttl := b.Client.PTTL(ctx, k).Val()
		kept[k] = saved{dump, max(ttl, 0)}
	}
	var last int64
	for range 3 {
		p := mustAcquire(t, s)
		last = max(last, p.Fence())
		mustRelease(t, p)
	}
	// The new master: the state as it was before the last three grants.
	for _, k := range s.keys.keys {
		if err := b.Client.Del(ctx, k).Err(); err != nil {
			t.Fatal(err)
		}
		if v, ok := kept[k]; ok {
			if err := b.Client.Restore(ctx, k, v.ttl, v.dump).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	p := mustAcquire(t, s)
	defer mustRelease(t, p)
	if p.Fence() <= last {
		t.Fatalf("fence %d after losing the last grants, %d handed out before: a downstream system that keeps the highest fence refuses the new holder, and the next grants repeat fences already handed out", p.Fence(), last)
	}
}
