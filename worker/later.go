package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// ErrRequeueRequested is the cause of a requeue that a handler asked for with
// [RequeueAfter].
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
// The [Guard.Middleware] then requeues the task exactly as it requeues a
// task that got no slot: it is never archived, never spends a retry and is
// not counted as a failure. delay is the wait before the task is due again
// (a Retry-After); 0 uses the guard's backoff for the task. The slots the
// task held are released first.
//
// Returned outside a guarded handler, it is an ordinary error.
func RequeueAfter(delay time.Duration, cause error) error {
	if delay < 0 {
		delay = 0
	}
	return &requeueRequest{delay: delay, cause: cause}
}

// handleRequest requeues the task when err is a [RequeueAfter] request, and
// returns err unchanged otherwise.
func (g *Guard) handleRequest(ctx context.Context, t *asynq.Task, queue string, start time.Time, err error) error {
	req, ok := errors.AsType[*requeueRequest](err)
	if !ok {
		return err
	}
	delay := req.delay
	if delay == 0 {
		delay = -1
	}
	task := TaskRef{ID: taskID(ctx), Type: t.Type(), Queue: queue}
	return g.requeueAs(ctx, task, "", "", time.Since(start), delay, err)
}
