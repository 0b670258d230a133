package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/slotguard/slotguard/internal/asynqtest"
	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
)

// floodEnv sets how many distinct partitions TestPartitionFloodFigures
// makes; unset, the test is skipped (100,000 take a few minutes).
const floodEnv = "SLOTGUARD_FLOOD"

// TestPartitionFloodFigures measures what a producer that gives every task
// its own partition value costs: it runs the worker binary with a
// partitioned rule, enqueues one task per distinct tenant, and once all
// have run reports the limiter's Redis keys, the worker's RSS, and the size
// and time of /api/state, /limits and /metrics, and with
// SLOTGUARD_FLOOD_IDLE=11m the keys and memory again once the partitions
// have been idle that long. It asserts only the answers' sizes and times.
// Run: SLOTGUARD_FLOOD=100000 SLOTGUARD_FLOOD_IDLE=11m go test -run TestPartitionFloodFigures -v -timeout 60m ./cmd/worker
func TestPartitionFloodFigures(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(floodEnv))
	if n <= 0 {
		t.Skipf("set %s=N to flood a worker with N distinct partitions", floodEnv)
	}
	const queue = "w-flood"
	asynqtest.CleanQueue(t, queue)
	b := redistest.Real(t)
	db := asynqtest.DB(t)
	w := startWorker(t, fmt.Sprintf(`
redis:
  url: redis://%s/%d
worker:
  concurrency: 50
  queues: {%s: 1}
limits:
  prefix: %s
  rules:
    - name: tenant
      task_types: ["flood:*"]
      partition_by: tenant
      limit: 1
handlers:
  - type: "flood:sleep"
    sleep: {}
log:
  level: warn
`, redistest.Addr(), db, queue, b.Prefix))
	rss := func() string {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", w.Cmd.Process.Pid))
		if err != nil {
			return "?"
		}
		for line := range strings.Lines(string(status)) {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				return strings.TrimSpace(v)
			}
		}
		return "?"
	}
	t.Logf("worker RSS before the flood: %s", rss())

	c := asynq.NewClientFromRedisClient(asynqtest.Client(t))
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(n); i = next.Add(1) - 1 {
				payload := fmt.Sprintf(`{"ms":0,"tenant":"tenant-%07d"}`, i)
				if _, err := c.Enqueue(asynq.NewTask("flood:sleep", []byte(payload)), asynq.Queue(queue)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	t.Logf("enqueued %d tasks in %v", n, time.Since(start).Round(time.Second))
	wait.Until(t, 30*time.Minute, "every task to run", func() bool { return queueEmpty(t, queue) })
	t.Logf("all %d tasks ran %v after the first was enqueued", n, time.Since(start).Round(time.Second))

	report := func(when string) {
		keys, lasting := 0, 0
		rdb := asynqtest.Client(t)
		iter := rdb.Scan(t.Context(), 0, b.Prefix+":*", 10000).Iterator()
		for iter.Next(t.Context()) {
			keys++
			if ttl, err := rdb.PTTL(t.Context(), iter.Val()).Result(); err == nil && ttl < 0 {
				lasting++
			}
		}
		t.Logf("%s: Redis keys under the limiter prefix: %d (%.2f per partition), %d of them without a TTL", when, keys, float64(keys)/float64(n), lasting)
		t.Logf("%s: worker RSS %s, Go heap in use %s", when, rss(), heapInUse(w.Get("/metrics")))
	}
	report("after the flood")

	// Each GET asks for another page size, so that none is served from the
	// one-second cache; /metrics ignores the query. The first GET lists the
	// limiters in Redis (a SCAN); later ones read only their page.
	for pi, path := range []string{"/api/state?limit=%d", "/api/state?filter=tenant-000042&limit=%d", "/limits?limit=%d", "/metrics?n=%d"} {
		var size int
		var first, worst time.Duration
		for i := range 5 {
			t0 := time.Now()
			body := w.Get(fmt.Sprintf(path, 50-5*pi-i))
			if i == 0 {
				first = time.Since(t0)
			} else {
				worst = max(worst, time.Since(t0))
			}
			size = len(body)
			if size == 0 {
				t.Fatalf("GET %s: no answer", path)
			}
		}
		t.Logf("GET %s: %d bytes; first %v, slowest of the next 4 %v", path, size, first.Round(time.Millisecond), worst.Round(time.Millisecond))
		if size > 1<<20 || worst > 5*time.Second {
			t.Errorf("GET %s: %d bytes in %v; want a page, not every limiter", path, size, worst)
		}
	}
	// The idle cleanup: the server's sweeper drops partition semaphores
	// from the guard within a minute once they are 10 minutes unused, and
	// the limiter's keys expire after its IdleTimeout (10 minutes).
	if d, err := time.ParseDuration(os.Getenv(floodIdleEnv)); err == nil && d > 0 {
		time.Sleep(d)
		time.Sleep(150 * time.Second) // the runtime forces a GC every 2 minutes
		report(fmt.Sprintf("%v later", d+150*time.Second))
	}
}

// floodIdleEnv, a duration, makes TestPartitionFloodFigures wait that long
// after the flood and report the keys and memory again.
const floodIdleEnv = "SLOTGUARD_FLOOD_IDLE"

// heapInUse reads go_memstats_heap_inuse_bytes from a /metrics answer.
func heapInUse(metrics string) string {
	for line := range strings.Lines(string(metrics)) {
		if v, ok := strings.CutPrefix(line, "go_memstats_heap_inuse_bytes "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return fmt.Sprintf("%.1f MB", f/(1<<20))
			}
		}
	}
	return "?"
}

// TestStateReaderMemoryFigures measures the heap the state reader keeps for
// SLOTGUARD_FLOOD limiter names, and one page read's time, in process.
func TestStateReaderMemoryFigures(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv(floodEnv))
	if n <= 0 {
		t.Skipf("set %s=N to measure the state reader with N names", floodEnv)
	}
	b := redistest.Real(t)
	s := setupDashboard(t, b.Client, b.Prefix)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		s.admin.states.notice(fmt.Sprintf("cust/tenant-%07d", i))
	}
	t0 := time.Now()
	p, err := s.admin.states.page(t.Context(), pageQuery{Limit: defaultPageSize})
	if err != nil || p.Total != n {
		t.Fatalf("page: %v, %d names, want %d", err, p.Total, n)
	}
	took := time.Since(t0)
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("state reader with %d names: %.1f MB of heap; a page read of %d limiters took %v",
		n, float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), len(p.Limiters), took.Round(time.Millisecond))
	runtime.KeepAlive(s)
}
