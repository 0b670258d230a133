package worker

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/slotguard/slotguard/limiter"
)

// BenchmarkRequeueDelay measures the real delay of a requeue: from the
// guard's requeue to the task's next run, for a requested delay of 1 s, at
// asynq's default DelayedTaskCheckInterval (5 s) and at 100 ms. asynq stores
// the time in whole seconds and its forwarder moves due tasks only every
// DelayedTaskCheckInterval, so the real delay is between the requested delay
// minus 1 s and the requested delay plus the interval. Each op requeues 10
// tasks once, for both paths (5 keep their ID, 5 have no retries left).
func BenchmarkRequeueDelay(b *testing.B) {
	for _, iv := range []time.Duration{5 * time.Second, 100 * time.Millisecond} {
		b.Run("forwarder="+iv.String(), func(b *testing.B) {
			var all []time.Duration
			for range b.N {
				all = append(all, measureRequeueDelay(b, iv)...)
			}
			slices.Sort(all)
			b.ReportMetric(float64(all[len(all)/2].Milliseconds()), "p50-ms")
			b.ReportMetric(float64(all[0].Milliseconds()), "min-ms")
			b.ReportMetric(float64(all[len(all)-1].Milliseconds()), "max-ms")
		})
	}
}

func measureRequeueDelay(b *testing.B, interval time.Duration) []time.Duration {
	b.StopTimer()
	defer b.StartTimer()
	bb := benchBundle(b)
	const n = 10
	var mu sync.Mutex
	requeued := map[string]time.Time{} // by original task ID
	var delays []time.Duration
	g, err := New(bb.rdb, Config{Prefix: bb.prefix, AcquireTimeout: 50 * time.Millisecond,
		Rules: []Rule{{Name: "api", TaskTypes: []string{"api:*"}, Limit: n}}},
		&Options{Backoff: func(int) time.Duration { return time.Second }, OnEvent: func(e Event) {
			if e.Kind == EventRequeued {
				mu.Lock()
				requeued[e.Task.ID] = time.Now()
				mu.Unlock()
			}
		}})
	if err != nil {
		b.Fatal(err)
	}
	sem, err := limiter.New(bb.rdb, "api", n, &limiter.Options{Prefix: bb.prefix})
	if err != nil {
		b.Fatal(err)
	}
	p, err := sem.Acquire(context.Background(), limiter.WithWeight(n))
	if err != nil {
		b.Fatal(err)
	}
	released := false
	var done sync.WaitGroup
	done.Add(n)
	srv := g.NewServer(asynq.Config{Concurrency: n, Queues: map[string]int{bb.queue: 1},
		DelayedTaskCheckInterval: interval, Logger: quietLogger{}, LogLevel: asynq.ErrorLevel})
	if err := srv.Start(g.Middleware(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		if orig := task.Headers()[OriginalIDHeader]; orig != "" {
			id = orig
		}
		mu.Lock()
		delays = append(delays, time.Since(requeued[id]))
		mu.Unlock()
		done.Done()
		return nil
	}))); err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown()
	for i := range n {
		opt := asynq.MaxRetry(map[bool]int{true: 0, false: 25}[i%2 == 0])
		if _, err := bb.client.Enqueue(asynq.NewTask("api:call", nil), asynq.Queue(bb.queue), opt); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for !released {
		mu.Lock()
		released = len(requeued) == n
		mu.Unlock()
		if time.Now().After(deadline) {
			b.Fatal("tasks were not requeued")
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = p.Release(context.Background())
	done.Wait()
	return delays
}
