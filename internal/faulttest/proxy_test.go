package faulttest

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/fakeapi"
	"github.com/slotguard/slotguard/internal/netproxy"
	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
	"github.com/slotguard/slotguard/limiter"
)

func startProxy(t *testing.T, target string) *netproxy.Proxy {
	t.Helper()
	px, err := netproxy.Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	return px
}

// within runs f and fails the test if it takes longer than d: a fault must
// give an error, never a hang.
func within[T any](t *testing.T, d time.Duration, what string, f func() (T, error)) (T, error, time.Duration) {
	t.Helper()
	start := time.Now()
	v, err := f()
	took := time.Since(start)
	if took > d {
		t.Fatalf("%s took %v; want an answer within %v", what, took, d)
	}
	return v, err, took
}

// TestLimiterThroughFaultyNetwork is issue 8's fault test 5 at the limiter's
// level: through a proxy that adds latency, stalls and cuts, acquires fail
// with errors that say what happened, within their timeout; held permits
// learn they lost their lease; and no slot stays held once the network heals.
func TestLimiterThroughFaultyNetwork(t *testing.T) {
	t.Parallel()
	const lease = 1500 * time.Millisecond
	srv := redistest.StartServer(t)
	direct := srv.Client(nil)
	px := startProxy(t, srv.Addr())
	// go-redis bounds socket reads by ctx only with ContextTimeoutEnabled;
	// without it a stalled call waits for ReadTimeout (3 s) whatever ctx says.
	via := redis.NewClient(&redis.Options{Addr: px.Addr(), ContextTimeoutEnabled: true})
	plain := redis.NewClient(&redis.Options{Addr: px.Addr()})
	t.Cleanup(func() { _ = via.Close(); _ = plain.Close() })
	opts := &limiter.Options{Prefix: "net", Lease: lease}
	sem, err := limiter.New(via, "net", 2, opts)
	if err != nil {
		t.Fatal(err)
	}
	plainSem, _ := limiter.New(plain, "net", 2, opts)
	check, _ := limiter.New(direct, "net", 2, opts)
	heldNow := func() int {
		info, err := check.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return info.Held
	}
	ctx := t.Context()

	// Latency: slower, still correct.
	px.SetLatency(50 * time.Millisecond)
	p, err, took := within(t, 5*time.Second, "an acquire with 50ms latency", func() (*limiter.Permit, error) { return sem.Acquire(ctx) })
	if err != nil || took < 100*time.Millisecond {
		t.Fatalf("acquire with 50ms latency each way: %v after %v", err, took)
	}
	if err := p.Release(ctx); err != nil {
		t.Fatal(err)
	}
	px.Heal()

	// Stall: two permits are held, then no byte passes. An acquire gives up
	// after its timeout plus the bounded call that gives back what it may
	// have taken (2 s).
	p1, err := sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := sem.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	px.Stall()
	stalled := time.Now()
	lostAt := make(chan time.Duration, 2)
	for _, p := range []*limiter.Permit{p1, p2} {
		go func() {
			select {
			case <-p.Lost():
				lostAt <- time.Since(stalled)
			case <-time.After(30 * time.Second):
				lostAt <- -1
			}
		}()
	}
	_, err, stallTook := within(t, 4*time.Second, "an acquire through a stalled network", func() (*limiter.Permit, error) {
		return sem.Acquire(ctx, limiter.WithTimeout(time.Second))
	})
	if !errors.Is(err, limiter.ErrTimeout) || !strings.Contains(err.Error(), `limiter: acquire "net"`) {
		t.Fatalf("acquire through a stalled network: %v; want a wrapped limiter.ErrTimeout", err)
	}
	stallErr := err
	tctx, cancel := context.WithTimeout(ctx, time.Second)
	_, err, _ = within(t, 4*time.Second, "a try-acquire through a stalled network", func() (*limiter.Permit, error) { return sem.TryAcquire(tctx) })
	cancel()
	if err == nil || errors.Is(err, limiter.ErrNoSlot) || !strings.Contains(err.Error(), `limiter: try-acquire "net"`) {
		t.Fatalf("try-acquire through a stalled network: %v; want a wrapped Redis error, not ErrNoSlot", err)
	}
	// With go-redis's default options the same acquire still ends, later.
	_, err, plainTook := within(t, 15*time.Second, "an acquire through a stalled network, default client", func() (*limiter.Permit, error) {
		return plainSem.Acquire(ctx, limiter.WithTimeout(time.Second))
	})
	if !errors.Is(err, limiter.ErrTimeout) {
		t.Fatalf("acquire through a stalled network, default client: %v; want a wrapped limiter.ErrTimeout", err)
	}
	var lostAfter time.Duration
	for i := range 2 {
		d := <-lostAt
		if d < 0 || d > lease+time.Second {
			t.Fatalf("permit %d marked lost %v after the stall began; want within a lease (%v) and a second", i+1, d, lease)
		}
		lostAfter = max(lostAfter, d)
	}
	// Redis sees the leases run out while the proxy is still stalled.
	wait.Until(t, lease+time.Second, "the stalled holders' slots to come back", func() bool { return heldNow() == 0 })

	// Cut: every connection closes, and new ones are refused.
	px.Cut()
	_, err, took = within(t, 6*time.Second, "an acquire through a cut network", func() (*limiter.Permit, error) {
		return sem.Acquire(ctx, limiter.WithTimeout(10*time.Second))
	})
	if err == nil || errors.Is(err, limiter.ErrTimeout) || !strings.Contains(err.Error(), `limiter: acquire "net"`) {
		t.Fatalf("acquire through a cut network: %v; want a wrapped Redis error at once, not a timeout", err)
	}
	cutErr, cutTook := err, took

	// Heal: everything works again, and nothing is left held.
	px.Heal()
	if err := p1.Release(ctx); !errors.Is(err, limiter.ErrLeaseLost) {
		t.Fatalf("release of a permit lost during the stall: %v; want ErrLeaseLost", err)
	}
	p, err = sem.Acquire(ctx, limiter.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("acquire after heal: %v", err)
	}
	if err := p.Release(ctx); err != nil {
		t.Fatal(err)
	}
	_ = p2.Release(ctx)
	if n := heldNow(); n != 0 {
		t.Fatalf("%d slots held after heal", n)
	}
	t.Logf("FIGURES limiter-net: stall_error=%q after=%v (1s timeout; default go-redis client: %v) permits_lost_after=%v cut_error=%q after=%v leaked=0",
		stallErr, stallTook.Round(time.Millisecond), plainTook.Round(time.Millisecond), lostAfter.Round(time.Millisecond), cutErr, cutTook.Round(time.Millisecond))
}

// TestWorkersThroughFaultyNetwork is issue 8's fault test 5 end to end: two
// workers reach Redis through the proxy while it adds latency, stalls for two
// leases and cuts every connection twice. Tasks that could not get a slot
// are requeued, never archived; every task completes; the limit holds; no
// slot stays held; and the workers recover on their own when it heals.
func TestWorkersThroughFaultyNetwork(t *testing.T) {
	t.Parallel()
	const tasks, limit = 300, 5
	const lease = 2 * time.Second
	srv := redistest.StartServer(t)
	rdb := srv.Client(nil)
	px := startProxy(t, srv.Addr())
	api := &fakeapi.API{Delay: 50 * time.Millisecond}
	url := api.Start(t)
	cfg := writeConfig(t, workerConfig(px.Addr(), url, limit, 10, lease))
	procs := []*proc{startWorker(t, cfg), startWorker(t, cfg)}
	enqueue(t, rdb, "", tasks)
	start := time.Now()
	done := func() int { n, _ := api.Count(""); return n }
	progress := func(what string, more int) {
		t.Helper()
		from := done()
		wait.Until(t, 60*time.Second, what, func() bool { return done() >= min(from+more, tasks) })
	}

	progress("tasks to start", 20)
	px.SetLatency(30 * time.Millisecond)
	progress("tasks to progress with 30ms latency each way", 20)
	px.Heal()

	px.Stall()
	time.Sleep(2 * lease) // the fault itself: holders' leases run out meanwhile
	px.Heal()
	progress("tasks to progress after a stall of two leases", 20)

	cuts := 0
	for range 2 {
		px.Cut()
		cuts++
		time.Sleep(300 * time.Millisecond) // the fault: connections refused meanwhile
		px.Heal()
		progress("tasks to progress after a cut", 20)
	}
	if done() == tasks {
		t.Fatal("every task finished before the faults ended; the test proves nothing")
	}
	faultsEnd := time.Now()

	// Tasks whose handler lost its lease count as failed and come back after
	// asynq's retry delay (15-45 s); a dequeue whose reply a cut lost leaves
	// its task to asynq's recoverer (1-2 minutes; see TestWorkerChaos).
	wait.Until(t, 210*time.Second, "every task to complete", func() bool {
		return done() == tasks && drained(rdb)
	})
	distinct, dups := api.Count("")
	if n := archived(t, rdb); n != 0 {
		t.Fatalf("%d tasks archived", n)
	}
	// A slot handed over from the queue is taken up (renewed to a full
	// lease) before Acquire returns it, so a grant that expired on a stalled
	// connection is never acted on: no overshoot, whatever the faults.
	doa := deadOnArrival(procs...)
	if p := api.Peak(); p > limit {
		t.Fatalf("the API saw %d concurrent calls; limit %d (permits lost within %v of their task starting: %d); %s", p, limit, doaWindow, doa, api.PeakReport())
	}
	assertNoSlotHeldAfter(t, rdb, lease)
	requeued, redisRequeues, failed := 0, 0, 0
	for i, p := range procs {
		if !p.alive() {
			t.Fatalf("worker %d exited", i)
		}
		wait.Until(t, 10*time.Second, "the worker to be ready", p.ready)
		logs := p.logs()
		requeued += strings.Count(logs, `msg="task requeued"`)
		redisRequeues += strings.Count(logs, "reason=redis_error")
		failed += strings.Count(logs, "outcome=failure")
	}
	t.Logf("FIGURES workers-net: latency=1 stall=1(%v) cuts=%d tasks=%d completed=%d lost=%d archived=0 api_peak=%d limit=%d overshoot=%d dead_on_arrival_permits=%d leaked=0 requeued=%d (redis_error %d) failed_then_retried=%d lease_lost_lines=%d duplicates=%d tail_after_faults=%v total=%v",
		2*lease, cuts, tasks, distinct, tasks-distinct, api.Peak(), limit, max(0, api.Peak()-limit), doa, requeued, redisRequeues, failed, leaseLostLines(procs...), dups,
		time.Since(faultsEnd).Round(time.Second), time.Since(start).Round(time.Second))
}

// doaWindow is how soon after its task started a lost permit counts as
// dead on arrival.
const doaWindow = 250 * time.Millisecond

var (
	startedLine   = regexp.MustCompile(`^time=(\S+) .*msg="task started" task_id=(\S+)`)
	leaseLostLine = regexp.MustCompile(`^time=(\S+) .*msg="slot lease lost: task cancelled" task_id=(\S+)`)
)

// deadOnArrival counts the permits lost within doaWindow of their task
// starting, from the workers' logs.
func deadOnArrival(procs ...*proc) int {
	n := 0
	for _, p := range procs {
		started := map[string]time.Time{}
		for _, line := range strings.Split(p.logs(), "\n") {
			if m := startedLine.FindStringSubmatch(line); m != nil {
				started[m[2]], _ = time.Parse(time.RFC3339Nano, m[1])
			} else if m := leaseLostLine.FindStringSubmatch(line); m != nil {
				at, _ := time.Parse(time.RFC3339Nano, m[1])
				if s, ok := started[m[2]]; ok && at.Sub(s) < doaWindow {
					n++
				}
			}
		}
	}
	return n
}
