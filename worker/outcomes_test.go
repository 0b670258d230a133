package worker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/wait"
	"github.com/slotguard/slotguard/limiter"
)

func TestSlotIsReleasedWhenTheHandlerPanics(t *testing.T) {
	b := setup(t)
	g := b.guard(t, apiConfig(1))
	var runs atomic.Int32
	b.start(t, g, b.fastConfig(2), func(context.Context, *asynq.Task) error {
		if runs.Add(1) == 1 {
			panic("handler bug")
		}
		return nil
	})
	b.enqueue(t, "api:call", nil, asynq.MaxRetry(1))
	wait.Until(t, 10*time.Second, "the retry after the panic to run", func() bool { return runs.Load() == 2 })
	wait.Until(t, 5*time.Second, "the slot to be free", semIdle(t, b.sem(t, "api", 1)))
	if n := b.events.count(EventReleased); n < 1 {
		t.Errorf("released events = %d", n)
	}
}

func TestSlotIsReleasedWhenTheHandlerTimesOut(t *testing.T) {
	b := setup(t)
	g := b.guard(t, apiConfig(1))
	done := make(chan error, 1)
	b.start(t, g, b.fastConfig(2), func(ctx context.Context, _ *asynq.Task) error {
		<-ctx.Done()
		done <- ctx.Err()
		return ctx.Err()
	})
	b.enqueue(t, "api:call", nil, asynq.MaxRetry(0), asynq.Timeout(time.Second))
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("handler ctx error = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler's timeout never fired")
	}
	wait.Until(t, 5*time.Second, "the slot to be free", semIdle(t, b.sem(t, "api", 1)))
	// A task past its own timeout is a real failure: asynq archives it.
	wait.Until(t, 5*time.Second, "the task to be archived", func() bool { return b.queueInfo(t).Archived == 1 })
}

func TestLeaseLostCancelsTheHandler(t *testing.T) {
	b := setup(t)
	cfg := apiConfig(1)
	cfg.Lease = 600 * time.Millisecond
	g := b.guard(t, cfg)
	cause := make(chan error, 1)
	fence := make(chan int64, 1)
	b.start(t, g, b.fastConfig(2), func(ctx context.Context, _ *asynq.Task) error {
		f, _ := FenceFromContext(ctx)
		fence <- f
		<-ctx.Done()
		cause <- context.Cause(ctx)
		return ctx.Err()
	})
	b.enqueue(t, "api:call", nil, asynq.MaxRetry(0))
	sem := b.sem(t, "api", 1)
	var f int64
	select {
	case f = <-fence:
	case <-time.After(10 * time.Second):
		t.Fatal("the task did not run")
	}
	info, err := sem.Info(context.Background())
	if err != nil || len(info.Holders) != 1 || info.Holders[0].Fence != f || f < 1 {
		t.Fatalf("holders %+v, %v; want one holder with the handler's fence %d", info.Holders, err, f)
	}
	// Take the lease away, as an expiry during a partition would.
	key := b.prefix + ":{api}:holders"
	if err := b.rdb.ZAdd(context.Background(), key, redis.Z{Score: 1, Member: info.Holders[0].Token}).Err(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-cause:
		if !errors.Is(err, limiter.ErrLeaseLost) {
			t.Errorf("cause = %v, want ErrLeaseLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the handler was not cancelled")
	}
	wait.Until(t, 5*time.Second, "a lease-lost event", func() bool { return b.events.count(EventLeaseLost) == 1 })
}

func TestUnmatchedTaskCostsNoRedisCall(t *testing.T) {
	b := setup(t)
	var calls atomic.Int32
	b.rdb.AddHook(countHook{&calls})
	g := b.guard(t, apiConfig(1))
	ran := false
	h := g.Middleware(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { ran = true; return nil }))
	if err := h.ProcessTask(context.Background(), asynq.NewTask("email:send", []byte(`{"to":"x"}`))); err != nil {
		t.Fatal(err)
	}
	if !ran || calls.Load() != 0 {
		t.Fatalf("ran = %v, Redis calls = %d; want the handler run with no call", ran, calls.Load())
	}
}

// TestOnAPlainAsynqServerTasksWaitInTheirGoroutine runs the middleware on a
// server not made by NewServer: it cannot park, so a task waits for its
// slot in its goroutine, and nothing is archived or spends a retry.
func TestOnAPlainAsynqServerTasksWaitInTheirGoroutine(t *testing.T) {
	b := setup(t)
	g := b.guard(t, apiConfig(1))
	release := holdSlot(t, b.sem(t, "api", 1))
	var ran atomic.Int32
	srv := asynq.NewServerFromRedisClient(b.rdb, b.fastConfig(2))
	if err := srv.Start(g.Middleware(asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		if n, _ := asynq.GetRetryCount(ctx); n != 0 {
			t.Errorf("retry count = %d", n)
		}
		ran.Add(1)
		return nil
	}))); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	b.enqueue(t, "api:call", nil, asynq.MaxRetry(0))
	wait.Until(t, 10*time.Second, "the task to wait in its goroutine", func() bool { return b.queueInfo(t).Active == 1 })
	if b.events.count(EventParked) != 0 {
		t.Fatal("a task was parked by a server that cannot park")
	}
	release()
	wait.Until(t, 10*time.Second, "the task to run", func() bool { return ran.Load() == 1 })
	if qi := b.queueInfo(t); qi.Archived != 0 || qi.FailedTotal != 0 {
		t.Fatalf("archived %d, failed %d", qi.Archived, qi.FailedTotal)
	}
}
