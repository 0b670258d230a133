package limiter

import (
	"cmp"
	"context"
	"flag"
	"fmt"
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
	addr    string
	rdb     *redis.Client // for setup and INFO; each variant gets its own client
	private bool          // started for this benchmark
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
	r := &benchRedis{addr: addr, rdb: benchClient(addr), private: mode == "private"}
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

// cmdStats is INFO commandstats (calls and microseconds per command name;
// "client|setinfo" is counted under "client") and INFO cpu (the CPU time
// the server process used, user and system).
type cmdStats struct {
	cmds map[string]cmdStat
	cpu  time.Duration
}

type cmdStat struct{ calls, usec int64 }

func readCmdStats(ctx context.Context, rdb redis.UniversalClient) (cmdStats, error) {
	s, err := rdb.Info(ctx, "commandstats", "cpu").Result()
	if err != nil {
		return cmdStats{}, err
	}
	out := cmdStats{cmds: map[string]cmdStat{}}
	for line := range strings.Lines(s) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		if name == "used_cpu_sys" || name == "used_cpu_user" {
			sec, _ := strconv.ParseFloat(rest, 64)
			out.cpu += time.Duration(sec * float64(time.Second))
			continue
		}
		name, found := strings.CutPrefix(name, "cmdstat_")
		if !found {
			continue
		}
		name, _, _ = strings.Cut(name, "|")
		st := out.cmds[name]
		for field := range strings.SplitSeq(rest, ",") {
			if v, ok := strings.CutPrefix(field, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				st.calls += n
			}
			if v, ok := strings.CutPrefix(field, "usec="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				st.usec += n
			}
		}
		out.cmds[name] = st
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
	usec     int64            // Redis CPU in the round trips (a script's time includes its commands')
	calls    map[string]int64 // per command
	cpu      time.Duration    // the server process's CPU time, network and event loop included
	from, to time.Time        // when the snapshots were taken, if known
}

// delta returns after-before. extra names commands the variant sends
// itself outside scripts (the seed's INCR, xrate's ZREM).
func (before cmdStats) delta(after cmdStats, extra ...string) cmdDelta {
	d := cmdDelta{calls: map[string]int64{}, cpu: after.cpu - before.cpu}
	for name, st := range after.cmds {
		if name == "info" {
			continue
		}
		n := st.calls - before.cmds[name].calls
		if n == 0 {
			continue
		}
		d.calls[name] = n
		d.total += n
		if benchTopLevel[name] || slices.Contains(extra, name) {
			d.topLevel += n
			d.usec += st.usec - before.cmds[name].usec
		}
	}
	return d
}

// window returns the part of [start, end) between the snapshots, which
// measureCmds may have taken late: the grants counted in it match the
// commands counted.
func (d cmdDelta) window(start, end time.Time) (from, to time.Time) {
	from, to = start, end
	if d.from.After(from) {
		from = d.from
	}
	if !d.to.IsZero() && d.to.Before(to) {
		to = d.to
	}
	return from, to
}

// slowlogStart makes a private server log every command slower than 1 ms
// and empties its slow log. On a shared server it does nothing.
func (r *benchRedis) slowlogStart(ctx context.Context) error {
	if !r.private {
		return nil
	}
	if err := r.rdb.ConfigSet(ctx, "slowlog-log-slower-than", "1000").Err(); err != nil {
		return err
	}
	return r.rdb.SlowLogReset(ctx).Err()
}

// slowlog describes the slow log of a private server: how many commands
// took over 1 ms, and the slowest few.
func (r *benchRedis) slowlog(ctx context.Context) string {
	if !r.private {
		return "no slow log on a shared server"
	}
	n, _ := r.rdb.SlowLogLen(ctx).Result()
	logs, err := r.rdb.SlowLogGet(ctx, 128).Result()
	if err != nil {
		return err.Error()
	}
	slices.SortFunc(logs, func(a, b redis.SlowLog) int { return cmp.Compare(b.Duration, a.Duration) })
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d commands over 1 ms", n)
	for _, l := range logs[:min(3, len(logs))] {
		fmt.Fprintf(&sb, "; %v %s", l.Duration.Round(10*time.Microsecond), benchScriptName(l.Args))
	}
	return sb.String()
}

// benchScriptName names a logged command, and the script an EVALSHA ran.
func benchScriptName(args []string) string {
	if len(args) == 0 {
		return "?"
	}
	name := args[0]
	if strings.EqualFold(name, "evalsha") && len(args) > 1 {
		sha := args[1]
		for s, script := range map[string]*redis.Script{
			"acquire": scriptAcquire, "release": scriptRelease, "renew": scriptRenew,
			"poll": scriptPoll, "setlimit": scriptSetLimit, "info": scriptInfo,
		} {
			if script.Hash() == sha {
				name += " " + s
			}
		}
	}
	last := args[len(args)-1]
	if strings.HasPrefix(last, "... (") {
		return fmt.Sprintf("%s with %s", name, strings.TrimPrefix(last, "... "))
	}
	return fmt.Sprintf("%s with %d args", name, len(args))
}
