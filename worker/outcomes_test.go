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

// apiConfig guards "api:*" tasks with one rule of the given limit.
func apiConfig(limit int) Config {
	return Config{AcquireTimeout: 30 * time.Second, Rules: []Rule{{Name: "api", TaskTypes: []string{"api:*"}, Limit: limit}}}
}

func semIdle(t *testing.T, s *limiter.Semaphore) func() bool {
	return func() bool {
		info, err := s.Info(context.Background())
		return err == nil && info.Held == 0 && info.Waiting == 0
	}
}

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

func TestShutdownReturnsWaitingTasksToTheQueue(t *testing.T) {
	b := setup(t)
	g := b.guard(t, apiConfig(1))
	sem := b.sem(t, "api", 1)
	release := holdSlot(t, sem)
	cfg := b.fastConfig(5)
	cfg.ShutdownTimeout = 20 * time.Second
	var ran atomic.Int32
	h := func(context.Context, *asynq.Task) error { ran.Add(1); return nil }
	srv := b.start(t, g, cfg, h)
	const n = 5
	for range n {
		b.enqueue(t, "api:call", nil, asynq.MaxRetry(0))
	}
	wait.Until(t, 10*time.Second, "five waiters", func() bool {
		info, err := sem.Info(context.Background())
		return err == nil && info.Waiting == n
	})
	start := time.Now()
	srv.Shutdown()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v; waiting tasks should not wait for ShutdownTimeout", d)
	}
	info, err := sem.Info(context.Background())
	if err != nil || info.Held != 1 || info.Waiting != 0 {
		t.Errorf("after shutdown: %+v, %v; want only our slot held", info, err)
	}
	qi := b.queueInfo(t)
	if qi.Size != n || qi.Active != 0 || qi.Archived != 0 || qi.FailedTotal != 0 {
		t.Errorf("after shutdown: size %d active %d archived %d failed %d; want %d back in the queue",
			qi.Size, qi.Active, qi.Archived, qi.FailedTotal, n)
	}
	if got := b.events.count(EventRequeued); got != n {
		t.Errorf("requeued events = %d, want %d", got, n)
	}
	for _, e := range b.events.all(EventRequeued) {
		if !errors.Is(e.Err, ErrShuttingDown) {
			t.Errorf("requeue cause = %v", e.Err)
		}
	}

	// A new server finishes them all once the slot is free.
	release()
	b.start(t, g, b.fastConfig(5), h)
	wait.Until(t, 15*time.Second, "every task to run", func() bool { return ran.Load() == n })
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

type countHook struct{ n *atomic.Int32 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(int32(len(cmds))); return next(ctx, cmds) }
}

// TestRequeueWithoutHooksStillNeverArchives runs the middleware on a plain
// asynq server, as a user who forgot Guard.ServerConfig would.
func TestRequeueWithoutHooksStillNeverArchives(t *testing.T) {
	b := setup(t)
	g := b.guard(t, Config{AcquireTimeout: 200 * time.Millisecond, Rules: apiConfig(1).Rules})
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
	b.enqueue(t, "api:call", nil) // default MaxRetry 25: hooks would keep the ID
	wait.Until(t, 10*time.Second, "two requeues", func() bool { return b.events.count(EventRequeued) >= 2 })
	release()
	wait.Until(t, 10*time.Second, "the task to run", func() bool { return ran.Load() == 1 })
	for _, e := range b.events.all(EventRequeued) {
		if e.NewTaskID == "" {
			t.Errorf("requeue without hooks kept the ID; it must move the task")
		}
	}
	wait.Until(t, 5*time.Second, "the queue to drain", func() bool { qi := b.queueInfo(t); return qi.Size == 0 && qi.Active == 0 })
	if qi := b.queueInfo(t); qi.Archived != 0 || qi.FailedTotal != 0 {
		t.Errorf("archived %d, failed %d", qi.Archived, qi.FailedTotal)
	}
}
