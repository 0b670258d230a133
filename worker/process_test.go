package worker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/asynqtest"
	"github.com/slotguard/slotguard/internal/fakeapi"
	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
)

func init() { childModes["server"] = childServer }

// enterScript counts a running handler in KEYS[1] and keeps the highest
// count in KEYS[2]: a counter outside the guard.
var enterScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end
return n`)

// Keys of a cross-process test, under its prefix: the running handlers
// now, the most at once, the tasks done, the tasks started (by pid), and the
// tasks that ran with a retry spent.
func runningKey(prefix string) string { return prefix + ":running" }
func peakKey(prefix string) string    { return prefix + ":peak" }
func doneKey(prefix string) string    { return prefix + ":done" }
func startedKey(prefix string, pid int) string {
	return prefix + ":started:" + strconv.Itoa(pid)
}
func retriedKey(prefix string) string { return prefix + ":retried" }

// childServer is one worker process: an asynq server of Concurrency
// SG_CONCURRENCY and a guard of limit SG_LIMIT and lease SG_LEASE whose
// handler calls the fake API at SG_API (which counts the calls in flight,
// outside the guard, and holds each for its delay), until its stdin closes.
func childServer() error {
	db, _ := strconv.Atoi(os.Getenv(asynqtest.DBEnv))
	prefix, queue := os.Getenv("SG_PREFIX"), os.Getenv("SG_QUEUE")
	limit, _ := strconv.Atoi(os.Getenv("SG_LIMIT"))
	concurrency, _ := strconv.Atoi(os.Getenv("SG_CONCURRENCY"))
	lease, _ := time.ParseDuration(os.Getenv("SG_LEASE"))
	api := os.Getenv("SG_API")
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr(), DB: db, PoolSize: 64})
	defer rdb.Close()
	g, err := New(rdb, Config{Prefix: prefix, Lease: lease,
		Rules: []Rule{{Name: "api", TaskTypes: []string{"api:call"}, Limit: limit}}}, nil)
	if err != nil {
		return err
	}
	srv := g.NewServer(asynq.Config{Concurrency: concurrency, Queues: map[string]int{queue: 1},
		TaskCheckInterval: 50 * time.Millisecond, DelayedTaskCheckInterval: 100 * time.Millisecond,
		Logger: quietLogger{}, LogLevel: asynq.ErrorLevel})
	started := startedKey(prefix, os.Getpid())
	h := asynq.HandlerFunc(func(ctx context.Context, _ *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		if n, _ := asynq.GetRetryCount(ctx); n > 0 {
			rdb.SAdd(ctx, retriedKey(prefix), id)
		}
		rdb.SAdd(ctx, started, id)
		resp, err := http.Get(api + "/call/" + id)
		if err != nil {
			return err
		}
		resp.Body.Close()
		rdb.SAdd(ctx, doneKey(prefix), id)
		return nil
	})
	if err := srv.Start(g.Middleware(h)); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	srv.Shutdown()
	return nil
}

// workerProc is a childServer process.
type workerProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	killed bool
}

// kill sends SIGKILL and waits for the process to end.
func (p *workerProc) kill(t *testing.T) {
	t.Helper()
	p.killed = true
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
}

// startWorkerProc starts a childServer for b's queue and prefix, calling
// api; it is shut down (stdin closed) when the test ends, unless the test
// killed it.
func startWorkerProc(t *testing.T, b *bundle, api string, limit, concurrency int, lease time.Duration) *workerProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=server", asynqtest.DBEnv+"="+strconv.Itoa(asynqtest.DB(t)),
		"SG_PREFIX="+b.prefix, "SG_QUEUE="+b.queue, "SG_LIMIT="+strconv.Itoa(limit),
		"SG_CONCURRENCY="+strconv.Itoa(concurrency), "SG_LEASE="+lease.String(), "SG_API="+api)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &workerProc{cmd: cmd, stdin: in}
	t.Cleanup(func() {
		in.Close()
		if p.killed {
			return
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("worker process: %v", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("worker process %d did not shut down", cmd.Process.Pid)
		}
	})
	return p
}

func TestGlobalLimitAcrossProcesses(t *testing.T) {
	b := setup(t)
	const procs, tasks, limit = 3, 150, 4
	api := &fakeapi.API{Delay: 20 * time.Millisecond}
	url := api.Start(t)
	for range procs {
		startWorkerProc(t, b, url, limit, 20, 0)
	}
	for range tasks {
		b.enqueue(t, "api:call", nil)
	}
	ctx := context.Background()
	wait.Until(t, 60*time.Second, fmt.Sprintf("%d tasks done", tasks), func() bool {
		return b.rdb.SCard(ctx, doneKey(b.prefix)).Val() == tasks
	})
	peak := api.Peak()
	t.Logf("%d tasks over %d processes; peak concurrency %d (limit %d)", tasks, procs, peak, limit)
	if peak > limit || peak < 2 {
		t.Errorf("peak concurrency %d; want at most %d, and more than 1", peak, limit)
	}
}

// TestAWorkerKilledWhileTasksAreParkedLosesNone kills a worker process
// (SIGKILL) while tasks are parked and others run, all with MaxRetry(0).
// Every task whose handler had not started in the killed process runs, once,
// with no retry spent and none archived; only those whose handler it was
// running follow asynq's rules for a dead worker.
func TestAWorkerKilledWhileTasksAreParkedLosesNone(t *testing.T) {
	b := setup(t)
	const tasks, limit = 40, 2
	const lease = 2 * time.Second // a killed holder's slots come back this much later
	// Calls in flight when their worker dies end then: the API counts them
	// no longer.
	api := &fakeapi.API{Delay: 100 * time.Millisecond, AbortOnHangup: true}
	url := api.Start(t)
	victim := startWorkerProc(t, b, url, limit, 10, lease)
	startWorkerProc(t, b, url, limit, 10, lease)
	ids := map[string]bool{}
	for range tasks {
		ids[b.enqueue(t, "api:call", nil, asynq.MaxRetry(0)).ID] = true
	}
	ctx := context.Background()
	wait.Until(t, 30*time.Second, "some tasks to be done and the rest parked", func() bool {
		return b.rdb.SCard(ctx, doneKey(b.prefix)).Val() >= 6 && b.queueInfo(t).Retry > 10
	})
	victim.kill(t)
	killed := time.Now()
	startWorkerProc(t, b, url, limit, 10, lease)
	// Everything but the tasks the victim held runs; those stay active, as
	// asynq leaves a dead worker's tasks until its lease on them expires.
	// They are known when nothing else is left, and no call is in flight
	// for a while (a live worker's active tasks are calling the API).
	quiet := 0
	for deadline := time.Now().Add(60 * time.Second); quiet < 5; time.Sleep(100 * time.Millisecond) {
		qi := b.queueInfo(t)
		settled := qi.Pending == 0 && qi.Retry == 0 && api.InFlight() == 0 && accounted(b) == tasks
		quiet = map[bool]int{true: quiet + 1, false: 0}[settled]
		if time.Now().After(deadline) {
			info, _ := b.sem(t, "api", limit).Info(ctx)
			for id := range ids {
				if ti, err := b.insp.GetTaskInfo(b.queue, id); err == nil && !b.rdb.SIsMember(ctx, doneKey(b.prefix), id).Val() {
					t.Logf("task %s: %v, last error %q, next %v", id, ti.State, ti.LastErr, ti.NextProcessAt)
				}
			}
			keys := b.rdb.Keys(ctx, b.prefix+":{api}:*").Val()
			for _, k := range keys {
				switch b.rdb.Type(ctx, k).Val() {
				case "zset":
					t.Logf("%s: %v", k, b.rdb.ZRangeWithScores(ctx, k, 0, -1).Val())
				case "hash":
					t.Logf("%s: %v", k, b.rdb.HGetAll(ctx, k).Val())
				}
			}
			t.Fatalf("timed out waiting for every task the victim did not hold to run; %d done, %d API calls in flight; queue %+v; limiter %+v",
				b.rdb.SCard(ctx, doneKey(b.prefix)).Val(), api.InFlight(), qi, info)
		}
	}
	took := time.Since(killed)
	// Those the victim held: some had started their handler, others were
	// on their way to being parked. As if asynq's lease on them had expired
	// a minute ago, a new worker's recoverer (which runs as it starts) puts
	// the second kind back in the queue.
	held, err := b.rdb.LRange(ctx, b.queue2key("active"), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range held {
		b.rdb.ZAdd(ctx, b.queue2key("lease"), redis.Z{Score: float64(time.Now().Add(-time.Minute).Unix()), Member: id})
	}
	startWorkerProc(t, b, url, limit, 10, lease)
	// A handler has started once the guard recorded it, right before the
	// handler's first line: the handler's own record may not have been made
	// when the process died.
	startedThere := map[string]bool{}
	for _, id := range b.rdb.SMembers(ctx, startedKey(b.prefix, victim.cmd.Process.Pid)).Val() {
		startedThere[id] = true
	}
	for _, id := range held {
		if b.rdb.HGet(ctx, b.queue2key("t:"+id), "slotguard_run").Val() == "0" {
			startedThere[id] = true
		}
	}
	notRun := func() []string {
		var out []string
		for id := range ids {
			if !startedThere[id] && !b.rdb.SIsMember(ctx, doneKey(b.prefix), id).Val() {
				out = append(out, id)
			}
		}
		return out
	}
	for deadline := time.Now().Add(30 * time.Second); len(notRun()) > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			for _, id := range notRun() {
				ti, _ := b.insp.GetTaskInfo(b.queue, id)
				run := b.rdb.HGet(ctx, b.queue2key("t:"+id), "slotguard_run").Val()
				t.Logf("task %s: %+v; slotguard_run %q", id, ti, run)
			}
			t.Fatalf("tasks whose handler had not started did not run: %v (the victim held %v)", notRun(), held)
		}
	}
	retried := b.rdb.SMembers(ctx, retriedKey(b.prefix)).Val()
	var archivedNotStarted []string
	archived, _ := b.insp.ListArchivedTasks(b.queue)
	for _, a := range archived {
		if !startedThere[a.ID] {
			archivedNotStarted = append(archivedNotStarted, a.ID)
		}
	}
	peak := int(api.Peak())
	t.Logf("%d tasks; the victim held %d when killed (%d with their handler started); the rest done %v after the kill; "+
		"archived %d (not started: %d), retried %d, peak %d of %d",
		tasks, len(held), countStarted(held, startedThere), took.Round(time.Millisecond), len(archived), len(archivedNotStarted), len(retried), peak, limit)
	if len(archivedNotStarted) != 0 || len(retried) != 0 {
		t.Fatalf("archived without having started %v, ran with a retry spent %v", archivedNotStarted, retried)
	}
	if peak > limit {
		t.Fatalf("peak concurrency %d, limit %d", peak, limit)
	}
}

// accounted counts the tasks that are done, still active or archived, each
// once: a task whose handler finished in a worker that died before asynq
// recorded it is done and then archived by asynq's recoverer.
func accounted(b *bundle) int {
	seen := map[string]bool{}
	for _, id := range b.rdb.SMembers(context.Background(), doneKey(b.prefix)).Val() {
		seen[id] = true
	}
	active, _ := b.insp.ListActiveTasks(b.queue)
	archived, _ := b.insp.ListArchivedTasks(b.queue)
	for _, ti := range append(active, archived...) {
		seen[ti.ID] = true
	}
	return len(seen)
}

func countStarted(ids []string, started map[string]bool) int {
	n := 0
	for _, id := range ids {
		if started[id] {
			n++
		}
	}
	return n
}

// TestParkedTasksRunWhenEveryWorkerThatSawThemIsGone kills the only worker,
// which had parked tasks, while one of its tasks holds the slot; a worker
// started afterwards runs every parked task once the dead holder's lease
// has run out, not after park_recheck (5 minutes).
func TestParkedTasksRunWhenEveryWorkerThatSawThemIsGone(t *testing.T) {
	b := setup(t)
	const tasks, limit = 6, 1
	const lease = 2 * time.Second
	api := &fakeapi.API{Delay: 300 * time.Millisecond, AbortOnHangup: true}
	url := api.Start(t)
	victim := startWorkerProc(t, b, url, limit, 5, lease)
	for range tasks {
		b.enqueue(t, "api:call", nil)
	}
	ctx := context.Background()
	wait.Until(t, 30*time.Second, "the other tasks to be parked", func() bool { return b.queueInfo(t).Retry == tasks-1 })
	parked, err := b.rdb.ZRange(ctx, b.queue2key("retry"), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	victim.kill(t)
	startWorkerProc(t, b, url, limit, 5, lease)
	wait.Until(t, 20*time.Second, "every parked task to run", func() bool {
		for _, id := range parked {
			if !b.rdb.SIsMember(ctx, doneKey(b.prefix), id).Val() {
				return false
			}
		}
		return true
	})
	if p := api.Peak(); p > limit {
		t.Fatalf("peak concurrency %d, limit %d", p, limit)
	}
}
