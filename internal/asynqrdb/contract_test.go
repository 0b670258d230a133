package asynqrdb

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/slotguard/slotguard/internal/asynqtest"
	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
)

// The contract: what this package assumes of asynq v0.26, checked against
// the real asynq with a real Redis. A failure here means asynq changed, and
// the scripts and the Client must change with it.

func TestMain(m *testing.M) { redistest.Main(m, nil) }

func TestTheContractIsWithAsynqV026(t *testing.T) {
	mod, err := os.ReadFile(filepath.Join("..", "..", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "github.com/hibiken/asynq v0.26.0\n") {
		t.Fatal("go.mod requires another asynq than v0.26.0: check this package's layout against it, then this test")
	}
}

// fixture is one test's queue on a claimed database.
type fixture struct {
	rdb    *redis.Client
	queue  string
	client *asynq.Client
	insp   *asynq.Inspector
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{rdb: asynqtest.Client(t), queue: "contract-" + redistest.NewPrefix()}
	f.client = asynq.NewClientFromRedisClient(f.rdb)
	f.insp = asynq.NewInspectorFromRedisClient(f.rdb)
	t.Cleanup(func() { asynqtest.CleanQueue(t, f.queue) })
	return f
}

func (f *fixture) enqueue(t *testing.T, opts ...asynq.Option) *asynq.TaskInfo {
	t.Helper()
	info, err := f.client.Enqueue(asynq.NewTask("contract:task", []byte(`{"n":1}`)), append([]asynq.Option{asynq.Queue(f.queue)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestKeysAndTheHeadOfTheQueue(t *testing.T) {
	f := newFixture(t)
	first := f.enqueue(t)
	second := f.enqueue(t)
	ctx := t.Context()
	if n := f.rdb.Exists(ctx, TaskKey(f.queue, first.ID)).Val(); n != 1 {
		t.Fatalf("no hash at %s", TaskKey(f.queue, first.ID))
	}
	if got := f.rdb.LRange(ctx, PendingKey(f.queue), 0, -1).Val(); len(got) != 2 {
		t.Fatalf("pending %s = %v", PendingKey(f.queue), got)
	}
	if st := f.rdb.HGet(ctx, TaskKey(f.queue, first.ID), fieldState).Val(); st != "pending" {
		t.Fatalf("state field = %q", st)
	}
	// A worker takes the oldest task first, from the right end: Wake's
	// RPUSH puts a task ahead of it.
	if err := f.rdb.RPush(ctx, PendingKey(f.queue), second.ID).Err(); err != nil {
		t.Fatal(err)
	}
	if err := f.rdb.LRem(ctx, PendingKey(f.queue), 1, second.ID).Err(); err != nil { // the older copy, nearer the left
		t.Fatal(err)
	}
	got := make(chan string, 2)
	srv := startServer(t, f, nil, asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		got <- id
		return nil
	}), 1)
	defer srv.Shutdown()
	if a, b := <-got, <-got; a != second.ID || b != first.ID {
		t.Fatalf("ran %s then %s; want %s (pushed right) first", a, b, second.ID)
	}
}

// startServer runs an asynq server for f's queue on c (f's client when nil).
func startServer(t *testing.T, f *fixture, c redis.UniversalClient, h asynq.Handler, concurrency int, opts ...func(*asynq.Config)) *asynq.Server {
	t.Helper()
	if c == nil {
		c = f.rdb
	}
	cfg := asynq.Config{Concurrency: concurrency, Queues: map[string]int{f.queue: 1},
		TaskCheckInterval: 20 * time.Millisecond, DelayedTaskCheckInterval: 100 * time.Millisecond,
		LogLevel: asynq.ErrorLevel, Logger: &asynqtest.Log{}}
	for _, o := range opts {
		o(&cfg)
	}
	srv := asynq.NewServerFromRedisClient(c, cfg)
	if err := srv.Start(h); err != nil {
		t.Fatal(err)
	}
	return srv
}

func TestParkKeepsTheMessageButItsLastError(t *testing.T) {
	f := newFixture(t)
	enq := f.enqueue(t, asynq.MaxRetry(3), asynq.TaskID("keep-me"), asynq.Timeout(time.Minute), asynq.Retention(time.Hour))
	ctx := t.Context()
	// What a worker's dequeue leaves: the task active and leased.
	if err := f.rdb.LMove(ctx, PendingKey(f.queue), ActiveKey(f.queue), "RIGHT", "LEFT").Err(); err != nil {
		t.Fatal(err)
	}
	f.rdb.ZAdd(ctx, LeaseKey(f.queue), redis.Z{Score: float64(time.Now().Add(time.Minute).Unix()), Member: enq.ID})
	task := Task{Queue: f.queue, ID: enq.ID}
	for range 2 { // a second park (after a lost reply) changes nothing
		if ok, err := Park(ctx, f.rdb, task, time.Now().Add(time.Hour), "waiting for a slot"); err != nil || !ok {
			t.Fatalf("Park: %v %v", ok, err)
		}
	}
	info, err := f.insp.GetTaskInfo(f.queue, enq.ID)
	if err != nil {
		t.Fatal(err)
	}
	if info.State != asynq.TaskStateRetry || info.LastErr != "waiting for a slot" || info.Retried != 0 || info.MaxRetry != 3 ||
		info.Type != "contract:task" || string(info.Payload) != `{"n":1}` || info.Timeout != time.Minute || info.Retention != time.Hour {
		t.Fatalf("parked task as the Inspector sees it: %+v", info)
	}
	if ok, err := Park(ctx, f.rdb, Task{Queue: f.queue, ID: "nobody"}, time.Now(), "x"); err != nil || ok {
		t.Fatalf("parking a task that is not active: %v %v", ok, err)
	}
	// Woken: at the head of the queue, its message as it was.
	if res, err := Wake(ctx, f.rdb, task, "contract-wakes"); err != nil || res != Woken {
		t.Fatalf("Wake: %v %v", res, err)
	}
	info, err = f.insp.GetTaskInfo(f.queue, enq.ID)
	if err != nil || info.State != asynq.TaskStatePending || info.LastErr != "" {
		t.Fatalf("woken task: %+v %v", info, err)
	}
	if res, _ := Wake(ctx, f.rdb, task, "contract-wakes"); res != Running {
		t.Fatalf("waking a pending task: %v, want Running", res)
	}
	if res, _ := Wake(ctx, f.rdb, Task{Queue: f.queue, ID: "nobody"}, "contract-wakes"); res != Gone {
		t.Fatalf("waking a missing task: %v, want Gone", res)
	}
}

func TestParkIsDueAtTheTasksDeadlineWhenThatComesFirst(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	deadline := time.Now().Add(time.Minute).Truncate(time.Second)
	cases := []struct {
		name string
		opts []asynq.Option
		due  time.Time
		want time.Time
	}{
		{"a deadline before due", []asynq.Option{asynq.Deadline(deadline), asynq.Timeout(time.Second)}, deadline.Add(time.Hour), deadline},
		{"a deadline after due", []asynq.Option{asynq.Deadline(deadline)}, deadline.Add(-30 * time.Second), deadline.Add(-30 * time.Second)},
		{"a timeout only", []asynq.Option{asynq.Timeout(time.Second)}, deadline.Add(time.Hour), deadline.Add(time.Hour)},
	}
	for _, c := range cases {
		enq := f.enqueue(t, c.opts...)
		if err := f.rdb.LMove(ctx, PendingKey(f.queue), ActiveKey(f.queue), "RIGHT", "LEFT").Err(); err != nil {
			t.Fatal(err)
		}
		if ok, err := Park(ctx, f.rdb, Task{Queue: f.queue, ID: enq.ID}, c.due, "waiting"); err != nil || !ok {
			t.Fatalf("%s: Park: %v %v", c.name, ok, err)
		}
		got, err := f.rdb.ZScore(ctx, RetryKey(f.queue), enq.ID).Result()
		if err != nil {
			t.Fatal(err)
		}
		if int64(got) != c.want.Unix() {
			t.Errorf("%s: due at %v, want %v", c.name, time.Unix(int64(got), 0), c.want)
		}
	}
}

// follower records the follow-up calls asynq's processor makes after a
// handler returns an error, and drops those a test asks it to.
type follower struct {
	*Client
	mu    sync.Mutex
	calls [][]any
	keys  [][]string
}

func (r *follower) EvalSha(ctx context.Context, sha string, keys []string, args ...any) *redis.Cmd {
	r.record(keys, args)
	return r.Client.EvalSha(ctx, sha, keys, args...)
}

func (r *follower) record(keys []string, args []any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, args)
	r.keys = append(r.keys, keys)
}

func TestTheFollowUpOfAParkedTaskIsDroppedWhateverItsRetries(t *testing.T) {
	for _, maxRetry := range []int{0, 3} {
		f := newFixture(t)
		client := Wrap(f.rdb, 1, Hooks{})
		var log asynqtest.Log
		parked := make(chan Task, 1)
		handler := asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
			id, _ := asynq.GetTaskID(ctx)
			task := Task{Queue: f.queue, ID: id}
			if ok, err := Park(ctx, f.rdb, task, time.Now().Add(time.Hour), "parked"); err != nil || !ok {
				return errors.New("park failed")
			}
			err := errors.New("slotguard: parked [mark-1234]")
			client.DropFollowUp(task, "mark-1234")
			parked <- task
			return err
		})
		srv := startServer(t, f, client, handler, 1, func(c *asynq.Config) {
			c.Logger = client.Logger(&log)
			c.LogLevel = asynq.DebugLevel
			c.IsFailure = func(error) bool { return false }
		})
		enq := f.enqueue(t, asynq.MaxRetry(maxRetry))
		task := <-parked
		wait.Until(t, 5*time.Second, "asynq's follow-up", func() bool { return !client.dropping(task.ID) })
		srv.Shutdown()
		info, err := f.insp.GetTaskInfo(f.queue, enq.ID)
		if err != nil || info.State != asynq.TaskStateRetry || info.LastErr != "parked" || info.Retried != 0 {
			t.Fatalf("MaxRetry(%d): after asynq's follow-up: %+v %v", maxRetry, info, err)
		}
		qi, _ := f.insp.GetQueueInfo(f.queue)
		if qi.Archived != 0 || qi.FailedTotal != 0 || qi.ProcessedTotal != 0 {
			t.Fatalf("MaxRetry(%d): archived %d failed %d processed %d", maxRetry, qi.Archived, qi.FailedTotal, qi.ProcessedTotal)
		}
		if strings.Contains(log.String(), "exhausted") {
			t.Fatalf("MaxRetry(%d): asynq logged:\n%s", maxRetry, log.String())
		}
	}
}

func TestAsynqsFollowUpsHaveTheShapeTheClientRecognises(t *testing.T) {
	// Retry (retries left) and Archive (none left) take the task ID and the
	// new encoded message, which holds the handler's error, first, and the
	// queue's active list among their keys; the client matches nothing
	// else.
	for _, maxRetry := range []int{0, 3} {
		f := newFixture(t)
		rec := &follower{Client: Wrap(f.rdb, 1, Hooks{})}
		done := make(chan string, 1)
		srv := startServer(t, f, rec, asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
			id, _ := asynq.GetTaskID(ctx)
			done <- id
			return errors.New("contract-error-text")
		}), 1, func(c *asynq.Config) {
			c.RetryDelayFunc = func(int, error, *asynq.Task) time.Duration { return time.Hour }
		})
		f.enqueue(t, asynq.MaxRetry(maxRetry))
		id := <-done
		var found bool
		wait.Until(t, 5*time.Second, "the follow-up", func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			for i, args := range rec.calls {
				if len(args) >= 2 && args[0] == any(id) && containsKey(rec.keys[i], ActiveKey(f.queue)) {
					msg, _ := args[1].([]byte)
					found = strings.Contains(string(msg), "contract-error-text")
					return true
				}
			}
			return false
		})
		srv.Shutdown()
		if !found {
			t.Fatalf("MaxRetry(%d): the follow-up's message does not hold the handler's error", maxRetry)
		}
	}
}

func TestAnIdleProcessorTakesAWokenTaskWithoutSleepingFirst(t *testing.T) {
	f := newFixture(t)
	wake := make(chan string, 1)
	client := Wrap(f.rdb, 1, Hooks{Idle: func(ctx context.Context) []string {
		select {
		case q := <-wake:
			return []string{q}
		case <-time.After(500 * time.Millisecond):
			return nil
		}
	}})
	ran := make(chan time.Time, 1)
	srv := startServer(t, f, client, asynq.HandlerFunc(func(context.Context, *asynq.Task) error {
		ran <- time.Now()
		return nil
	}), 2, func(c *asynq.Config) { c.TaskCheckInterval = 2 * time.Second })
	defer srv.Shutdown()
	time.Sleep(300 * time.Millisecond) // the processor is idle, its queue empty
	// A task put at the head of the queue, as Wake does, and the news.
	enq := f.enqueue(t)
	wake <- f.queue
	start := time.Now()
	select {
	case at := <-ran:
		if took := at.Sub(start); took > time.Second {
			t.Fatalf("the woken task ran after %v; the processor slept first", took)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("task %s never ran", enq.ID)
	}
}

// TestALongIdleWaitLeasesTheTaskFromWhenItIsTaken: the processor computes
// its task's lease before its dequeue call; a dequeue that waited long for
// woken tasks must not take one with that stale lease (after 30 s it would
// be in the past, and asynq would leave the task active with no worker).
func TestALongIdleWaitLeasesTheTaskFromWhenItIsTaken(t *testing.T) {
	f := newFixture(t)
	client := Wrap(f.rdb, 1, Hooks{IdleFor: 500 * time.Millisecond, Idle: func(ctx context.Context) []string {
		select {
		case <-time.After(100 * time.Millisecond):
			return []string{f.queue} // "all queues, after a while"
		case <-ctx.Done():
			return nil
		}
	}})
	leases := make(chan float64, 1)
	srv := startServer(t, f, client, asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		leases <- f.rdb.ZScore(context.Background(), LeaseKey(f.queue), id).Val()
		return nil
	}), 1, func(c *asynq.Config) { c.TaskCheckInterval = 100 * time.Millisecond })
	defer srv.Shutdown()
	time.Sleep(3 * time.Second) // idle: one dequeue call would have waited all along
	enqueued := time.Now()
	f.enqueue(t)
	select {
	case lease := <-leases:
		if want := float64(enqueued.Unix() + 28); lease < want {
			t.Fatalf("the task was leased until %v, %v after it was enqueued; want about asynq's 30 s",
				time.Unix(int64(lease), 0).UTC(), time.Unix(int64(lease), 0).Sub(enqueued).Round(time.Second))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the task never ran")
	}
}

func TestTheRecovererPutsBackAGuardedTaskWhoseHandlerHadNotStarted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		retries int
		started asynq.TaskState // where asynq's rules put the started task
	}{
		{"no retries left", 0, asynq.TaskStateArchived},
		{"retries left", 3, asynq.TaskStateRetry},
	} {
		t.Run(tc.name, func(t *testing.T) { recovererCase(t, tc.retries, tc.started) })
	}
}

func recovererCase(t *testing.T, retries int, startedState asynq.TaskState) {
	f := newFixture(t)
	ctx := t.Context()
	waiting := f.enqueue(t, asynq.MaxRetry(retries))
	running := f.enqueue(t, asynq.MaxRetry(retries))
	// Both held by a worker that died more than asynq's 30 s cutoff ago;
	// only the second one's handler had started.
	for _, id := range []string{waiting.ID, running.ID} {
		if err := f.rdb.LMove(ctx, PendingKey(f.queue), ActiveKey(f.queue), "RIGHT", "LEFT").Err(); err != nil {
			t.Fatal(err)
		}
		f.rdb.ZAdd(ctx, LeaseKey(f.queue), redis.Z{Score: float64(time.Now().Add(-time.Minute).Unix()), Member: id})
	}
	if err := MarkStarted(ctx, f.rdb, Task{Queue: f.queue, ID: running.ID}, 0); err != nil {
		t.Fatal(err)
	}
	client := Wrap(f.rdb, 1, Hooks{Guarded: func(string, string, []byte) bool { return true }})
	ran := make(chan string, 2)
	// A new server's recoverer runs as it starts.
	srv := startServer(t, f, client, asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		if n, _ := asynq.GetRetryCount(ctx); n != 0 {
			t.Errorf("task %s ran with retry count %d", id, n)
		}
		ran <- id
		return nil
	}), 1, func(c *asynq.Config) {
		c.RetryDelayFunc = func(int, error, *asynq.Task) time.Duration { return time.Hour }
	})
	defer srv.Shutdown()
	select {
	case id := <-ran:
		if id != waiting.ID {
			t.Fatalf("ran %s, want the task whose handler had not started", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the task whose handler had not started was not put back")
	}
	// The other follows asynq's rules: archived, or retried later with one
	// retry spent.
	wait.Until(t, 10*time.Second, "the started task to follow asynq's rules", func() bool {
		info, err := f.insp.GetTaskInfo(f.queue, running.ID)
		return err == nil && info.State == startedState
	})
	if info, _ := f.insp.GetTaskInfo(f.queue, running.ID); startedState == asynq.TaskStateRetry && info.Retried != 1 {
		t.Fatalf("the started task's retry count is %d, want 1", info.Retried)
	}
	select {
	case id := <-ran:
		t.Fatalf("ran %s too", id)
	default:
	}
}

// TestAStaleRecovererCallLeavesATaskTakenAgainAlone: two recoverers listed
// the same task whose worker died; the first put it back and a worker took
// it again (fresh lease) before the second's Retry came. That Retry must not
// take the task from under its new worker, started or not.
func TestAStaleRecovererCallLeavesATaskTakenAgainAlone(t *testing.T) {
	for _, started := range []bool{false, true} {
		t.Run(fmt.Sprintf("started=%v", started), func(t *testing.T) {
			f := newFixture(t)
			ctx := t.Context()
			enq := f.enqueue(t, asynq.MaxRetry(3))
			// Taken again: active, leased for 30 s from now.
			if err := f.rdb.LMove(ctx, PendingKey(f.queue), ActiveKey(f.queue), "RIGHT", "LEFT").Err(); err != nil {
				t.Fatal(err)
			}
			f.rdb.ZAdd(ctx, LeaseKey(f.queue), redis.Z{Score: float64(time.Now().Add(30 * time.Second).Unix()), Member: enq.ID})
			f.rdb.HSet(ctx, TaskKey(f.queue, enq.ID), "state", "active")
			if started {
				if err := MarkStarted(ctx, f.rdb, Task{Queue: f.queue, ID: enq.ID}, 0); err != nil {
					t.Fatal(err)
				}
			}
			// The stale Retry, shaped as asynq v0.26's: the message with
			// one more retry and the lease-expired error.
			msg, err := f.rdb.HGet(ctx, TaskKey(f.queue, enq.ID), "msg").Bytes()
			if err != nil {
				t.Fatal(err)
			}
			msg = protowire.AppendTag(msg, msgFieldRetried, protowire.VarintType)
			msg = protowire.AppendVarint(msg, 1)
			msg = protowire.AppendTag(msg, msgFieldErrorMsg, protowire.BytesType)
			msg = protowire.AppendString(msg, asynq.ErrLeaseExpired.Error())
			client := Wrap(f.rdb, 1, Hooks{Guarded: func(string, string, []byte) bool { return true }})
			keys := []string{TaskKey(f.queue, enq.ID), ActiveKey(f.queue), LeaseKey(f.queue), RetryKey(f.queue)}
			// A SHA Redis does not know: the call fails if it gets through.
			res := client.EvalSha(ctx, strings.Repeat("0", 40), keys, enq.ID, msg, time.Now().Unix(), time.Now().Add(time.Hour).Unix(), true, int64(1<<62))
			if err := res.Err(); err != nil {
				t.Fatalf("the stale Retry reached Redis: %v", err)
			}
			info, err := f.insp.GetTaskInfo(f.queue, enq.ID)
			if err != nil || info.State != asynq.TaskStateActive || info.Retried != 0 {
				t.Fatalf("after the stale Retry: %+v, %v; want it active, as its worker holds it", info, err)
			}
		})
	}
}
