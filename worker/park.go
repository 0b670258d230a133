package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/slotguard/slotguard/internal/asynqrdb"
	"github.com/slotguard/slotguard/limiter"
)

// ParkedError is what the middleware returns to asynq for a task it parked
// (or, after [RequeueAfter], scheduled to run again): the task is in
// Redis, waiting, under its own ID. A server made by [Guard.NewServer]
// never lets asynq act on it: it counts as no failure, spends no retry and
// archives nothing, and the server's ErrorHandler does not see it.
type ParkedError struct {
	Rule      string    // the rule whose slot the task waits for ("" for RequeueAfter)
	Semaphore string    // the rule's name, or "rule/partition"
	Until     time.Time // when the task comes back by itself at the latest
	// Cause is the handler's cause for RequeueAfter. It is not unwrapped:
	// asynq must not act on it (an asynq.SkipRetry in it would archive the
	// task).
	Cause error
	mark  string // tells this park's follow-up apart from any other
}

func (e *ParkedError) Error() string {
	if e.Rule == "" {
		return fmt.Sprintf("slotguard: runs again at %s [%s]", e.Until.UTC().Format(time.RFC3339), e.mark)
	}
	return fmt.Sprintf("slotguard: waiting for a slot of rule %q (%s) [%s]", e.Rule, e.Semaphore, e.mark)
}

func newParkedError(rule, sem string, until time.Time) *ParkedError {
	return &ParkedError{Rule: rule, Semaphore: sem, Until: until, mark: fmt.Sprintf("%016x", rand.Uint64())}
}

// redisRetry is how long a wait for a slot pauses after a Redis error
// before it tries again.
const redisRetry = 200 * time.Millisecond

// redisGiveUp is how long the limiter's Redis calls may keep failing for
// one task before its goroutine hands it back: the task is then parked
// without a ticket and runs again after the guard's backoff.
const redisGiveUp = 5 * time.Second

// ErrLimiterUnreachable is the cause in the [EventRequeued] of a task whose
// slot could not be asked for: the limiter's Redis calls kept failing (an
// outage, or an ACL that refuses its keys) for a few seconds. It is joined
// with the last Redis error.
var ErrLimiterUnreachable = errors.New("worker: the limiter's Redis calls kept failing")

// guard takes the slots a task needs, parking it while one is not free, and
// runs next holding them.
func (g *Guard) guard(ctx context.Context, t *asynq.Task, task TaskRef, ns []need, next asynq.Handler) error {
	start := time.Now()
	st := stateFrom(ctx)
	if st == nil || st.guard != g {
		return g.guardInPlace(ctx, t, task, ns, next)
	}
	held := make([]*holding, 0, len(ns))
	defer func() { g.releaseAll(ctx, task, held) }()
	label := task.ID + " " + task.Type + " " + g.name
	for _, n := range ns {
		p, err := g.acquireOrPark(ctx, st, task, n, label)
		if err != nil {
			// Parked (or ctx ended): nothing held may wait with it.
			g.releaseAll(ctx, task, held)
			held = nil
			return err
		}
		held = append(held, &holding{need: n, permit: p, since: time.Now()})
		g.emit(Event{Kind: EventAcquired, Rule: n.rule.Name, Semaphore: n.sem, Task: task, Waited: time.Since(start)})
	}
	return g.run(ctx, t, task, held, next)
}

// acquireOrPark returns a permit of n's semaphore for task: one that is
// free, the one reserved for the task (it was woken), or one granted while
// its goroutine waits for park_after. Otherwise it parks the task and
// returns a *ParkedError; it returns ctx's error when ctx ended first.
// Redis errors are retried; when they go on for redisGiveUp, the task is
// parked without a ticket to run again after the guard's backoff. While
// asynq's own keys cannot be written either, the retries go on until ctx
// ends: nothing is lost meanwhile, since the task stays active in Redis,
// where asynq's recoverer finds it if this process dies.
func (g *Guard) acquireOrPark(ctx context.Context, st *serverState, task TaskRef, n need, label string) (*limiter.Permit, error) {
	sem := g.semaphore(n)
	key := ticketKey(task)
	var failing time.Time
	for {
		catch, done := g.catchFor(n)
		p, ticket, err := sem.AcquireTicket(ctx, key, encodeParked(task, time.Now()), catch, limiter.WithHolder(label))
		switch {
		case p != nil:
			done()
			return p, nil
		case ticket != nil:
			p, err = g.park(ctx, st, task, n, ticket, catch)
			done()
			return p, err
		}
		done()
		if errors.Is(err, limiter.ErrWeightAboveLimit) {
			return nil, fmt.Errorf("worker: rule %q: %w", n.rule.Name, asynq.SkipRetry)
		}
		if failing.IsZero() {
			failing = time.Now()
		} else if time.Since(failing) >= redisGiveUp {
			if perr := g.handBack(ctx, st, task, n, err); perr != nil {
				return nil, perr
			}
		}
		if err := g.pause(ctx, task, n, err); err != nil {
			return nil, err
		}
	}
}

// handBack parks task, whose slot could not be asked for because of
// cause, until the guard's backoff has passed, and returns the
// *ParkedError; it returns nil when asynq's keys could not be written
// either.
func (g *Guard) handBack(ctx context.Context, st *serverState, task TaskRef, n need, cause error) *ParkedError {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	attempt, err := g.countRequeue(rctx, task)
	if err != nil {
		attempt = 1
	}
	delay := g.backoff(attempt)
	ref := asynqrdb.Task{Queue: task.Queue, ID: task.ID}
	perr := newParkedError(n.rule.Name, n.sem, time.Now().Add(delay))
	st.client.DropFollowUp(ref, perr.mark)
	reason := fmt.Sprintf("slotguard: the limiter's Redis calls for rule %q kept failing; runs again after %v: %v", n.rule.Name, delay, cause)
	if parked, err := asynqrdb.Park(rctx, g.rdb, ref, perr.Until, reason); err != nil || !parked {
		st.client.KeepFollowUp(ref)
		return nil
	}
	g.emit(Event{Kind: EventRequeued, Rule: n.rule.Name, Semaphore: n.sem, Task: task, Delay: delay, Attempt: attempt,
		Err: errors.Join(ErrLimiterUnreachable, cause)})
	return perr
}

// park moves task, whose ticket is queued, to the retry set in Redis. When
// its goroutine may wait for it (catch > 0), it waits that long for the
// grant and, when it comes, takes the task back and returns the permit.
// Otherwise it returns a *ParkedError, having told the server to drop
// asynq's follow-up, and ctx's error when ctx ended before the task was
// parked (its ticket is cancelled then).
func (g *Guard) park(ctx context.Context, st *serverState, task TaskRef, n need, ticket *limiter.Ticket, catch time.Duration) (*limiter.Permit, error) {
	ref := asynqrdb.Task{Queue: task.Queue, ID: task.ID}
	due := time.Now().Add(g.cfg.ParkRecheck) // or the task's deadline: see asynqrdb.Park
	perr := newParkedError(n.rule.Name, n.sem, due)
	st.client.DropFollowUp(ref, perr.mark)
	reason := fmt.Sprintf("slotguard: waiting for a slot of rule %q (%s) since %s", n.rule.Name, n.sem, time.Now().UTC().Format(time.RFC3339))
	for {
		parked, err := asynqrdb.Park(context.WithoutCancel(ctx), g.rdb, ref, due, reason)
		if err == nil && !parked {
			// The task is not active any more: deleted, or asynq's lease on
			// it expired. Its ticket goes.
			st.client.KeepFollowUp(ref)
			g.cancelTicket(ctx, n, task)
			return nil, fmt.Errorf("worker: task %s is no longer active", task.ID)
		}
		if err == nil {
			break
		}
		if perr := g.pause(ctx, task, n, err); perr != nil {
			st.client.KeepFollowUp(ref)
			g.cancelTicket(ctx, n, task)
			return nil, perr
		}
	}
	g.emit(Event{Kind: EventParked, Rule: n.rule.Name, Semaphore: n.sem, Task: task})
	g.wakes.parked()
	if catch <= 0 {
		return nil, perr
	}
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(st.draining, cancel)
	defer stop()
	p, err := ticket.Wait(wctx)
	if err != nil {
		return nil, perr // the grant goes to whoever wakes the task
	}
	ok, err := asynqrdb.Unpark(context.WithoutCancel(ctx), g.rdb, ref, time.Now().Add(asynqLease))
	if err != nil || !ok {
		// Woken or taken by someone else meanwhile: it runs there, with a
		// slot of its own.
		_ = p.Release(context.WithoutCancel(ctx))
		return nil, perr
	}
	st.client.KeepFollowUp(ref)
	return p, nil
}

// asynqLease is asynq v0.26's task lease (rdb.LeaseDuration): an
// unparked task gets one, as a dequeued task does.
const asynqLease = 30 * time.Second

// pause reports a Redis error and waits before the next try, or returns
// ctx's error when ctx ends first.
func (g *Guard) pause(ctx context.Context, task TaskRef, n need, err error) error {
	g.emit(Event{Kind: EventRedisError, Rule: n.rule.Name, Semaphore: n.sem, Task: task, Err: err})
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(redisRetry):
		return nil
	}
}

// catchFor returns how long the calling goroutine may hold a task while it
// waits for n's semaphore (ParkAfter, or 0 when MaxWaiting goroutines of
// this process already do), and a func that ends that count.
func (g *Guard) catchFor(n need) (time.Duration, func()) {
	if g.cfg.ParkAfter <= 0 {
		return 0, func() {}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if n.rule.MaxWaiting > 0 && g.catching[n.sem] >= n.rule.MaxWaiting {
		return 0, func() {}
	}
	g.catching[n.sem]++
	var once atomic.Bool
	return g.cfg.ParkAfter, func() {
		if once.CompareAndSwap(false, true) {
			g.mu.Lock()
			if g.catching[n.sem]--; g.catching[n.sem] <= 0 {
				delete(g.catching, n.sem)
			}
			g.mu.Unlock()
		}
	}
}

// cancelTicket takes task's ticket out of n's semaphore, even when ctx is
// done.
func (g *Guard) cancelTicket(ctx context.Context, n need, task TaskRef) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	_ = g.semaphore(n).CancelTicket(ctx, ticketKey(task))
}

// guardInPlace is the middleware in a server not made by NewServer, where
// a task cannot be parked: it waits for each slot in its goroutine until
// ctx ends.
func (g *Guard) guardInPlace(ctx context.Context, t *asynq.Task, task TaskRef, ns []need, next asynq.Handler) error {
	start := time.Now()
	held := make([]*holding, 0, len(ns))
	defer func() { g.releaseAll(ctx, task, held) }()
	label := task.ID + " " + task.Type + " " + g.name
	for _, n := range ns {
		p, err := g.semaphore(n).Acquire(ctx, limiter.WithHolder(label))
		if err != nil {
			return err
		}
		held = append(held, &holding{need: n, permit: p, since: time.Now()})
		g.emit(Event{Kind: EventAcquired, Rule: n.rule.Name, Semaphore: n.sem, Task: task, Waited: time.Since(start)})
	}
	return g.run(ctx, t, task, held, next)
}
