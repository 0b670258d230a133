package worker

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/asynqtest"
	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/limiter"
)

// bundle is one test's Redis, queue and asynq client, on a database that
// this test process claimed (see internal/asynqtest). Every test uses its
// own queue and key prefix, and deletes them when it ends.
type bundle struct {
	rdb    *redis.Client
	queue  string
	prefix string
	client *asynq.Client
	insp   *asynq.Inspector
	events *eventLog
}

func setup(t *testing.T) *bundle {
	t.Helper()
	b := &bundle{rdb: asynqtest.Client(t), prefix: redistest.NewPrefix(), events: &eventLog{}}
	b.queue = "q-" + b.prefix
	b.client = asynq.NewClientFromRedisClient(b.rdb)
	b.insp = asynq.NewInspectorFromRedisClient(b.rdb)
	t.Cleanup(func() {
		asynqtest.CleanQueue(t, b.queue)
		redistest.DeletePrefix(b.rdb, b.prefix)
	})
	return b
}

// benchBundle is setup for a benchmark: a queue and a prefix, no events.
func benchBundle(tb testing.TB) *bundle {
	tb.Helper()
	b := &bundle{rdb: asynqtest.Client(tb), prefix: redistest.NewPrefix()}
	b.queue = "q-" + b.prefix
	b.client = asynq.NewClientFromRedisClient(b.rdb)
	tb.Cleanup(func() {
		asynqtest.CleanQueue(tb, b.queue)
		redistest.DeletePrefix(b.rdb, b.prefix)
	})
	return b
}

// setupMini is setup on a fresh embedded miniredis, where asynq works too.
func setupMini(t *testing.T) *bundle {
	t.Helper()
	be := redistest.Mini(t)
	b := &bundle{rdb: be.Client, prefix: be.Prefix, queue: "q-" + be.Prefix, events: &eventLog{}}
	b.client = asynq.NewClientFromRedisClient(b.rdb)
	b.insp = asynq.NewInspectorFromRedisClient(b.rdb)
	return b
}

// guard returns a guard on the bundle's prefix whose events go to b.events.
func (b *bundle) guard(t *testing.T, cfg Config) *Guard {
	t.Helper()
	cfg.Prefix = b.prefix
	if cfg.RequeueMinDelay == 0 {
		cfg.RequeueMinDelay = 10 * time.Millisecond
		cfg.RequeueMaxDelay = 50 * time.Millisecond
	}
	g, err := New(b.rdb, cfg, &Options{Name: t.Name(), OnEvent: b.events.add})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// fastConfig is an asynq config with short intervals, for tests whose
// subject is not asynq's default timing.
func (b *bundle) fastConfig(concurrency int) asynq.Config {
	return asynq.Config{
		Concurrency:              concurrency,
		Queues:                   map[string]int{b.queue: 1},
		TaskCheckInterval:        50 * time.Millisecond,
		DelayedTaskCheckInterval: 100 * time.Millisecond,
		ShutdownTimeout:          5 * time.Second,
		Logger:                   quietLogger{},
		LogLevel:                 asynq.ErrorLevel,
		RetryDelayFunc:           func(int, error, *asynq.Task) time.Duration { return 0 },
	}
}

// start runs a guarded server and shuts it down when the test ends.
func (b *bundle) start(t *testing.T, g *Guard, cfg asynq.Config, h asynq.HandlerFunc) *Server {
	t.Helper()
	srv := g.NewServer(cfg)
	if err := srv.Start(g.Middleware(h)); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() { once.Do(srv.Shutdown) })
	return srv
}

// queue2key names one of asynq's keys of the bundle's queue, such as
// "active" or "lease".
func (b *bundle) queue2key(suffix string) string { return "asynq:{" + b.queue + "}:" + suffix }

func (b *bundle) enqueue(t *testing.T, typ string, payload []byte, opts ...asynq.Option) *asynq.TaskInfo {
	t.Helper()
	info, err := b.client.Enqueue(asynq.NewTask(typ, payload), append([]asynq.Option{asynq.Queue(b.queue)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// sem returns a semaphore on the bundle's prefix, as the guard names them.
func (b *bundle) sem(t *testing.T, name string, limit int) *limiter.Semaphore {
	t.Helper()
	s, err := limiter.New(b.rdb, name, limit, &limiter.Options{Prefix: b.prefix})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (b *bundle) queueInfo(t *testing.T) *asynq.QueueInfo {
	t.Helper()
	qi, err := b.insp.GetQueueInfo(b.queue)
	if err != nil {
		t.Fatal(err)
	}
	return qi
}

// eventLog records a guard's events.
type eventLog struct {
	mu     sync.Mutex
	events []Event
}

func (l *eventLog) add(e Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

func (l *eventLog) count(k EventKind) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, e := range l.events {
		if e.Kind == k {
			n++
		}
	}
	return n
}

func (l *eventLog) all(k EventKind) []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Event
	for _, e := range l.events {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// gauge counts running handlers and remembers the most ever running.
type gauge struct {
	cur, peak atomic.Int64
}

func (g *gauge) enter() {
	n := g.cur.Add(1)
	for {
		p := g.peak.Load()
		if n <= p || g.peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (g *gauge) leave() { g.cur.Add(-1) }

type quietLogger struct{}

func (quietLogger) Debug(...any) {}
func (quietLogger) Info(...any)  {}
func (quietLogger) Warn(...any)  {}
func (quietLogger) Error(...any) {}
func (quietLogger) Fatal(...any) {}

// holdSlot takes a slot of sem and returns a func that gives it back.
func holdSlot(t *testing.T, s *limiter.Semaphore) func() {
	t.Helper()
	p, err := s.Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return func() { _ = p.Release(context.Background()) }
}

// apiConfig guards "api:*" tasks with one rule of the given limit.
func apiConfig(limit int) Config {
	return Config{Rules: []Rule{{Name: "api", TaskTypes: []string{"api:*"}, Limit: limit}}}
}

// semIdle reports whether s has nothing held and nobody waiting.
func semIdle(t *testing.T, s *limiter.Semaphore) func() bool {
	return func() bool {
		info, err := s.Info(context.Background())
		return err == nil && info.Held == 0 && info.Waiting == 0
	}
}

// countHook counts the commands a client sends.
type countHook struct{ n *atomic.Int32 }

func (h countHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { h.n.Add(1); return next(ctx, cmd) }
}
func (h countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error { h.n.Add(int32(len(cmds))); return next(ctx, cmds) }
}
