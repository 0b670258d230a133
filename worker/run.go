package worker

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/slotguard/slotguard/internal/asynqrdb"
	"github.com/slotguard/slotguard/limiter"
)

// releaseTimeout bounds the Redis calls made after the handler returned.
const releaseTimeout = 5 * time.Second

// holding is one permit a running task holds.
type holding struct {
	need   need
	permit *limiter.Permit
	since  time.Time
	lost   atomic.Bool // EventLeaseLost was emitted
}

// run runs next holding every slot, with their fences in its context, and
// cancels that context when a lease is lost. The caller releases the slots.
// In a server made by NewServer it first records in Redis that the
// handler starts, so that the task of a worker that dies before that point
// is put back in its queue rather than retried or archived by asynq; it
// tries again after a Redis error until ctx ends.
func (g *Guard) run(ctx context.Context, t *asynq.Task, task TaskRef, held []*holding, next asynq.Handler) error {
	if st := stateFrom(ctx); st != nil && st.guard == g {
		retried, _ := asynq.GetRetryCount(ctx)
		for {
			err := asynqrdb.MarkStarted(ctx, g.rdb, asynqrdb.Task{Queue: task.Queue, ID: task.ID}, retried)
			if err == nil {
				break
			}
			if err := g.pause(ctx, task, held[0].need, err); err != nil {
				return err
			}
		}
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

// releaseAll gives back every held slot, even when ctx is done. A release
// whose slot goes to a parked task wakes that task before it returns, so
// that the worker that frees the slot can run the task next.
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
