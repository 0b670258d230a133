package limiter

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// benchShape is a load on one semaphore: workers callers share limit
// slots, and each holds its slot for hold and then asks again at once.
type benchShape struct {
	name    string // the semaphore's name, and how a child process finds the shape
	limit   int
	workers int
	hold    time.Duration
}

// contendedShape is the contended load of issue 3: limit 10, 50 workers,
// each holding its slot for 5 ms.
var contendedShape = benchShape{name: "contended", limit: 10, workers: 50, hold: 5 * time.Millisecond}

// benchWindow is the measured wall time of one contended run: one second
// per b.N (so -benchtime=5x measures five seconds), or 200 ms per b.N in a
// smoke pass.
func benchWindow(b *testing.B) time.Duration {
	unit := time.Second
	if benchQuick() {
		unit = 200 * time.Millisecond
	}
	return time.Duration(b.N) * unit
}

func BenchmarkUncontended(b *testing.B) {
	r := newBenchRedis(b)
	for _, v := range []string{"slotguard", "seed", "xrate", "floor"} {
		b.Run(v, func(b *testing.B) {
			ctx := b.Context()
			l, closeLock, err := openBenchLock(ctx, r.addr, v, r.prefix(b), "uncontended", 1)
			if err != nil {
				b.Fatal(err)
			}
			defer closeLock()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				release, err := l.acquire(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if err := release(ctx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pairs/s")
		})
	}
}

func BenchmarkContended(b *testing.B) {
	r := newBenchRedis(b)
	for _, v := range []string{"slotguard", "seed", "xrate"} {
		b.Run(v, func(b *testing.B) {
			ctx := b.Context()
			shape := contendedShape
			l, closeLock, err := openBenchLock(ctx, r.addr, v, r.prefix(b), shape.name, shape.limit)
			if err != nil {
				b.Fatal(err)
			}
			defer closeLock()
			start := time.Now().Add(20 * time.Millisecond)
			end := start.Add(benchWindow(b))
			hc := newHolderCount()
			var (
				events []benchEvent
				werr   error
				done   = make(chan struct{})
			)
			b.ResetTimer()
			go func() {
				defer close(done)
				events, werr = runBenchWorkers(ctx, l, shape, 0, shape.workers, start, end, hc)
			}()
			d := measureCmds(b, r, start, end, benchVariants[v].extra)
			<-done
			b.StopTimer()
			if werr != nil {
				b.Fatal(werr)
			}
			from, to := d.window(start, end)
			reportContended(b, shape, analyzeLoad(events, shape.limit, from.UnixNano(), to.UnixNano()), to.Sub(from), d, hc.most())
		})
	}
}

// measureCmds returns the commands Redis ran between start and end, as
// two snapshots taken then. A snapshot can be late (the process may not be
// scheduled at once); from and to say when they were taken.
func measureCmds(b *testing.B, r *benchRedis, start, end time.Time, extra []string) cmdDelta {
	b.Helper()
	ctx := context.WithoutCancel(b.Context())
	snapshot := func(at time.Time) (cmdStats, time.Time) {
		time.Sleep(time.Until(at))
		sent := time.Now()
		st, err := readCmdStats(ctx, r.rdb)
		if err != nil {
			b.Fatal(err)
		}
		return st, sent.Add(time.Since(sent) / 2)
	}
	before, from := snapshot(start)
	after, to := snapshot(end)
	d := before.delta(after, extra...)
	d.from, d.to = from, to
	return d
}

// reportContended reports the contended metrics of issue 3 and the
// fairness of issue 12 (the fewest and the most grants a worker got, per
// second of the window), and fails the benchmark when more holders than
// the limit were ever seen at once.
func reportContended(b *testing.B, shape benchShape, load benchLoad, window time.Duration, d cmdDelta, maxHolders int64) {
	b.Helper()
	grants := float64(max(load.grants, 1))
	hold := load.held / time.Duration(max(load.grants, 1))
	least, most := load.spread(shape.workers)
	b.ReportMetric(load.held.Seconds()/window.Seconds()/float64(shape.limit), "utilization")
	b.ReportMetric(percentileMs(load.handoffs, 50), "handoff-p50-ms")
	b.ReportMetric(percentileMs(load.handoffs, 99), "handoff-p99-ms")
	b.ReportMetric(float64(d.topLevel)/grants, "cmds/grant")
	b.ReportMetric(float64(d.total)/grants, "total-cmds/grant")
	b.ReportMetric(float64(d.usec)/grants, "redis-usec/grant")
	b.ReportMetric(float64(least)/window.Seconds(), "grants-min/s")
	b.ReportMetric(float64(most)/window.Seconds(), "grants-max/s")
	b.ReportMetric(float64(maxHolders), "max-holders")
	b.Logf("window %v: %d grants, mean hold %v (utilization by the nominal %v: %.3f), %d handoffs (mean %v); redis-server CPU %.2f of a core, %.0f µs per grant; %d client commands, %d in all: %v",
		window.Round(time.Microsecond), load.grants, hold.Round(time.Microsecond), shape.hold,
		float64(load.grants)/window.Seconds()/(float64(shape.limit)/shape.hold.Seconds()),
		len(load.handoffs), meanDuration(load.handoffs).Round(time.Microsecond),
		d.cpu.Seconds()/window.Seconds(), float64(d.cpu.Microseconds())/grants, d.topLevel, d.total, d.calls)
	b.Logf("grants per worker: fewest %d, most %d", least, most)
	if maxHolders > int64(shape.limit) {
		b.Errorf("max-holders %d is above the limit %d", maxHolders, shape.limit)
	}
}

// runBenchWorkers runs workers (of shape's) that, from start until end,
// acquire a slot of l, hold it for shape.hold and release it, and returns
// their merged events. Workers are numbered from base. A worker still
// waiting at end gives up.
func runBenchWorkers(ctx context.Context, l benchLock, shape benchShape, base, workers int, start, end time.Time, hc holderCount) ([]benchEvent, error) {
	actx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		all  []benchEvent
		errs []error
	)
	for i := range workers {
		wg.Go(func() {
			events, err := benchWorker(actx, l, shape, uint16(base+i), start, end, hc)
			mu.Lock()
			defer mu.Unlock()
			all = append(all, events...)
			errs = append(errs, err)
		})
	}
	wg.Wait()
	return all, errors.Join(errs...)
}

func benchWorker(ctx context.Context, l benchLock, shape benchShape, id uint16, start, end time.Time, hc holderCount) ([]benchEvent, error) {
	size := 1024 // a short hold: no estimate; append grows it
	if shape.hold > 0 {
		size = 3*int(end.Sub(start)/shape.hold)*shape.limit/shape.workers + 16
	}
	events := make([]benchEvent, 0, size)
	stamp := func(k benchKind) { events = append(events, benchEvent{T: time.Now().UnixNano(), K: k, W: id}) }
	time.Sleep(time.Until(start))
	for time.Now().Before(end) {
		stamp(evAcquireStart)
		release, err := l.acquire(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return events, fmt.Errorf("acquire: %w", err)
		}
		stamp(evAcquired)
		hc.enter()
		if shape.hold > 0 {
			time.Sleep(shape.hold)
		}
		hc.leave()
		stamp(evRelease)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = release(rctx)
		cancel()
		if err != nil {
			return events, fmt.Errorf("release: %w", err)
		}
	}
	return events, nil
}
