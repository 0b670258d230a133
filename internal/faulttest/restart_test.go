package faulttest

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/fakeapi"
	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
	"github.com/slotguard/slotguard/limiter"
)

// ready reports whether the worker's /readyz says it reaches Redis and runs.
func (p *proc) ready() bool {
	resp, err := http.Get("http://" + p.admin + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func leaseLostLines(procs ...*proc) int {
	n := 0
	for _, p := range procs {
		n += strings.Count(p.logs(), "slot lease lost")
	}
	return n
}

// TestRedisRestartWithAOFLosesNothing is issue 8's fault test 2: a
// redis-server with appendfsync always is SIGKILLed and restarted twice while
// two workers run 400 tasks, most of them parked in asynq's retry set at each
// restart. The workers reconnect on their own; every task
// completes, none is archived, no holder loses its lease (the AOF kept it),
// the limit holds and no slot stays held.
func TestRedisRestartWithAOFLosesNothing(t *testing.T) {
	t.Parallel()
	const tasks, limit = 400, 5
	const lease = 5 * time.Second // renewed every 1.7 s: a restart fits in a lease
	srv := redistest.StartServer(t, "--appendonly", "yes", "--appendfsync", "always")
	rdb := srv.Client(&redis.Options{MaxRetries: -1})
	api := &fakeapi.API{Delay: 50 * time.Millisecond}
	url := api.Start(t)
	cfg := writeConfig(t, workerConfig(srv.Addr(), url, limit, 10, lease))
	procs := []*proc{startWorker(t, cfg), startWorker(t, cfg)}
	enqueue(t, rdb, "", tasks)
	start := time.Now()

	restarts := 0
	var downtime time.Duration
	var parkedAtRestart []int64
	for _, at := range []int{tasks / 4, tasks * 3 / 5} {
		wait.Until(t, 60*time.Second, "tasks to progress", func() bool { n, _ := api.Count(""); return n >= at })
		// The tasks waiting for a slot are parked in asynq's retry set.
		parked, err := rdb.ZCard(t.Context(), "asynq:{"+queue+"}:retry").Result()
		if err != nil {
			t.Fatal(err)
		}
		if parked == 0 {
			t.Fatal("no task was parked at the restart; the test proves nothing about parked tasks")
		}
		parkedAtRestart = append(parkedAtRestart, parked)
		t0 := time.Now()
		srv.Restart() // SIGKILL, start on the same port and dir, wait for PING
		downtime = max(downtime, time.Since(t0))
		restarts++
		for _, p := range procs {
			wait.Until(t, 30*time.Second, "the worker to be ready again", p.ready)
		}
	}
	doneAtLastRestart, _ := api.Count("")
	if doneAtLastRestart == tasks {
		t.Fatal("every task finished before the last restart; the test proves nothing")
	}
	// A reply lost in a restart can leave a task in asynq's active list
	// with no worker (the dequeue ran, its reply did not arrive); asynq's
	// recoverer brings it back 1-2 minutes later. See TestWorkerChaos.
	wait.Until(t, 200*time.Second, "every task to complete", func() bool {
		n, _ := api.Count("")
		return n == tasks && drained(rdb)
	})
	distinct, dups := api.Count("")
	if n := archived(t, rdb); n != 0 {
		t.Fatalf("%d tasks archived", n)
	}
	if p := api.Peak(); p > limit {
		t.Fatalf("the API saw %d concurrent calls; limit %d; %s", p, limit, api.PeakReport())
	}
	assertNoSlotHeldAfter(t, rdb, lease)
	// No handler was cancelled or failed. A "slot lease lost" line can still
	// appear for a task that succeeded: its release ran, the restart lost the
	// reply, and go-redis's retry found the slot already given back.
	failed := 0
	for _, p := range procs {
		failed += strings.Count(p.logs(), "outcome=failure")
	}
	if failed != 0 {
		t.Fatalf("%d tasks failed across restarts with AOF", failed)
	}
	for i, p := range procs {
		if !p.alive() {
			t.Fatalf("worker %d exited", i)
		}
	}
	t.Logf("FIGURES restart-aof: parked_at_restarts=%v restarts=%d max_downtime=%v tasks=%d completed=%d lost=%d archived=0 api_peak=%d limit=%d overshoot=0 leaked=0 failed=0 spurious_lease_lost_lines=%d duplicates=%d took=%v",
		parkedAtRestart, restarts, downtime.Round(time.Millisecond), tasks, distinct, tasks-distinct, api.Peak(), limit, leaseLostLines(procs...), dups, time.Since(start).Round(time.Second))
}

// TestRedisRestartWithoutPersistence documents what a restart of a Redis
// without persistence loses, and what slotguard does about it:
//   - asynq's queued tasks are gone: they never run;
//   - the limiter's state is gone: no holder, no waiter; fences go on
//     rising, since a new state's fences start above the Redis clock;
//   - every holder learns at its next renewal (within lease/3) that its lease
//     is lost: its handler's context is cancelled and the worker logs
//     "slot lease lost";
//   - the workers keep running: they reconnect, the limit is seeded again
//     from their configuration, and new tasks run under it.
func TestRedisRestartWithoutPersistence(t *testing.T) {
	t.Parallel()
	const tasks, limit, concurrency = 30, 3, 5
	const lease = 3 * time.Second
	srv := redistest.StartServer(t) // --save "" and no AOF: nothing survives
	rdb := srv.Client(&redis.Options{MaxRetries: -1})
	api := &fakeapi.API{Delay: 2 * time.Second, AbortOnHangup: true} // so that a cancelled handler's call ends at the API
	url := api.Start(t)
	cfg := writeConfig(t, workerConfig(srv.Addr(), url, limit, concurrency, lease))
	procs := []*proc{startWorker(t, cfg), startWorker(t, cfg)}
	taken := len(procs) * concurrency // the most tasks the workers can hold

	sem, err := limiter.New(rdb, rule, limit, &limiter.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	// Move the fence counter past what the run would reach after the
	// restart if it counted from 0 again.
	for range 20 {
		p, err := sem.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		_ = p.Release(t.Context())
	}
	enqueue(t, rdb, "a", tasks)
	wait.Until(t, 30*time.Second, "every slot to be in use", func() bool { return api.InFlight() == limit })
	before, err := sem.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	q, _ := queueState(rdb)
	active := q.Active // taken by a worker: running, or waiting for a slot in its memory (a sample)
	servedA, _ := api.Count("a")
	old := api.InCall() // the holders' calls
	api.ResetPeak()
	srv.Restart()
	restarted := time.Now()

	// Everything in Redis is gone. Tasks a worker had already taken and
	// that were waiting for a slot may hold new ones already.
	after, err := sem.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// No grant yet (fence 0), or fences that went on rising: a new state's
	// fences start above the Redis clock.
	if after.Fence != 0 && after.Fence <= before.Fence {
		t.Fatalf("fence %d after the restart, %d before; want it above", after.Fence, before.Fence)
	}
	for _, h := range after.Holders {
		for _, b := range before.Holders {
			if h.Token == b.Token {
				t.Fatalf("holder %s survived the restart", h.Token)
			}
		}
	}
	if n, err := rdb.LLen(t.Context(), "asynq:{"+queue+"}:pending").Result(); err != nil || n != 0 {
		t.Fatalf("after the restart: %d pending tasks (%v); want asynq's queue gone", n, err)
	}

	// The holders learn at their next renewal, and stop.
	wait.Until(t, lease, "every holder to learn its lease is lost and stop its call", func() bool {
		return !api.AnyInCall(old) && leaseLostLines(procs...) >= 1
	})
	learned := time.Since(restarted)
	windowPeak := api.Peak()
	lost := leaseLostLines(procs...)
	if lost > limit {
		t.Fatalf("%d lease-lost lines for at most %d holders", lost, limit)
	}
	for _, p := range procs {
		wait.Until(t, 30*time.Second, "the worker to be ready again", p.ready)
	}

	// New work runs under the limit, seeded again from the configuration.
	api.ResetPeak()
	const more = 12
	enqueue(t, rdb, "b", more)
	wait.Until(t, 60*time.Second, "the new tasks to complete", func() bool {
		n, _ := api.Count("b")
		return n == more && drained(rdb)
	})
	if p := api.Peak(); p > limit {
		t.Fatalf("after the restart the API saw %d concurrent calls; limit %d; %s", p, limit, api.PeakReport())
	}
	if n := archived(t, rdb); n != 0 {
		t.Fatalf("%d tasks archived", n)
	}
	assertNoSlotHeldAfter(t, rdb, lease)
	info, err := sem.Info(context.Background())
	if err != nil || info.Limit != limit {
		t.Fatalf("limit after the restart: %d (%v), want %d seeded again", info.Limit, err, limit)
	}
	// Of the tasks from before the restart, only those a worker had already
	// taken could still run; the queued ones never came back. The workers
	// keep taking tasks up to their concurrency until the restart, so the
	// bound is that, not the sample of asynq's active list.
	finalA, _ := api.Count("a")
	if finalA-servedA > taken {
		t.Fatalf("%d old tasks served after the restart; at most the %d the workers could hold could run", finalA-servedA, taken)
	}
	if finalA == tasks {
		t.Fatal("every old task ran: nothing was queued at the restart; the test proves nothing")
	}
	// In the window before the old holders learn, they and new grants of
	// the fresh limiter can both call the API: at most twice the limit.
	if windowPeak > 2*limit {
		t.Fatalf("the API saw %d concurrent calls while old holders had not yet learned; want at most %d", windowPeak, 2*limit)
	}
	for i, p := range procs {
		if !p.alive() {
			t.Fatalf("worker %d exited", i)
		}
	}
	t.Logf("FIGURES restart-nopersist: restarts=1 tasks_before=%d served_before_restart=%d taken_by_workers=%d served_after_restart=%d lost=%d holders_at_restart=%d lease_lost_lines=%d all_stopped_within=%v api_peak_in_window=%d fence_before=%d fence_after=%d new_tasks=%d new_completed=%d api_peak_after=%d limit=%d leaked=0",
		tasks, servedA, active, finalA-servedA, tasks-finalA, before.Held, lost, learned.Round(time.Millisecond), windowPeak, before.Fence, after.Fence, more, more, api.Peak(), limit)
}
