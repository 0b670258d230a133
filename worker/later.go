package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/asynqrdb"
)

// ErrRequeueRequested is the cause in the [EventRequeued] of a task whose
// handler returned [RequeueAfter], joined with the handler's own cause.
var ErrRequeueRequested = errors.New("worker: handler asked to run the task later")

// requeueRequest is what [RequeueAfter] returns.
type requeueRequest struct {
	delay time.Duration
	cause error
}

func (r *requeueRequest) Error() string {
	return fmt.Sprintf("%v: after %v: %v", ErrRequeueRequested, r.delay, r.cause)
}

func (r *requeueRequest) Unwrap() []error { return []error{ErrRequeueRequested, r.cause} }

// RequeueAfter is what a handler returns when the resource it calls is
// saturated (an HTTP 429 or 503, say) and the task should run again later.
// The [Guard.Middleware] then releases the task's slots and parks it until
// delay has passed (a Retry-After; 0 uses the guard's backoff for the
// task): it keeps its ID, is never archived, spends no retry and is no
// failure, whatever cause wraps (even [asynq.SkipRetry] or
// [asynq.RevokeTask]: the cause never reaches asynq's decision). asynq's
// forwarder runs it again up to its DelayedTaskCheckInterval after delay.
//
// Outside a server made by [Guard.NewServer], it is an ordinary error that
// does not wrap cause: asynq retries the task by its own rules.
func RequeueAfter(delay time.Duration, cause error) error {
	if delay < 0 {
		delay = 0
	}
	return &requeueRequest{delay: delay, cause: cause}
}

// handleRequest parks the task when err is a [RequeueAfter] request, and
// returns err unchanged otherwise.
func (g *Guard) handleRequest(ctx context.Context, task TaskRef, err error) error {
	req, ok := errors.AsType[*requeueRequest](err)
	if !ok {
		return err
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	delay, attempt := req.delay, 0
	if delay == 0 {
		attempt, err = g.countRequeue(rctx, task)
		if err != nil {
			attempt = 1 // the delay is then the shortest; the task still waits
		}
		delay = g.backoff(attempt)
	}
	plain := fmt.Errorf("worker: run again after %v: %v", delay, req.cause)
	st := stateFrom(ctx)
	if st == nil || st.guard != g {
		return plain
	}
	due := time.Now().Add(delay)
	ref := asynqrdb.Task{Queue: task.Queue, ID: task.ID}
	perr := newParkedError("", "", due)
	perr.Cause = req.cause
	st.client.DropFollowUp(ref, perr.mark)
	reason := fmt.Sprintf("slotguard: the handler asked to run it again after %v: %v", delay, req.cause)
	if parked, err := asynqrdb.Park(rctx, g.rdb, ref, due, reason); err != nil || !parked {
		// asynq retries it by its own rules.
		st.client.KeepFollowUp(ref)
		return plain
	}
	g.emit(Event{Kind: EventRequeued, Task: task, Delay: delay, Attempt: attempt, Err: errors.Join(ErrRequeueRequested, req.cause)})
	return perr
}

// ExponentialBackoff returns a backoff that waits about lo·2^(attempt-1),
// capped at hi, with "equal jitter": a uniformly random duration between
// half that and all of it. It keeps no state.
func ExponentialBackoff(lo, hi time.Duration) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		d := lo
		for i := 1; i < attempt && d < hi; i++ {
			d *= 2
		}
		d = min(d, hi)
		if d <= 1 {
			return d
		}
		return d/2 + rand.N(d/2+1)
	}
}

// counterTTL keeps a task's requeue count while it keeps being requeued.
func (g *Guard) counterTTL() time.Duration { return max(time.Hour, 10*g.cfg.RequeueMaxDelay) }

// countRequeue increments the task's count of RequeueAfter requests with no
// delay, kept in Redis so that every worker backs off the same task alike.
func (g *Guard) countRequeue(ctx context.Context, task TaskRef) (int, error) {
	key := g.lopts.Prefix + ":requeues:{" + task.Queue + "}:" + task.ID
	var incr *redis.IntCmd
	_, err := g.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.Incr(ctx, key)
		p.PExpire(ctx, key, g.counterTTL())
		return nil
	})
	if err != nil {
		return 0, err
	}
	return int(incr.Val()), nil
}
