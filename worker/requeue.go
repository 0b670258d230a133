package worker

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// RequeueError is what the middleware returns for a task that it sent back
// to its queue without running it: no slot came within the acquire timeout,
// the rule's wait cap was full, or the server was shutting down. It is not a
// failure: with the hooks of [Guard.ServerConfig] installed, asynq spends no
// retry on it, archives nothing and does not count it in its failure stats.
//
// Two paths carry a requeue out; see docs/worker.md:
//   - While the task has retries left, asynq moves it to its retry set with
//     the guard's delay. Its ID, payload, queue and options are unchanged;
//     asynq records Err as the task's last error.
//   - When it has none left (MaxRetry(0), or all used), asynq would archive
//     it, so the guard moves it to the scheduled set itself, under a new ID
//     (NewTaskID) and with the [OriginalIDHeader] header; everything else,
//     including its retry count, is unchanged. The error then also matches
//     [asynq.RevokeTask], so asynq does not touch the task again.
type RequeueError struct {
	Rule      string        // the rule whose slot the task did not get
	Semaphore string        // the rule's name, or "rule/partition"
	Attempt   int           // the task's requeue count, from 1
	Delay     time.Duration // the requested delay; asynq adds its rounding
	NewTaskID string        // set when the task moved to a new ID
	Err       error         // limiter.ErrTimeout, ErrWaitCap, ErrShuttingDown or a Redis error
}

func (e *RequeueError) Error() string {
	s := fmt.Sprintf("worker: requeued (attempt %d, delay %v) waiting for %q: %v", e.Attempt, e.Delay.Round(time.Millisecond), e.Semaphore, e.Err)
	if e.NewTaskID != "" {
		s += "; new task ID " + e.NewTaskID
	}
	return s
}

// Unwrap returns the cause and, for a task moved to a new ID,
// [asynq.RevokeTask].
func (e *RequeueError) Unwrap() []error {
	if e.NewTaskID != "" {
		return []error{e.Err, asynq.RevokeTask}
	}
	return []error{e.Err}
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

var (
	//go:embed lua/move.lua
	moveSource string
	moveScript = redis.NewScript(moveSource)
)

// requeue sends the task back to its queue without running it and returns
// the error for asynq.
func (g *Guard) requeue(ctx context.Context, task TaskRef, n need, waited time.Duration, cause error) error {
	return g.requeueAs(ctx, task, n.rule.Name, n.sem, waited, -1, cause)
}

// requeueAs is requeue for any cause: rule and sem name what the task waited
// for ("" for a handler's own request), and delay < 0 asks for the backoff.
func (g *Guard) requeueAs(ctx context.Context, task TaskRef, rule, sem string, waited, delay time.Duration, cause error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	attempt, err := g.countRequeue(rctx, task)
	if err != nil {
		attempt = 1 // the delay is then the shortest; the task still goes back
	}
	if delay < 0 {
		delay = g.backoff(attempt)
	}
	if errors.Is(cause, ErrShuttingDown) {
		delay = 0 // other workers may take it at once
	}
	rq := &RequeueError{Rule: rule, Semaphore: sem, Attempt: attempt, Delay: delay, Err: cause}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, _ := asynq.GetMaxRetry(ctx)
	st := stateFrom(ctx)
	if st == nil || st.guard != g || retried >= maxRetry {
		id, err := g.moveToNewID(rctx, task, delay, attempt)
		if err != nil {
			// The task stays active; asynq handles the error as it would
			// any other (see docs/worker.md, "When Redis fails").
			return fmt.Errorf("worker: requeue task %s: %w (cause: %w)", task.ID, err, cause)
		}
		rq.NewTaskID = id
	}
	g.emit(Event{Kind: EventRequeued, Rule: rule, Semaphore: sem, Task: task,
		Waited: waited, Delay: delay, Attempt: attempt, NewTaskID: rq.NewTaskID, Err: cause})
	return rq
}

// counterTTL keeps a task's requeue count while it keeps being requeued.
func (g *Guard) counterTTL() time.Duration { return max(time.Hour, 10*g.cfg.RequeueMaxDelay) }

func (g *Guard) counterKey(queue, id string) string {
	return g.lopts.Prefix + ":requeues:{" + queue + "}:" + id
}

// countRequeue increments the task's requeue count, kept in Redis because
// asynq passes n = 0 to RetryDelayFunc for errors that are not failures.
func (g *Guard) countRequeue(ctx context.Context, task TaskRef) (int, error) {
	key := g.counterKey(task.Queue, task.ID)
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

// moveToNewID moves an active task to the scheduled set under a new ID in
// one script; see lua/move.lua.
func (g *Guard) moveToNewID(ctx context.Context, task TaskRef, delay time.Duration, attempt int) (string, error) {
	q := "asynq:{" + task.Queue + "}:"
	raw, err := g.rdb.HGet(ctx, q+"t:"+task.ID, "msg").Result()
	if err != nil {
		return "", fmt.Errorf("read task: %w", err)
	}
	newID := uuid.NewString()
	msg, oldID, unique, err := rewriteTaskMessage([]byte(raw), newID)
	if err != nil {
		return "", err
	}
	if oldID != task.ID {
		return "", fmt.Errorf("stored task has ID %q", oldID)
	}
	keys := []string{q + "t:" + task.ID, q + "active", q + "lease", q + "scheduled", q + "t:" + newID,
		g.counterKey(task.Queue, task.ID), g.counterKey(task.Queue, newID)}
	if unique != "" && strings.HasPrefix(unique, q) {
		keys = append(keys, unique)
	}
	at := time.Now().Add(delay).Unix()
	var n int64
	for try := 0; try < 2; try++ { // one retry: the script is idempotent
		n, err = moveScript.Run(ctx, g.rdb, keys, task.ID, newID, raw, msg, at, attempt, g.counterTTL().Milliseconds()).Int64()
		if err == nil {
			break
		}
	}
	switch {
	case err != nil:
		return "", fmt.Errorf("move task: %w", err)
	case n == -1:
		return "", errors.New("move task: the stored task changed")
	case n == -2:
		return "", errors.New("move task: the task is no longer active")
	}
	return newID, nil
}
