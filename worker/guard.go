package worker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/limiter"
)

var (
	// ErrWaitCap is the cause of a requeue when a rule already had
	// [Rule.MaxWaiting] tasks of this process waiting for its slots.
	ErrWaitCap = errors.New("worker: too many tasks waiting for the rule")

	// ErrShuttingDown is the cause of a requeue when the [Server] began to
	// shut down while the task waited for slots.
	ErrShuttingDown = errors.New("worker: server shutting down")
)

// Options tunes a [Guard]. A nil *Options means the defaults.
type Options struct {
	// Name labels this worker in the holder labels shown by
	// [limiter.Semaphore.Info] ("taskID type name"). Default "host:pid".
	Name string

	// OnEvent, if set, is called synchronously for every [Event]. It must be
	// quick and safe for concurrent use.
	OnEvent func(Event)

	// Backoff returns the requeue delay before the task's attempt-th requeue
	// (from 1). Default [ExponentialBackoff] of the config's requeue delays.
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

	mu      sync.Mutex
	sems    map[string]*limiter.Semaphore
	waiting map[string]int // this process's tasks waiting, by semaphore
}

// New returns a guard for cfg's rules on rdb, which must be the client (and
// database) the asynq servers use: a requeue moves tasks between asynq's
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
		rdb:     rdb,
		cfg:     cfg,
		name:    o.Name,
		onEvent: o.OnEvent,
		backoff: o.Backoff,
		sems:    map[string]*limiter.Semaphore{},
		waiting: map[string]int{},
		lopts: limiter.Options{
			Prefix:       cfg.Prefix,
			Lease:        cfg.Lease,
			SleepDelay:   cfg.AcquireSleepDelay,
			SyncReplicas: cfg.SyncReplicas,
			SyncTimeout:  cfg.SyncTimeout,
		},
	}
	if g.lopts.Prefix == "" {
		g.lopts.Prefix = limiter.DefaultPrefix
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
	// Fail now, not on the first task, if the limiter rejects the options.
	if _, err := limiter.New(rdb, "worker-options-check", 1, &g.lopts); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	return g, nil
}

// Middleware guards next: a task that matches rules waits for a slot of
// each, in a fixed order, runs holding them, and gives them back when next
// returns or panics. A task that waited past the acquire timeout, or found
// its rule's wait cap full, is requeued without running and without counting
// as a failure (see [RequeueError]); so is a task whose handler returned
// [RequeueAfter]. A task that matches no rule runs at once with no Redis
// round trip. Use it as mux.Use(g.Middleware).
func (g *Guard) Middleware(next asynq.Handler) asynq.Handler {
	if next == nil {
		panic("worker: nil handler")
	}
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		queue, _ := asynq.GetQueueName(ctx)
		start := time.Now()
		ns := needs(g.rules, t.Type(), queue, t.Payload())
		if len(ns) == 0 {
			return g.handleRequest(ctx, t, queue, start, next.ProcessTask(ctx, t))
		}
		return g.handleRequest(ctx, t, queue, start, g.guard(ctx, t, queue, ns, next))
	})
}

// deadlineMargin is how long before the task's own deadline a wait gives up,
// so that the requeue happens before asynq counts the deadline as a failure.
const deadlineMargin = 250 * time.Millisecond

// releaseTimeout bounds the Redis calls made after the handler returned.
const releaseTimeout = 5 * time.Second

func (g *Guard) guard(ctx context.Context, t *asynq.Task, queue string, ns []need, next asynq.Handler) error {
	task := TaskRef{ID: taskID(ctx), Type: t.Type(), Queue: queue}
	start := time.Now()
	deadline := start.Add(g.cfg.AcquireTimeout)
	if d, ok := ctx.Deadline(); ok && d.Add(-deadlineMargin).Before(deadline) {
		deadline = d.Add(-deadlineMargin)
	}
	waitCtx, cancelWait := context.WithCancelCause(ctx)
	defer cancelWait(nil)
	if st := stateFrom(ctx); st != nil && st.guard == g {
		stop := context.AfterFunc(st.draining, func() { cancelWait(ErrShuttingDown) })
		defer stop()
	}

	held := make([]*holding, 0, len(ns))
	defer func() { g.releaseAll(ctx, task, held) }()
	label := task.ID + " " + task.Type + " " + g.name
	// giveUp releases the slots taken so far, before the requeue's round
	// trips, so that their next waiters need not wait for it.
	giveUp := func(n need, cause error) error {
		g.releaseAll(ctx, task, held)
		held = nil
		return g.requeue(ctx, task, n, time.Since(start), cause)
	}
	for _, n := range ns {
		left := time.Until(deadline)
		if left <= 0 {
			return giveUp(n, limiter.ErrTimeout)
		}
		if !g.enterWait(n) {
			return giveUp(n, ErrWaitCap)
		}
		p, err := g.semaphore(n).Acquire(waitCtx, limiter.WithTimeout(left), limiter.WithHolder(label))
		g.leaveWait(n)
		if err != nil {
			if ctx.Err() != nil {
				// asynq cancelled the task or its deadline passed: asynq
				// decides its fate, and any slot is already given back.
				return ctx.Err()
			}
			if cause := context.Cause(waitCtx); errors.Is(cause, ErrShuttingDown) {
				err = ErrShuttingDown
			}
			return giveUp(n, err)
		}
		held = append(held, &holding{need: n, permit: p, since: time.Now()})
		g.emit(Event{Kind: EventAcquired, Rule: n.rule.Name, Semaphore: n.sem, Task: task, Waited: time.Since(start)})
	}

	runCtx, cancelRun := context.WithCancelCause(withFences(ctx, held))
	defer cancelRun(nil)
	for _, h := range held {
		go g.watchLease(runCtx, cancelRun, task, h)
	}
	err := next.ProcessTask(runCtx, t)
	if err != nil && errors.Is(context.Cause(runCtx), limiter.ErrLeaseLost) && !errors.Is(err, limiter.ErrLeaseLost) {
		err = fmt.Errorf("%w: %w", limiter.ErrLeaseLost, err)
	}
	return err
}

// enterWait counts a task as waiting for n's semaphore, unless the rule's
// MaxWaiting tasks of this process already wait for that same semaphore:
// each partition has its own count, so a noisy partition cannot fill the
// cap for the others.
func (g *Guard) enterWait(n need) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if n.rule.MaxWaiting > 0 && g.waiting[n.sem] >= n.rule.MaxWaiting {
		return false
	}
	g.waiting[n.sem]++
	return true
}

func (g *Guard) leaveWait(n need) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.waiting[n.sem]--; g.waiting[n.sem] <= 0 {
		delete(g.waiting, n.sem)
	}
}

// holding is one permit a running task holds.
type holding struct {
	need   need
	permit *limiter.Permit
	since  time.Time
	lost   atomic.Bool // EventLeaseLost was emitted
}

// watchLease cancels the handler's context when h's lease is lost.
func (g *Guard) watchLease(ctx context.Context, cancel context.CancelCauseFunc, task TaskRef, h *holding) {
	select {
	case <-ctx.Done():
	case <-h.permit.Lost():
		if h.lost.CompareAndSwap(false, true) {
			g.emit(Event{Kind: EventLeaseLost, Rule: h.need.rule.Name, Semaphore: h.need.sem, Task: task, Held: time.Since(h.since)})
		}
		cancel(fmt.Errorf("worker: slot of %q: %w", h.need.sem, limiter.ErrLeaseLost))
	}
}

// releaseAll gives back every held slot, even when ctx is done.
func (g *Guard) releaseAll(ctx context.Context, task TaskRef, held []*holding) {
	if len(held) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	for i := len(held) - 1; i >= 0; i-- {
		h := held[i]
		err := h.permit.Release(rctx)
		if errors.Is(err, limiter.ErrLeaseLost) && h.lost.CompareAndSwap(false, true) {
			g.emit(Event{Kind: EventLeaseLost, Rule: h.need.rule.Name, Semaphore: h.need.sem, Task: task, Held: time.Since(h.since)})
		}
		g.emit(Event{Kind: EventReleased, Rule: h.need.rule.Name, Semaphore: h.need.sem, Task: task, Held: time.Since(h.since), Err: err})
	}
}

// semaphore returns the one semaphore for n, creating it on first use.
func (g *Guard) semaphore(n need) *limiter.Semaphore {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.sems[n.sem]
	if s == nil {
		var err error
		s, err = limiter.New(g.rdb, n.sem, n.rule.Limit, &g.lopts)
		if err != nil {
			panic(fmt.Sprintf("worker: semaphore %q: %v", n.sem, err)) // validated in New
		}
		g.sems[n.sem] = s
	}
	return s
}

// Semaphores returns the semaphores used so far, sorted by name: one per
// rule, and one per partition seen for partitioned rules.
func (g *Guard) Semaphores() []*limiter.Semaphore {
	g.mu.Lock()
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
