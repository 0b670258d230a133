package worker

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/asynqtest"
	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/limiter"
)

// End-to-end benchmark shape, from issue 4: 200 tasks of 50 ms under a
// limit of 10, on 3 asynq servers of Concurrency 20 at asynq's default
// intervals. The ideal makespan is 200 × 50 ms / 10 = 1 s.
const (
	e2eTasks       = 200
	e2eTaskTime    = 50 * time.Millisecond
	e2eLimit       = 10
	e2eServers     = 3
	e2eConcurrency = 20
	e2eIdeal       = e2eTasks * e2eTaskTime / e2eLimit
	// e2eCap stops a run that has not finished: the xrate recipe needs
	// minutes at asynq's defaults. Efficiency then counts only the tasks
	// done, and "completed" says how many that was.
	e2eCap = 30 * time.Second
	// e2eIdleWindow is how long idle load is measured.
	e2eIdleWindow = 3 * time.Second
	// xrateRetryIn is the xrate recipe's RetryIn: generous, asynq's
	// forwarder interval (5 s) dominates anyway.
	xrateRetryIn = time.Second
)

// e2eMode is what one end-to-end run enqueues and how it is served.
type e2eMode int

const (
	e2ePlain     e2eMode = iota // plain asynq, no limit: the baseline for cmds/task
	e2eGuarded                  // the limited type alone, guarded
	e2eFreeAlone                // only the unlimited type, on guarded servers
	e2eMixed                    // the limited type, then as many of the unlimited type
	e2eXrate                    // asynq's x/rate recipe: TryAcquire, else retry
)

// BenchmarkEndToEnd runs the shape above, each sub-benchmark on its own
// redis-server, so that every command Redis executes belongs to the run:
// cmds/task is INFO's total_commands_processed (which counts the commands
// that scripts run) over the run, divided by the tasks done, enqueueing
// included. It reports:
//   - plain: plain asynq running the same tasks with no limit (cmds/task).
//   - slotguard: efficiency (ideal makespan ÷ actual), max-running (counted
//     outside the guard), cmds/task, max-hold-ms (the longest a goroutine
//     held a task waiting for its slot), and idle-cmds/s beside
//     idle-cmds/s-plain for an idle plain server over the same window.
//   - slotguard-mixed: the limited tasks enqueued before as many tasks of an
//     unlimited type, in one queue: the limited type's efficiency, and
//     free-slowdown, the unlimited type's makespan ÷ its makespan alone on
//     the same servers.
//   - xrate: asynq's x/rate recipe, which tries a slot once and requeues
//     through RetryDelayFunc.
func BenchmarkEndToEnd(b *testing.B) {
	b.Run("plain", func(b *testing.B) { benchEndToEnd(b, e2ePlain) })
	b.Run("slotguard", func(b *testing.B) { benchEndToEnd(b, e2eGuarded) })
	b.Run("slotguard-mixed", func(b *testing.B) { benchEndToEnd(b, e2eMixed) })
	b.Run("xrate", func(b *testing.B) { benchEndToEnd(b, e2eXrate) })
}

func benchEndToEnd(b *testing.B, mode e2eMode) {
	srv := redistest.StartServer(b)
	var sum e2eResult
	var peak, hold float64
	var slowdown float64
	for range b.N {
		r := runEndToEnd(b, srv, mode)
		sum.efficiency += r.efficiency
		sum.completed += r.completed
		sum.cmdsPerTask += r.cmdsPerTask
		peak = max(peak, r.peak)
		hold = max(hold, r.maxHold.Seconds()*1000)
		if mode == e2eMixed {
			alone := runEndToEnd(b, srv, e2eFreeAlone)
			slowdown += r.freeTime.Seconds() / alone.freeTime.Seconds()
		}
	}
	n := float64(b.N)
	b.ReportMetric(sum.cmdsPerTask/n, "cmds/task")
	if mode == e2ePlain {
		return
	}
	b.ReportMetric(sum.efficiency/n, "efficiency")
	b.ReportMetric(peak, "max-running")
	b.ReportMetric(sum.completed/n, "completed")
	switch mode {
	case e2eGuarded:
		b.ReportMetric(hold, "max-hold-ms")
		guarded, plain := idleLoad(b)
		b.ReportMetric(guarded, "idle-cmds/s")
		b.ReportMetric(plain, "idle-cmds/s-plain")
	case e2eMixed:
		b.ReportMetric(hold, "max-hold-ms")
		b.ReportMetric(slowdown/n, "free-slowdown")
	}
}

// e2eResult is one run's measurements. efficiency, peak and completed are
// the limited type's; freeTime is when the last unlimited task ended.
type e2eResult struct {
	efficiency, peak, completed, cmdsPerTask float64
	freeTime, maxHold                        time.Duration
}

// xrateError is the recipe's rate-limit error.
type xrateError struct{ retryIn time.Duration }

func (e *xrateError) Error() string { return "rate limited" }

func runEndToEnd(b *testing.B, srv *redistest.Server, mode e2eMode) e2eResult {
	b.StopTimer()
	prefix := redistest.NewPrefix()
	queue := "q-" + prefix
	admin := srv.Client(nil)
	client := asynq.NewClientFromRedisClient(admin)
	before := commandsProcessed(b, admin)
	limited, free := e2eTasks, 0
	switch mode {
	case e2eFreeAlone:
		limited, free = 0, e2eTasks
	case e2eMixed:
		free = e2eTasks
	}
	for i := range limited + free {
		typ := "api:call"
		if i >= limited {
			typ = "free"
		}
		if _, err := client.Enqueue(asynq.NewTask(typ, nil), asynq.Queue(queue)); err != nil {
			b.Fatal(err)
		}
	}
	var running gauge
	var doneLimited, doneFree atomic.Int32
	var freeEnd, maxHold atomic.Int64
	start := time.Now()
	work := func(ctx context.Context, t *asynq.Task) error {
		if started, ok := ctx.Value(holdKey{}).(func()); ok {
			started()
		}
		if t.Type() == "free" {
			time.Sleep(e2eTaskTime)
			if doneFree.Add(1) == int32(free) {
				freeEnd.Store(int64(time.Since(start)))
			}
			return nil
		}
		running.enter()
		time.Sleep(e2eTaskTime)
		running.leave()
		doneLimited.Add(1)
		return nil
	}
	cfg := asynq.Config{Concurrency: e2eConcurrency, Queues: map[string]int{queue: 1}, Logger: quietLogger{}, LogLevel: asynq.ErrorLevel}
	var servers []interface{ Shutdown() }
	b.StartTimer()
	for range e2eServers {
		rdb := srv.Client(&redis.Options{PoolSize: 64})
		switch mode {
		case e2ePlain:
			s := asynq.NewServerFromRedisClient(rdb, cfg)
			if err := s.Start(asynq.HandlerFunc(work)); err != nil {
				b.Fatal(err)
			}
			servers = append(servers, s)
		case e2eXrate:
			servers = append(servers, startXrate(b, rdb, prefix, cfg, work))
		default:
			g, err := New(rdb, Config{Prefix: prefix, Rules: []Rule{{Name: "api", TaskTypes: []string{"api:*"}, Limit: e2eLimit}}}, nil)
			if err != nil {
				b.Fatal(err)
			}
			s := g.NewServer(cfg)
			if err := s.Start(holdTimer(g.Middleware(asynq.HandlerFunc(work)), &maxHold)); err != nil {
				b.Fatal(err)
			}
			servers = append(servers, s)
		}
	}
	deadline := start.Add(e2eCap)
	for (doneLimited.Load() < int32(limited) || doneFree.Load() < int32(free)) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	nLimited := doneLimited.Load()
	done := nLimited + doneFree.Load()
	if int(done) < limited+free {
		b.Logf("stopped after %v with %d of %d tasks done", e2eCap, done, limited+free)
	}
	after := commandsProcessed(b, admin)
	for _, s := range servers {
		s.Shutdown()
	}
	b.StartTimer()
	r := e2eResult{
		peak:      float64(running.peak.Load()),
		completed: float64(nLimited),
		freeTime:  time.Duration(freeEnd.Load()),
		maxHold:   time.Duration(maxHold.Load()),
	}
	if done > 0 {
		r.cmdsPerTask = float64(after-before) / float64(done)
	}
	if mode == e2ePlain || mode == e2eFreeAlone {
		r.completed = float64(done)
		return r
	}
	ideal := time.Duration(nLimited) * e2eTaskTime / e2eLimit
	r.efficiency = float64(ideal) / float64(elapsed)
	return r
}

// startXrate starts a server running asynq's x/rate recipe around work.
func startXrate(b *testing.B, rdb *redis.Client, prefix string, cfg asynq.Config, work asynq.HandlerFunc) *asynq.Server {
	sem, err := limiter.New(rdb, "api", e2eLimit, &limiter.Options{Prefix: prefix})
	if err != nil {
		b.Fatal(err)
	}
	cfg.IsFailure = func(err error) bool { _, ok := errors.AsType[*xrateError](err); return !ok }
	cfg.RetryDelayFunc = func(n int, err error, t *asynq.Task) time.Duration {
		if e, ok := errors.AsType[*xrateError](err); ok {
			return e.retryIn
		}
		return asynq.DefaultRetryDelayFunc(n, err, t)
	}
	s := asynq.NewServerFromRedisClient(rdb, cfg)
	if err := s.Start(asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		p, err := sem.TryAcquire(ctx)
		if errors.Is(err, limiter.ErrNoSlot) {
			return &xrateError{retryIn: xrateRetryIn}
		} else if err != nil {
			return err
		}
		defer p.Release(context.WithoutCancel(ctx))
		return work(ctx, t)
	})); err != nil {
		b.Fatal(err)
	}
	return s
}

// holdTimer wraps a guarded handler and keeps in longest the longest time a
// goroutine held a task before its handler ran or it was parked: the wait
// for a slot inside a goroutine.
func holdTimer(guarded asynq.Handler, longest *atomic.Int64) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		start := time.Now()
		var held atomic.Int64
		held.Store(-1)
		ctx = context.WithValue(ctx, holdKey{}, func() { held.CompareAndSwap(-1, int64(time.Since(start))) })
		err := guarded.ProcessTask(ctx, t)
		held.CompareAndSwap(-1, int64(time.Since(start))) // parked: it never ran
		for {
			cur := longest.Load()
			if held.Load() <= cur || longest.CompareAndSwap(cur, held.Load()) {
				return err
			}
		}
	})
}

type holdKey struct{}

// commandsProcessed is INFO's total_commands_processed.
func commandsProcessed(b *testing.B, c *redis.Client) int64 {
	info, err := c.Info(context.Background(), "stats").Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "total_commands_processed:"); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("INFO stats has no total_commands_processed")
	return 0
}

// idleLoad measures, over the same window, the commands per second of an
// idle guarded server (after it ran guarded tasks, so its semaphore and
// Pub/Sub hub exist) and of an idle plain asynq server, both at asynq's
// defaults with Concurrency 20.
func idleLoad(b *testing.B) (guarded, plain float64) {
	b.StopTimer()
	defer b.StartTimer()
	db := asynqtest.DB(b)
	prefix := redistest.NewPrefix()
	admin := redis.NewClient(&redis.Options{Addr: redistest.Addr(), DB: db})
	defer admin.Close()
	defer redistest.DeletePrefix(admin, prefix)
	var counts [2]atomic.Int32
	var stops []func()
	for i := range counts {
		queue := "q-" + prefix + "-" + []string{"guarded", "plain"}[i]
		defer asynqtest.CleanQueue(b, queue)
		rdb := redis.NewClient(&redis.Options{Addr: redistest.Addr(), DB: db})
		defer rdb.Close()
		rdb.AddHook(countHook{&counts[i]})
		cfg := asynq.Config{Concurrency: e2eConcurrency, Queues: map[string]int{queue: 1}, Logger: quietLogger{}, LogLevel: asynq.ErrorLevel}
		h := asynq.Handler(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil }))
		if i == 0 {
			g, err := New(rdb, Config{Prefix: prefix, Rules: []Rule{{Name: "api", TaskTypes: []string{"api:*"}, Limit: 1}}}, nil)
			if err != nil {
				b.Fatal(err)
			}
			srv := g.NewServer(cfg)
			if err := srv.Start(g.Middleware(h)); err != nil {
				b.Fatal(err)
			}
			stops = append(stops, srv.Shutdown)
			if _, err := asynq.NewClientFromRedisClient(admin).Enqueue(asynq.NewTask("api:call", nil), asynq.Queue(queue)); err != nil {
				b.Fatal(err)
			}
			continue
		}
		srv := asynq.NewServerFromRedisClient(rdb, cfg)
		if err := srv.Start(h); err != nil {
			b.Fatal(err)
		}
		stops = append(stops, srv.Shutdown)
	}
	defer func() {
		for _, s := range stops {
			s()
		}
	}()
	time.Sleep(2 * time.Second) // start-up and the guarded task
	before := [2]int32{counts[0].Load(), counts[1].Load()}
	time.Sleep(e2eIdleWindow)
	secs := e2eIdleWindow.Seconds()
	return float64(counts[0].Load()-before[0]) / secs, float64(counts[1].Load()-before[1]) / secs
}
