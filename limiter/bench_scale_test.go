package limiter

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// BenchmarkScale fills one semaphore with 10,000 holders and then queues
// 10,000 waiters behind them. acquire-p99-ms is the 99th percentile latency
// of acquire calls made against that state: TryAcquire runs the same acquire
// script as Acquire (reap, promote, admission) and, the semaphore being
// full, returns ErrNoSlot without queueing, so every probe meets the same
// 10k/10k state. redis-bytes/holder is MEMORY USAGE of all the semaphore's
// keys with the holders in place and no waiter yet, divided by the holders.
func BenchmarkScale(b *testing.B) {
	r := newBenchRedis(b)
	b.Run("slotguard", func(b *testing.B) {
		const n = 10000
		window := 3 * time.Second
		if benchQuick() {
			window = 500 * time.Millisecond
		}
		ctx := b.Context()
		rdb := benchClient(r.addr)
		defer rdb.Close()
		s, err := New(rdb, "scale", n, &Options{Prefix: r.prefix(b)})
		if err != nil {
			b.Fatal(err)
		}

		start := time.Now()
		permits, fill := benchFill(b, s, n)
		b.Logf("%d holders in %v; acquire p50 %.2f ms, p99 %.2f ms while filling",
			n, time.Since(start), percentileMs(fill, 50), percentileMs(fill, 99))
		held := benchMemory(b, rdb, s)

		start = time.Now()
		wctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				if p, err := s.Acquire(wctx); err == nil {
					b.Error("a waiter was granted a slot of a full semaphore")
					_ = p.Release(ctx)
				}
			})
		}
		waitQueued(b, slotguardLock{s}, n)
		queued := benchMemory(b, rdb, s)
		b.Logf("%d waiters queued in %v; %.0f bytes per waiter", n, time.Since(start), float64(queued-held)/n)

		if err := r.slowlogStart(ctx); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		before, err := readCmdStats(ctx, r.rdb)
		if err != nil {
			b.Fatal(err)
		}
		var probes []time.Duration
		for end := time.Now().Add(window); time.Now().Before(end); {
			t := time.Now()
			_, err := s.TryAcquire(ctx)
			probes = append(probes, time.Since(t))
			if !errors.Is(err, ErrNoSlot) {
				b.Fatalf("TryAcquire on a full semaphore: %v", err)
			}
			time.Sleep(2 * time.Millisecond)
		}
		after, err := readCmdStats(ctx, r.rdb)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		b.Logf("slow log: %s", r.slowlog(ctx))
		d := before.delta(after)
		b.ReportMetric(percentileMs(probes, 99), "acquire-p99-ms")
		b.ReportMetric(float64(held)/n, "redis-bytes/holder")
		b.Logf("%d probes over %v: p50 %.2f ms, p99 %.2f ms, max %.2f ms; Redis ran %.0f client and %.0f total commands/s: %v",
			len(probes), window, percentileMs(probes, 50), percentileMs(probes, 99), percentileMs(probes, 100),
			float64(d.topLevel)/window.Seconds(), float64(d.total)/window.Seconds(), d.calls)

		start = time.Now()
		cancel()
		wg.Wait()
		benchReleaseAll(b, permits)
		b.Logf("teardown in %v", time.Since(start))
	})
}

// benchFill acquires n slots of s with 32 goroutines and returns the
// permits and the latency of each acquire.
func benchFill(b *testing.B, s *Semaphore, n int) ([]*Permit, []time.Duration) {
	b.Helper()
	const par = 32
	permits := make([]*Permit, n)
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	for g := range par {
		wg.Go(func() {
			for i := g; i < n; i += par {
				t := time.Now()
				p, err := s.Acquire(b.Context())
				lat[i] = time.Since(t)
				if err != nil {
					b.Error(err)
					return
				}
				permits[i] = p
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return permits, lat
}

func benchReleaseAll(b *testing.B, permits []*Permit) {
	b.Helper()
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := g; i < len(permits); i += 32 {
				if err := permits[i].Release(context.WithoutCancel(b.Context())); err != nil {
					b.Error(err)
				}
			}
		})
	}
	wg.Wait()
}

// benchMemory returns MEMORY USAGE, with every element counted, summed
// over the semaphore's keys.
func benchMemory(b *testing.B, rdb *redis.Client, s *Semaphore) int64 {
	b.Helper()
	var sum int64
	for _, k := range s.keys.keys {
		n, err := rdb.MemoryUsage(b.Context(), k, 0).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			b.Fatal(err)
		}
		sum += n
	}
	return sum
}
