package limiter

import (
	"context"
	"sync"
	"testing"
	"time"
)

// benchIdleWaiters is how many waiters BenchmarkIdleWaiters blocks.
const benchIdleWaiters = 100

// BenchmarkIdleWaiters blocks 100 waiters on a full semaphore of limit 1
// for 5 s (1 s in a smoke pass) and counts what their waiting costs Redis.
func BenchmarkIdleWaiters(b *testing.B) {
	r := newBenchRedis(b)
	for _, v := range []string{"slotguard", "seed"} {
		b.Run(v, func(b *testing.B) {
			ctx := b.Context()
			prefix := r.prefix(b)
			l, closeLock, err := openBenchLock(ctx, r.addr, v, prefix, "idle", 1)
			if err != nil {
				b.Fatal(err)
			}
			defer closeLock()
			release, err := l.acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			wctx, cancel := context.WithCancel(ctx)
			var wg sync.WaitGroup
			for range benchIdleWaiters {
				wg.Go(func() {
					if release, err := l.acquire(wctx); err == nil {
						b.Error("a waiter was granted a slot of a full semaphore")
						_ = release(ctx)
					}
				})
			}
			waitQueued(b, l, benchIdleWaiters)
			window := 5 * time.Second
			if benchQuick() {
				window = time.Second
			}
			b.ResetTimer()
			start := time.Now().Add(10 * time.Millisecond)
			d := measureCmds(b, r, start, start.Add(window), benchVariants[v].extra)
			b.StopTimer()
			cancel()
			wg.Wait()
			if err := release(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(d.topLevel)/window.Seconds()/benchIdleWaiters, "idle-cmds/s")
			b.Logf("%d waiters for %v: %d client commands, %d in all, %.1f µs of Redis time per client command: %v",
				benchIdleWaiters, window, d.topLevel, d.total, float64(d.usec)/float64(max(d.topLevel, 1)), d.calls)
		})
	}
}

// waitQueued waits until n callers wait for l: for slotguard, until Redis
// counts them; for a polling baseline, for more than one retry interval.
func waitQueued(b *testing.B, l benchLock, n int) {
	b.Helper()
	sl, ok := l.(slotguardLock)
	if !ok {
		time.Sleep(2 * benchRetry)
		return
	}
	deadline := time.Now().Add(time.Minute)
	for {
		info, err := sl.s.Info(b.Context())
		if err != nil {
			b.Fatal(err)
		}
		if info.Waiting >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d waiters queued after a minute", info.Waiting, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
