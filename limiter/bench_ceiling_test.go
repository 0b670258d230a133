//go:build linux || darwin

package limiter

import (
	"testing"
	"time"
)

// ceilingShape is the load of BenchmarkCeiling: 256 callers (64 per
// process, one per connection of the pool) that release their slot as soon
// as they get it, on a limit of 1000 that they never fill.
var ceilingShape = benchShape{name: "ceiling", limit: 1000, workers: 256, hold: 0}

// BenchmarkCeiling measures the most grants per second one Redis gives
// (issue 12): ceilingShape's callers in benchProcs processes acquire and
// release as fast as they can. The floor variant is two bare EVALSHA
// round trips ("return 1") per grant at the same concurrency: no
// script-based semaphore can give more. redis-cpu is the share of one core
// the redis-server process used in the window; below 1 the clients, not
// Redis, set the pace, and grants/s ÷ redis-cpu is what Redis alone could
// give.
func BenchmarkCeiling(b *testing.B) {
	r := newBenchRedis(b)
	for _, v := range []string{"slotguard", "seed", "xrate", "floor"} {
		b.Run(v, func(b *testing.B) {
			run := runBenchProcs(b, r, v, ceilingShape)
			window := run.to.Sub(run.from)
			load := analyzeLoad(run.events, ceilingShape.limit, run.from.UnixNano(), run.to.UnixNano())
			grants := float64(max(load.grants, 1))
			d := run.cmds
			b.ReportMetric(float64(load.grants)/window.Seconds(), "grants/s")
			b.ReportMetric(float64(d.topLevel)/grants, "cmds/grant")
			b.ReportMetric(float64(d.total)/grants, "total-cmds/grant")
			b.ReportMetric(float64(d.usec)/grants, "redis-usec/grant")
			b.ReportMetric(d.cpu.Seconds()/window.Seconds(), "redis-cpu")
			b.Logf("window %v: %d grants; redis-server CPU %.2f of a core, %.1f µs per grant (%.0f grants/s per core); %d client commands, %d in all: %v",
				window.Round(time.Microsecond), load.grants, d.cpu.Seconds()/window.Seconds(), float64(d.cpu.Microseconds())/grants,
				float64(load.grants)/max(d.cpu.Seconds(), 1e-9), d.topLevel, d.total, d.calls)
			if run.maxHolders > int64(ceilingShape.limit) {
				b.Errorf("max-holders %d is above the limit %d", run.maxHolders, ceilingShape.limit)
			}
		})
	}
}
