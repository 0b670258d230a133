package worker

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/limiter"
)

// Options tunes a [Guard]. A nil *Options means the defaults.
type Options struct {
	// Name labels this worker in the holder labels shown by
	// [limiter.Semaphore.Info] ("taskID type name"). Default "host:pid".
	Name string

	// OnEvent, if set, is called synchronously for every [Event]. It must be
	// quick and safe for concurrent use.
	OnEvent func(Event)

	// Backoff returns the delay before the attempt-th run (from 1) of a task
	// whose handler returned [RequeueAfter] with no delay. Default
	// [ExponentialBackoff] of the config's requeue delays.
	Backoff func(attempt int) time.Duration
}

// Guard holds the semaphores of a [Config]'s rules and makes the asynq
// middleware that takes their slots. Create one per process with [New] and
// share it between servers; it is safe for concurrent use.
type Guard struct {
	rdb     redis.UniversalClient
	cfg     Config
	rules   []*rule
	lopts   limiter.Options
	name    string
	onEvent func(Event)
	backoff func(int) time.Duration
	wakes   *wakes

	mu       sync.Mutex
	sems     map[string]*limiter.Semaphore
	catching map[string]int // this process's goroutines holding a waiting task, by semaphore
	parts    partitions
}

// New returns a guard for cfg's rules on rdb, which must be the client (and
// database) the asynq servers use: parking moves tasks between asynq's
// keys. New does not talk to Redis. It returns cfg's validation errors, and
// panics only on a nil client.
func New(rdb redis.UniversalClient, cfg Config, opts *Options) (*Guard, error) {
	if rdb == nil {
		panic("worker: nil Redis client")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	cfg = cfg.withDefaults()
	g := &Guard{
		rdb:      rdb,
		cfg:      cfg,
		name:     o.Name,
		onEvent:  o.OnEvent,
		backoff:  o.Backoff,
		sems:     map[string]*limiter.Semaphore{},
		catching: map[string]int{},
		parts:    partitions{used: map[string]time.Time{}, idleAfter: partitionIdle},
	}
	g.lopts = limiter.Options{
		Prefix:        cfg.Prefix,
		Lease:         cfg.Lease,
		SleepDelay:    cfg.AcquireSleepDelay,
		SyncReplicas:  cfg.SyncReplicas,
		SyncTimeout:   cfg.SyncTimeout,
		OnReservation: g.wake,
	}
	if g.lopts.Prefix == "" {
		g.lopts.Prefix = limiter.DefaultPrefix
	}
	if err := g.lopts.Validate(); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	if g.name == "" {
		host, _ := os.Hostname()
		g.name = host + ":" + strconv.Itoa(os.Getpid())
	}
	if g.backoff == nil {
		g.backoff = ExponentialBackoff(cfg.RequeueMinDelay, cfg.RequeueMaxDelay)
	}
	for _, r := range cfg.Rules {
		g.rules = append(g.rules, compileRule(r))
	}
	g.wakes = newWakes(rdb, g.lopts.Prefix+":wake")
	return g, nil
}

// Middleware guards next: a task that matches rules takes a slot of each,
// in a fixed order, runs holding them, and gives them back when next
// returns or panics. A task that finds no free slot is parked in Redis (see
// [Config.ParkAfter]) and runs when its slot is granted; parking keeps its
// ID, options and retry count, spends no retry, is never archived and is no
// failure. A task that matches no rule runs at once with no Redis round
// trip. Use it as mux.Use(g.Middleware).
//
// Parking needs the server to come from [Guard.NewServer]. In another asynq
// server the middleware waits for the slots in the task's goroutine until
// the task's context ends, and [RequeueAfter] is an ordinary error.
func (g *Guard) Middleware(next asynq.Handler) asynq.Handler {
	if next == nil {
		panic("worker: nil handler")
	}
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		queue, _ := asynq.GetQueueName(ctx)
		task := TaskRef{ID: taskID(ctx), Type: t.Type(), Queue: queue}
		ns := needs(g.rules, t.Type(), queue, t.Payload())
		if len(ns) == 0 {
			return g.handleRequest(ctx, task, next.ProcessTask(ctx, t))
		}
		return g.handleRequest(ctx, task, g.guard(ctx, t, task, ns, next))
	})
}

// semaphore returns the one semaphore for n, creating it on first use.
func (g *Guard) semaphore(n need) *limiter.Semaphore {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	g.dropIdleLocked(now)
	s := g.sems[n.sem]
	if s == nil {
		var err error
		s, err = limiter.New(g.rdb, n.sem, n.rule.Limit, &g.lopts)
		if err != nil {
			panic(fmt.Sprintf("worker: semaphore %q: %v", n.sem, err)) // validated in New
		}
		g.sems[n.sem] = s
	}
	if n.rule.PartitionBy != "" {
		g.parts.used[n.sem] = now
	}
	return s
}

// semaphoreNamed returns the semaphore for name, a rule's or one of its
// partitions', making it again if it was dropped; nil when no rule has
// that name.
func (g *Guard) semaphoreNamed(name string) *limiter.Semaphore {
	ruleName, _, _ := strings.Cut(name, "/")
	for _, r := range g.rules {
		if r.Name == ruleName {
			return g.semaphore(need{rule: r, sem: name})
		}
	}
	return nil
}

// Semaphores returns the semaphores in use, sorted by name: one per rule
// used so far, and one per partition used in the last 10 minutes or still
// holding or waiting for a slot in this process.
func (g *Guard) Semaphores() []*limiter.Semaphore {
	g.mu.Lock()
	g.dropIdleLocked(time.Now())
	out := make([]*limiter.Semaphore, 0, len(g.sems))
	for _, s := range g.sems {
		out = append(out, s)
	}
	g.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out
}

// SyncLimits stores each unpartitioned rule's configured limit in Redis,
// for every process at once, so that a changed config takes effect (on its
// own a config limit only seeds a semaphore that has none stored). Partition
// semaphores keep the limit they were created with. It stops at the first
// Redis error.
func (g *Guard) SyncLimits(ctx context.Context) error {
	for _, r := range g.rules {
		if r.PartitionBy != "" {
			continue
		}
		if err := g.semaphore(need{rule: r, sem: r.Name}).SetLimit(ctx, r.Limit); err != nil {
			return err
		}
	}
	return nil
}

func (g *Guard) emit(e Event) {
	if g.onEvent != nil {
		g.onEvent(e)
	}
}

func taskID(ctx context.Context) string {
	id, _ := asynq.GetTaskID(ctx)
	return id
}
