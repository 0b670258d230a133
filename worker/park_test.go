package worker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
)

// ran records the IDs of the tasks a handler ran, in order.
type ran struct {
	mu  sync.Mutex
	ids []string
}

func (r *ran) add(ctx context.Context) {
	id, _ := asynq.GetTaskID(ctx)
	r.mu.Lock()
	r.ids = append(r.ids, id)
	r.mu.Unlock()
}

func (r *ran) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.ids...)
}

func (r *ran) count() int { return len(r.list()) }

func TestAParkedTaskKeepsItsIDRetriesAndRecordAndRunsOnce(t *testing.T) {
	b := setup(t)
	g := b.guard(t, apiConfig(1))
	release := holdSlot(t, b.sem(t, "api", 1))
	var r ran
	b.start(t, g, b.fastConfig(4), func(ctx context.Context, _ *asynq.Task) error {
		if n, _ := asynq.GetRetryCount(ctx); n != 0 {
			t.Errorf("retry count %d", n)
		}
		r.add(ctx)
		return nil
	})
	want := map[string]bool{}
	for i := range 4 {
		want[b.enqueue(t, "api:call", nil, asynq.MaxRetry(i%2)).ID] = true // MaxRetry(0) too
	}
	wait.Until(t, 10*time.Second, "every task to be parked", func() bool { return b.queueInfo(t).Retry == 4 })
	// asynq's Inspector shows each in the retry state, waiting for rule api,
	// with no retry spent.
	for id := range want {
		info, err := b.insp.GetTaskInfo(b.queue, id)
		if err != nil {
			t.Fatal(err)
		}
		if info.State != asynq.TaskStateRetry || info.Retried != 0 || !strings.Contains(info.LastErr, `waiting for a slot of rule "api"`) {
			t.Fatalf("parked task as the Inspector sees it: state %v retried %d last error %q", info.State, info.Retried, info.LastErr)
		}
	}
	if info, _ := b.sem(t, "api", 1).Info(t.Context()); info.Parked != 4 {
		t.Fatalf("Info.Parked = %d, want 4", info.Parked)
	}
	release()
	wait.Until(t, 10*time.Second, "every task to run", func() bool { return r.count() == 4 })
	for _, id := range r.list() {
		if !want[id] {
			t.Fatalf("ran %s, which was never enqueued: a task changed its ID", id)
		}
		delete(want, id)
	}
	// asynq records a task as processed after its handler returned.
	wait.Until(t, 10*time.Second, "asynq to record every task", func() bool { return b.queueInfo(t).ProcessedTotal >= 4 })
	qi := b.queueInfo(t)
	if qi.Archived != 0 || qi.FailedTotal != 0 || qi.Retry != 0 || qi.ProcessedTotal != 4 {
		t.Fatalf("queue after the run: archived %d failed %d retry %d processed %d", qi.Archived, qi.FailedTotal, qi.Retry, qi.ProcessedTotal)
	}
	if p, w := b.events.count(EventParked), b.events.count(EventWoken); p != 4 || w != 4 {
		t.Fatalf("%d parks, %d wakes; want 4 of each", p, w)
	}
}

func TestACustomIDAndAUniquenessLockStayWithAParkedTask(t *testing.T) {
	b := setup(t)
	g := b.guard(t, apiConfig(1))
	release := holdSlot(t, b.sem(t, "api", 1))
	var r ran
	b.start(t, g, b.fastConfig(2), func(ctx context.Context, _ *asynq.Task) error { r.add(ctx); return nil })
	payload := []byte(`{"order":42}`)
	b.enqueue(t, "api:call", payload, asynq.TaskID("order-42"), asynq.Unique(time.Hour))
	wait.Until(t, 10*time.Second, "the task to be parked", func() bool { return b.queueInfo(t).Retry == 1 })
	// While it is parked, its ID and its uniqueness lock are taken.
	if _, err := b.client.Enqueue(asynq.NewTask("api:call", nil), asynq.Queue(b.queue), asynq.TaskID("order-42")); !errors.Is(err, asynq.ErrTaskIDConflict) {
		t.Fatalf("enqueueing the parked task's ID again: %v, want ErrTaskIDConflict", err)
	}
	if _, err := b.client.Enqueue(asynq.NewTask("api:call", payload), asynq.Queue(b.queue), asynq.Unique(time.Hour)); !errors.Is(err, asynq.ErrDuplicateTask) {
		t.Fatalf("enqueueing a duplicate of the parked task: %v, want ErrDuplicateTask", err)
	}
	release()
	wait.Until(t, 10*time.Second, "the task to run", func() bool { return r.count() == 1 })
	if got := r.list(); got[0] != "order-42" {
		t.Fatalf("ran %v", got)
	}
	// Done, asynq releases the lock as it would for any task.
	wait.Until(t, 5*time.Second, "the lock to go", func() bool {
		_, err := b.client.Enqueue(asynq.NewTask("api:call", payload), asynq.Queue(b.queue), asynq.Unique(time.Hour))
		return err == nil
	})
	wait.Until(t, 10*time.Second, "the second task to run", func() bool { return r.count() == 2 })
	if got := r.list(); len(got) != 2 || got[0] != "order-42" {
		t.Fatalf("ran %v: the parked task ran more than once", got)
	}
}

func TestParkedTasksKeepTheirPlaceInTheQueue(t *testing.T) {
	b := setup(t)
	g := b.guard(t, apiConfig(1))
	sem := b.sem(t, "api", 1)
	release := holdSlot(t, sem)
	var r ran
	b.start(t, g, b.fastConfig(1), func(ctx context.Context, _ *asynq.Task) error { r.add(ctx); return nil })
	var order []string
	for i := range 3 {
		order = append(order, b.enqueue(t, "api:call", nil).ID)
		wait.Until(t, 10*time.Second, "the task to be parked", func() bool { return b.queueInfo(t).Retry == i+1 })
	}
	// A live waiter of another process comes after them.
	live := make(chan error, 1)
	go func() {
		p, err := sem.Acquire(context.Background())
		if err == nil {
			live <- errors.Join(p.Release(context.Background()), errors.New("granted"))
			return
		}
		live <- err
	}()
	wait.Until(t, 5*time.Second, "the live waiter to queue", func() bool {
		info, err := sem.Info(context.Background())
		return err == nil && info.Waiting == 4
	})
	release()
	wait.Until(t, 10*time.Second, "the parked tasks to run", func() bool { return r.count() == 3 })
	if got := r.list(); got[0] != order[0] || got[1] != order[1] || got[2] != order[2] {
		t.Fatalf("ran %v, want %v", got, order)
	}
	select {
	case err := <-live:
		if err.Error() != "granted" {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the live waiter behind them never got the slot")
	}
}

func TestAGoroutineHoldsAWaitingTaskNoLongerThanParkAfter(t *testing.T) {
	b := setup(t)
	cfg := apiConfig(1)
	cfg.ParkAfter = 150 * time.Millisecond
	g := b.guard(t, cfg)
	release := holdSlot(t, b.sem(t, "api", 1))
	var mu sync.Mutex
	var held []time.Duration
	srv := g.NewServer(b.fastConfig(3))
	if err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		start := time.Now()
		err := g.Middleware(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })).ProcessTask(ctx, task)
		mu.Lock()
		held = append(held, time.Since(start))
		mu.Unlock()
		return err
	})); err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	for range 3 {
		b.enqueue(t, "api:call", nil)
	}
	wait.Until(t, 10*time.Second, "every task to be parked", func() bool { return b.queueInfo(t).Retry == 3 })
	mu.Lock()
	for _, d := range held {
		if d > cfg.ParkAfter+100*time.Millisecond {
			t.Errorf("a goroutine held a waiting task for %v; park_after is %v", d, cfg.ParkAfter)
		}
	}
	mu.Unlock()
	release()
}

func TestASlotGrantedWithinParkAfterRunsInTheGoroutineThatWaited(t *testing.T) {
	b := setup(t)
	cfg := apiConfig(1)
	cfg.ParkAfter = 5 * time.Second
	g := b.guard(t, cfg)
	release := holdSlot(t, b.sem(t, "api", 1))
	var r ran
	b.start(t, g, b.fastConfig(2), func(ctx context.Context, _ *asynq.Task) error { r.add(ctx); return nil })
	id := b.enqueue(t, "api:call", nil, asynq.MaxRetry(0)).ID
	wait.Until(t, 10*time.Second, "the task to be parked", func() bool { return b.queueInfo(t).Retry == 1 })
	release()
	wait.Until(t, 5*time.Second, "the task to run", func() bool { return r.count() == 1 })
	if b.events.count(EventWoken) != 0 {
		t.Fatal("the task was woken through the queue although its goroutine waited for it")
	}
	if got := r.list(); got[0] != id {
		t.Fatalf("ran %v", got)
	}
	wait.Until(t, 10*time.Second, "asynq to record the task", func() bool { return b.queueInfo(t).ProcessedTotal >= 1 })
	qi := b.queueInfo(t)
	if qi.Archived != 0 || qi.FailedTotal != 0 || qi.ProcessedTotal != 1 {
		t.Fatalf("archived %d failed %d processed %d", qi.Archived, qi.FailedTotal, qi.ProcessedTotal)
	}
}

func TestTimeParkedDoesNotCountAgainstTheTaskTimeout(t *testing.T) {
	b := setup(t)
	g := b.guard(t, apiConfig(1))
	release := holdSlot(t, b.sem(t, "api", 1))
	var r ran
	b.start(t, g, b.fastConfig(2), func(ctx context.Context, _ *asynq.Task) error {
		select {
		case <-time.After(300 * time.Millisecond):
			r.add(ctx)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	// Both a timeout and a deadline: it still tries for its slot. (asynq
	// then cuts the handler's deadline to a whole second, so the timeout of
	// 2 s leaves the handler at least 1 s.)
	b.enqueue(t, "api:call", nil, asynq.MaxRetry(0), asynq.Timeout(2*time.Second), asynq.Deadline(time.Now().Add(time.Hour)))
	wait.Until(t, 10*time.Second, "the task to be parked", func() bool { return b.queueInfo(t).Retry == 1 })
	time.Sleep(2500 * time.Millisecond) // longer than its timeout
	release()
	wait.Until(t, 10*time.Second, "the task to run to its end", func() bool { return r.count() == 1 })
	if qi := b.queueInfo(t); qi.Archived != 0 || qi.FailedTotal != 0 {
		t.Fatalf("archived %d failed %d: the time parked ate the timeout", qi.Archived, qi.FailedTotal)
	}
	if n := b.events.count(EventParked); n != 1 {
		t.Fatalf("parked %d times; its timeout must not bring it back before its slot", n)
	}
}

func TestADeadlinePassedWhileParkedIsHandledAsAsynqHandlesOne(t *testing.T) {
	b := setup(t)
	g := b.guard(t, apiConfig(1))
	release := holdSlot(t, b.sem(t, "api", 1))
	defer release()
	var calls atomic.Int32
	b.start(t, g, b.fastConfig(2), func(context.Context, *asynq.Task) error { calls.Add(1); return nil })
	b.enqueue(t, "api:call", nil, asynq.MaxRetry(0), asynq.Deadline(time.Now().Add(1500*time.Millisecond)))
	wait.Until(t, 10*time.Second, "the task to be parked", func() bool { return b.queueInfo(t).Retry == 1 })
	// It comes back at its deadline, and asynq archives it with no retries
	// left, as it does any task past its deadline.
	wait.Until(t, 15*time.Second, "the task to be archived", func() bool { return b.queueInfo(t).Archived == 1 })
	if calls.Load() != 0 {
		t.Fatal("the handler ran past the task's deadline")
	}
	tasks, err := b.insp.ListArchivedTasks(b.queue)
	if err != nil || len(tasks) != 1 || !strings.Contains(tasks[0].LastErr, "deadline") {
		t.Fatalf("archived: %+v %v", tasks, err)
	}
}

func TestShutdownLosesNoParkedOrWaitingTask(t *testing.T) {
	b := setup(t)
	cfg := apiConfig(1)
	cfg.ParkAfter = time.Minute // goroutines hold them until shutdown
	g := b.guard(t, cfg)
	release := holdSlot(t, b.sem(t, "api", 1))
	acfg := b.fastConfig(5)
	acfg.ShutdownTimeout = 20 * time.Second
	var r ran
	h := func(ctx context.Context, _ *asynq.Task) error { r.add(ctx); return nil }
	srv := b.start(t, g, acfg, h)
	const n = 5
	for range n {
		b.enqueue(t, "api:call", nil, asynq.MaxRetry(0))
	}
	wait.Until(t, 10*time.Second, "five parked tasks", func() bool { return b.queueInfo(t).Retry == n })
	start := time.Now()
	srv.Shutdown()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v; waiting tasks should not wait for ShutdownTimeout", d)
	}
	qi := b.queueInfo(t)
	if qi.Retry != n || qi.Active != 0 || qi.Archived != 0 || qi.FailedTotal != 0 {
		t.Errorf("after shutdown: retry %d active %d archived %d failed %d; want %d parked", qi.Retry, qi.Active, qi.Archived, qi.FailedTotal, n)
	}
	// Another server runs them all once the slot is free.
	release()
	b.start(t, b.guard(t, apiConfig(1)), b.fastConfig(5), h)
	wait.Until(t, 15*time.Second, "every task to run", func() bool { return r.count() == n })
}

func TestTheWorkerThatFreesASlotRunsTheWokenTaskWithoutAPollInterval(t *testing.T) {
	b := setup(t)
	g := b.guard(t, apiConfig(1))
	started := make(chan time.Time, 2)
	finish := make(chan struct{})
	var finished atomic.Int64
	cfg := b.fastConfig(2)
	cfg.TaskCheckInterval = 0 // asynq's default, 1 s
	b.start(t, g, cfg, func(context.Context, *asynq.Task) error {
		started <- time.Now()
		<-finish
		finished.Store(time.Now().UnixNano())
		return nil
	})
	b.enqueue(t, "api:call", nil)
	<-started
	b.enqueue(t, "api:call", nil) // parks: the only slot is taken
	wait.Until(t, 10*time.Second, "the second task to be parked", func() bool { return b.queueInfo(t).Retry == 1 })
	// The processor is idle now, with an empty queue: asynq alone would
	// sleep 0.5-1.5 s between looks.
	time.Sleep(1500 * time.Millisecond)
	close(finish)
	select {
	case at := <-started:
		if gap := at.Sub(time.Unix(0, finished.Load())); gap > 200*time.Millisecond {
			t.Fatalf("the woken task started %v after the first ended", gap)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the parked task never ran")
	}
}

func TestARedisErrorWhileParkingLosesNothing(t *testing.T) {
	b := setup(t)
	// The first park fails before Redis runs it; the second runs but its
	// reply is lost; the third finds the task parked already.
	var parks atomic.Int32
	f := redistest.NewFaulty(b.rdb, nil)
	f.Decide = func(args []any) redistest.Fault {
		if len(args) != 3 {
			return redistest.Pass
		}
		_, due := args[1].(int64)
		_, field := args[2].([]byte)
		if !due || !field {
			return redistest.Pass
		}
		switch parks.Add(1) {
		case 1:
			return redistest.FailBefore
		case 2:
			return redistest.LoseReply
		}
		return redistest.Pass
	}
	cfg := apiConfig(1)
	cfg.Prefix = b.prefix
	g, err := New(f, cfg, &Options{Name: t.Name(), OnEvent: b.events.add})
	if err != nil {
		t.Fatal(err)
	}
	release := holdSlot(t, b.sem(t, "api", 1))
	var r ran
	b.start(t, g, b.fastConfig(2), func(ctx context.Context, _ *asynq.Task) error { r.add(ctx); return nil })
	id := b.enqueue(t, "api:call", nil, asynq.MaxRetry(0)).ID
	wait.Until(t, 10*time.Second, "the guard to park the task", func() bool { return b.events.count(EventParked) == 1 })
	if n := parks.Load(); n != 3 {
		t.Fatalf("%d park calls, want the failed one, the one whose reply was lost, and one more", n)
	}
	if n := b.events.count(EventRedisError); n != 2 {
		t.Fatalf("%d Redis error events, want 2", n)
	}
	release()
	wait.Until(t, 10*time.Second, "the task to run", func() bool { return r.count() == 1 })
	if got := r.list(); got[0] != id {
		t.Fatalf("ran %v, want %s", got, id)
	}
	if qi := b.queueInfo(t); qi.Archived != 0 || qi.FailedTotal != 0 || qi.Retry != 0 {
		t.Fatalf("archived %d failed %d retry %d", qi.Archived, qi.FailedTotal, qi.Retry)
	}
}
