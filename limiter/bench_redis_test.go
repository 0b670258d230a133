package limiter

import (
	"context"
	"flag"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/slotguard/slotguard/internal/redistest"
)

// benchRedisEnv chooses the server the benchmarks run against:
//
//   - "private" (the default when redis-server is installed): a redis-server
//     of the local installation, started on a free port for each top-level
//     benchmark. Nobody else sends it commands, so INFO commandstats deltas
//     count only the benchmark's own traffic.
//   - "shared": the server at REDIS_ADDR, under a fresh key prefix. Other
//     users of that server add to the command counts.
const benchRedisEnv = "SLOTGUARD_BENCH_REDIS"

// benchRedis is the server of one top-level benchmark.
type benchRedis struct {
	addr string
	rdb  *redis.Client // for setup and INFO; each variant gets its own client
}

func newBenchRedis(b *testing.B) *benchRedis {
	b.Helper()
	mode := os.Getenv(benchRedisEnv)
	if mode == "" {
		mode = "shared"
		if _, err := exec.LookPath("redis-server"); err == nil {
			mode = "private"
		}
	}
	var addr string
	switch mode {
	case "private":
		addr = redistest.StartServer(b).Addr()
	case "shared":
		addr = redistest.Real(b).Client.Options().Addr
	default:
		b.Fatalf("%s=%q: want private or shared", benchRedisEnv, mode)
	}
	r := &benchRedis{addr: addr, rdb: benchClient(addr)}
	b.Cleanup(func() { _ = r.rdb.Close() })
	return r
}

// benchClient is the client every variant uses: a pool large enough for
// 50 goroutines, and a pool timeout long enough for thousands of queued
// acquires at once (BenchmarkScale).
func benchClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64, PoolTimeout: 60 * time.Second})
}

// prefix returns a fresh key prefix whose keys are deleted when b ends.
func (r *benchRedis) prefix(b *testing.B) string {
	p := redistest.NewPrefix()
	b.Cleanup(func() { redistest.DeletePrefix(r.rdb, p) })
	return p
}

// benchQuick reports whether the run is a smoke pass (-benchtime=Nx with a
// N of 1, or -short): the fixed-time benchmarks then shorten their windows.
func benchQuick() bool {
	if testing.Short() {
		return true
	}
	f := flag.Lookup("test.benchtime")
	if f == nil {
		return false
	}
	v := f.Value.String()
	if n, ok := strings.CutSuffix(v, "x"); ok {
		k, err := strconv.Atoi(n)
		return err == nil && k == 1
	}
	return false
}

// cmdStats is INFO commandstats: calls per command name ("client|setinfo"
// is counted under "client").
type cmdStats map[string]int64

func readCmdStats(ctx context.Context, rdb redis.UniversalClient) (cmdStats, error) {
	s, err := rdb.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := cmdStats{}
	for line := range strings.Lines(s) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, found := strings.CutPrefix(name, "cmdstat_")
		if !ok || !found {
			continue
		}
		name, _, _ = strings.Cut(name, "|")
		for field := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(field, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[name] += n
			}
		}
	}
	return out, nil
}

// benchTopLevel are the commands that only a client sends: the script
// calls, and connection and Pub/Sub housekeeping. Redis also counts the
// commands a script runs in commandstats; those are not in this set.
var benchTopLevel = map[string]bool{
	"eval": true, "evalsha": true, "eval_ro": true, "evalsha_ro": true, "script": true,
	"subscribe": true, "unsubscribe": true, "psubscribe": true, "punsubscribe": true,
	"ping": true, "hello": true, "client": true, "select": true, "auth": true,
}

// cmdDelta is the traffic between two snapshots, without the INFO calls.
type cmdDelta struct {
	topLevel int64            // client round trips: benchTopLevel plus the variant's own commands
	total    int64            // every command Redis ran, including those inside scripts
	calls    map[string]int64 // per command
}

// delta returns after-before. extra names commands the variant sends
// itself outside scripts (the seed's INCR, xrate's ZREM).
func (before cmdStats) delta(after cmdStats, extra ...string) cmdDelta {
	d := cmdDelta{calls: map[string]int64{}}
	for name, n := range after {
		if name == "info" {
			continue
		}
		n -= before[name]
		if n == 0 {
			continue
		}
		d.calls[name] = n
		d.total += n
		if benchTopLevel[name] || slices.Contains(extra, name) {
			d.topLevel += n
		}
	}
	return d
}
