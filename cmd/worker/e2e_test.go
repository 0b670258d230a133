package main

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/slotguard/slotguard/internal/asynqtest"
	"github.com/slotguard/slotguard/internal/fakeapi"
	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
	"github.com/slotguard/slotguard/internal/workerproc"
	"github.com/slotguard/slotguard/limiter"
)

// apiConfig is a worker config whose api:call handler calls url, under a
// limit on queue.
func apiConfig(db int, prefix, queue, url string, limit int, extra string) string {
	return fmt.Sprintf(`
redis:
  url: redis://%s/%d
worker:
  concurrency: 20
  queues: {%s: 1}
  shutdown_timeout: 10s
  delayed_task_check_interval: 200ms
limits:
  prefix: %s
  lease: 5s
  rules:
    - name: api
      task_types: ["api:*"]
      limit: %d
handlers:
  - type: "api:call"
    http:
      url: "%s/call/{n}"
      timeout: 5s
%s`, redistest.Addr(), db, queue, prefix, limit, url, extra)
}

func enqueueCalls(t *testing.T, queue string, n int, opts ...asynq.Option) {
	t.Helper()
	c := asynq.NewClientFromRedisClient(asynqtest.Client(t))
	for i := range n {
		payload := fmt.Sprintf(`{"n":"%d"}`, i)
		if _, err := c.Enqueue(asynq.NewTask("api:call", []byte(payload)), append(opts, asynq.Queue(queue))...); err != nil {
			t.Fatal(err)
		}
	}
}

func queueEmpty(t *testing.T, queue string) bool {
	in := asynq.NewInspectorFromRedisClient(asynqtest.Client(t))
	q, err := in.GetQueueInfo(queue)
	if err != nil {
		return false
	}
	return q.Pending+q.Active+q.Scheduled+q.Retry == 0
}

func archived(t *testing.T, queue string) int {
	in := asynq.NewInspectorFromRedisClient(asynqtest.Client(t))
	q, err := in.GetQueueInfo(queue)
	if err != nil {
		return 0
	}
	return q.Archived
}

func heldSlots(t *testing.T, prefix, name string) int {
	t.Helper()
	held, _ := slotsOf(t, prefix, name)
	return held
}

// slotsOf returns the slots of a limiter held by running tasks, and those
// reserved for parked tasks that were woken and wait in their queue.
func slotsOf(t *testing.T, prefix, name string) (held, reserved int) {
	t.Helper()
	s, err := limiter.New(asynqtest.Client(t), name, 1, &limiter.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range info.Holders {
		if strings.HasPrefix(h.Token, "@") {
			reserved += h.Weight
		} else {
			held += h.Weight
		}
	}
	return held, reserved
}

func metric(body, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+]+)$`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

func TestThreeWorkersNeverExceedTheLimitAndCompleteEveryTask(t *testing.T) {
	const queue, tasks, limit = "w-e2e", 300, 4
	asynqtest.CleanQueue(t, queue)
	b := redistest.Real(t)
	api := &fakeapi.API{Delay: 50 * time.Millisecond}
	apiURL := api.Start(t)
	cfg := apiConfig(asynqtest.DB(t), b.Prefix, queue, apiURL, limit, "")
	var ws []*workerproc.Proc
	for range 3 {
		ws = append(ws, startWorker(t, cfg))
	}
	start := time.Now()
	enqueueCalls(t, queue, tasks)
	wait.Until(t, 90*time.Second, "every task to complete", func() bool {
		return api.Distinct() == tasks && queueEmpty(t, queue)
	})
	took := time.Since(start)
	if p := api.Peak(); p > limit || p < 2 {
		t.Fatalf("the API saw %d concurrent requests; limit %d", p, limit)
	}
	if n := archived(t, queue); n != 0 {
		t.Fatalf("%d tasks archived", n)
	}
	wait.Until(t, 10*time.Second, "slots to be released", func() bool { return heldSlots(t, b.Prefix, "api") == 0 })

	var success float64
	for _, w := range ws {
		body := w.Get("/metrics")
		if v := metric(body, `slotguard_limit{rule="api"}`); v != limit {
			t.Fatalf("slotguard_limit = %v, want %d", v, limit)
		}
		s := metric(body, `slotguard_tasks_total{outcome="success",type="api:call"}`)
		acq := metric(body, `slotguard_acquired_total{rule="api"}`)
		wakes := metric(body, `slotguard_wakes_total{rule="api"}`)
		waits := metric(body, `slotguard_acquire_wait_seconds_count{rule="api"}`)
		if s < 1 || acq < s || waits != acq+wakes {
			t.Fatalf("worker metrics: success %v acquired %v wakes %v waits %v", s, acq, wakes, waits)
		}
		success += s
	}
	if success < tasks {
		t.Fatalf("workers report %v successes, want at least %d", success, tasks)
	}
	t.Logf("%d tasks through 3 workers in %v (ideal %v); API peak %d of %d; duplicates %d",
		tasks, took.Round(time.Millisecond), time.Duration(tasks/limit)*api.Delay, api.Peak(), limit, api.Duplicates())
}

func TestSIGTERMDuringLoadLosesNoTaskAndLeaksNoSlot(t *testing.T) {
	const queue, tasks, limit = "w-term", 40, 2
	asynqtest.CleanQueue(t, queue)
	b := redistest.Real(t)
	api := &fakeapi.API{Delay: 200 * time.Millisecond}
	apiURL := api.Start(t)
	cfg := apiConfig(asynqtest.DB(t), b.Prefix, queue, apiURL, limit, "")
	w := startWorker(t, cfg)
	enqueueCalls(t, queue, tasks)
	wait.Until(t, 20*time.Second, "some tasks to complete", func() bool { return api.Distinct() >= 4 })
	w.Signal(syscall.SIGTERM)
	if err := w.Wait(t, 20*time.Second); err != nil {
		t.Fatalf("worker exited with %v after SIGTERM", err)
	}
	// No running task's slot is left; a slot reserved for a woken task
	// waits for the worker that runs the task (below) to redeem it.
	if held, reserved := slotsOf(t, b.Prefix, "api"); held != 0 {
		t.Fatalf("%d slots still held after a graceful shutdown (%d reserved for woken tasks)", held, reserved)
	}
	done := api.Distinct()
	if done == tasks {
		t.Fatal("every task finished before the signal; the test proves nothing")
	}
	if !strings.Contains(w.Logs(), "worker stopped") {
		t.Fatalf("no clean stop in the log")
	}
	// Nothing was lost: a new worker finishes the rest.
	startWorker(t, cfg)
	wait.Until(t, 60*time.Second, "the rest to complete", func() bool { return api.Distinct() == tasks && queueEmpty(t, queue) })
	if n := archived(t, queue); n != 0 {
		t.Fatalf("%d tasks archived", n)
	}
	t.Logf("%d of %d tasks done before SIGTERM; the rest completed after a restart", done, tasks)
}

func TestHTTP429IsRequeuedWithoutSpendingRetries(t *testing.T) {
	const queue, tasks = "w-429", 10
	asynqtest.CleanQueue(t, queue)
	b := redistest.Real(t)
	var mu sync.Mutex
	calls := map[string]int{}
	api := &fakeapi.API{Delay: 5 * time.Millisecond, Reply: func(n string) (int, http.Header) {
		mu.Lock()
		defer mu.Unlock()
		calls[n]++
		if calls[n] == 1 {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}
		}
		return http.StatusOK, nil
	}}
	apiURL := api.Start(t)
	w := startWorker(t, apiConfig(asynqtest.DB(t), b.Prefix, queue, apiURL, 4, ""))
	start := time.Now()
	enqueueCalls(t, queue, tasks, asynq.MaxRetry(0)) // a failure would archive at once
	wait.Until(t, 30*time.Second, "every task to complete after its 429", func() bool {
		return api.Distinct() == tasks && queueEmpty(t, queue)
	})
	if took := time.Since(start); took < time.Second/2 {
		t.Fatalf("finished in %v: the Retry-After delay was ignored", took)
	}
	if n := archived(t, queue); n != 0 {
		t.Fatalf("%d tasks archived after a 429", n)
	}
	body := w.Get("/metrics")
	if v := metric(body, `slotguard_tasks_total{outcome="busy",type="api:call"}`); v != tasks {
		t.Fatalf("busy outcomes %v, want %d", v, tasks)
	}
	if v := metric(body, `slotguard_requeues_total{reason="busy",rule=""}`); v != tasks {
		t.Fatalf("busy requeues %v, want %d", v, tasks)
	}
	in := asynq.NewInspectorFromRedisClient(asynqtest.Client(t))
	if q, err := in.GetQueueInfo(queue); err != nil || q.Failed != 0 {
		t.Fatalf("failed count %v (%v): a 429 counted as a failure", q, err)
	}
}
