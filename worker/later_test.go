package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/slotguard/slotguard/internal/wait"
)

func TestRequeueAfterNeverArchivesNorSpendsARetry(t *testing.T) {
	b := setup(t)
	g := b.guard(t, Config{Rules: []Rule{{Name: "api", TaskTypes: []string{"api:*"}, Limit: 2}}})
	busy := errors.New("HTTP 429")
	var mu sync.Mutex
	runs := map[string]int{}
	retried := map[string][]int{}
	ids := map[string]map[string]bool{}
	b.start(t, g, b.fastConfig(4), func(ctx context.Context, t *asynq.Task) error {
		mu.Lock()
		defer mu.Unlock()
		key := string(t.Payload())
		runs[key]++
		n, _ := asynq.GetRetryCount(ctx)
		retried[key] = append(retried[key], n)
		id, _ := asynq.GetTaskID(ctx)
		if ids[key] == nil {
			ids[key] = map[string]bool{}
		}
		ids[key][id] = true
		if runs[key] <= 2 {
			return RequeueAfter(0, busy) // twice busy, then fine
		}
		return nil
	})
	// Guarded or not, with no retries left or some: always requeued.
	b.enqueue(t, "api:call", []byte("zero"), asynq.MaxRetry(0))
	b.enqueue(t, "api:call", []byte("three"), asynq.MaxRetry(3))
	b.enqueue(t, "free:call", []byte("free"), asynq.MaxRetry(0))
	wait.Until(t, 20*time.Second, "every task to finish", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return runs["zero"] == 3 && runs["three"] == 3 && runs["free"] == 3 && b.queueInfo(t).Size == 0
	})
	qi := b.queueInfo(t)
	if qi.Archived != 0 || qi.Failed != 0 {
		t.Fatalf("archived %d, failed %d: a requested requeue counted as a failure", qi.Archived, qi.Failed)
	}
	mu.Lock()
	defer mu.Unlock()
	for key, seen := range ids {
		if len(seen) != 1 {
			t.Fatalf("task %s ran under IDs %v", key, seen)
		}
	}
	for key, rs := range retried {
		for _, n := range rs {
			if n != 0 {
				t.Fatalf("task %s saw retry counts %v: a requeue spent a retry", key, rs)
			}
		}
	}
	if n := b.events.count(EventRequeued); n != 6 {
		t.Fatalf("%d requeue events, want 6", n)
	}
	for _, e := range b.events.all(EventRequeued) {
		if !errors.Is(e.Err, ErrRequeueRequested) || !errors.Is(e.Err, busy) {
			t.Fatalf("requeue event cause %v", e.Err)
		}
	}
}

func TestRequeueAfterUsesTheGivenDelay(t *testing.T) {
	b := setup(t)
	g := b.guard(t, Config{Rules: []Rule{{Name: "api", TaskTypes: []string{"api:*"}, Limit: 1}}})
	var mu sync.Mutex
	var times []time.Time
	b.start(t, g, b.fastConfig(2), func(ctx context.Context, t *asynq.Task) error {
		mu.Lock()
		defer mu.Unlock()
		times = append(times, time.Now())
		if len(times) == 1 {
			return RequeueAfter(2*time.Second, errors.New("Retry-After: 2"))
		}
		return nil
	})
	b.enqueue(t, "api:call", nil)
	wait.Until(t, 20*time.Second, "the second run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(times) == 2
	})
	// asynq keeps whole seconds and its forwarder polls every 100ms here.
	if gap := times[1].Sub(times[0]); gap < time.Second || gap > 3500*time.Millisecond {
		t.Fatalf("ran again after %v, want about 2s", gap)
	}
	if e := b.events.all(EventRequeued); len(e) != 1 || e[0].Delay != 2*time.Second {
		t.Fatalf("requeue events: %+v", e)
	}
}

func TestARequeueAfterCauseNeverReachesAsynq(t *testing.T) {
	// A cause that wraps SkipRetry would make asynq archive the task, and
	// one that wraps RevokeTask would make it delete it.
	for _, sentinel := range []error{asynq.SkipRetry, asynq.RevokeTask} {
		b := setup(t)
		g := b.guard(t, apiConfig(2))
		var mu sync.Mutex
		runs := map[string]int{}
		b.start(t, g, b.fastConfig(2), func(ctx context.Context, t *asynq.Task) error {
			mu.Lock()
			defer mu.Unlock()
			id, _ := asynq.GetTaskID(ctx)
			if runs[id]++; runs[id] == 1 {
				return RequeueAfter(100*time.Millisecond, fmt.Errorf("HTTP 429: %w", sentinel))
			}
			return nil
		})
		id := b.enqueue(t, "api:call", nil, asynq.MaxRetry(3)).ID
		wait.Until(t, 20*time.Second, "the second run", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return runs[id] == 2
		})
		wait.Until(t, 5*time.Second, "the task to finish", func() bool { return b.queueInfo(t).ProcessedTotal == 1 })
		qi := b.queueInfo(t)
		if qi.Archived != 0 || qi.FailedTotal != 0 || len(runs) != 1 {
			t.Fatalf("cause %v: archived %d failed %d, runs %v", sentinel, qi.Archived, qi.FailedTotal, runs)
		}
	}
}

func TestRequeueAfterOutsideAGuardServerIsAnOrdinaryError(t *testing.T) {
	b := setup(t)
	g := b.guard(t, apiConfig(1))
	h := g.Middleware(asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		return RequeueAfter(time.Second, fmt.Errorf("busy: %w", asynq.SkipRetry))
	}))
	err := h.ProcessTask(context.Background(), asynq.NewTask("free:call", nil))
	if err == nil || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("error %v: want an error that does not wrap SkipRetry", err)
	}
}
