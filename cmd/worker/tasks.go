package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/hibiken/asynq"

	"github.com/slotguard/slotguard/internal/handlers"
	"github.com/slotguard/slotguard/worker"
)

// taskHandlers dispatches each task to the handler configured for its type.
type taskHandlers map[string]asynq.Handler

func buildHandlers(cfgs []handlerConfig, log *slog.Logger, getenv func(string) string) (taskHandlers, error) {
	hs := taskHandlers{}
	for i, c := range cfgs {
		switch {
		case c.HTTP != nil:
			h, err := c.HTTP.build(getenv) // ${VAR} in headers
			if err != nil {
				return nil, fmt.Errorf("handlers[%d]: %w", i, err)
			}
			h.Log = log
			hs[c.Type] = h
		case c.Command != nil:
			hs[c.Type] = &handlers.Command{Argv: c.Command, Timeout: c.Timeout, Env: handlers.CommandEnv(c.Env, getenv)}
		case c.Sleep != nil:
			hs[c.Type] = handlers.Sleep{}
		}
	}
	return hs, nil
}

func (hs taskHandlers) types() []string {
	out := make([]string, 0, len(hs))
	for t := range hs {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// ProcessTask runs the task's handler, or fails with an error naming the
// type when there is none (asynq retries it, so deploying a handler in time
// saves the task).
func (hs taskHandlers) ProcessTask(ctx context.Context, t *asynq.Task) error {
	h, ok := hs[t.Type()]
	if !ok {
		return fmt.Errorf("no handler configured for task type %q", t.Type())
	}
	return h.ProcessTask(ctx, t)
}

// countOutcomes counts each task by type and outcome. A type without a
// handler in hs is counted as unconfiguredType: task types come from
// producers, and each label value would be a series kept forever.
func countOutcomes(m *metrics, hs taskHandlers, next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := next.ProcessTask(ctx, t)
		typ := t.Type()
		if _, ok := hs[typ]; !ok {
			typ = unconfiguredType
		}
		m.tasks.WithLabelValues(typ, outcome(err)).Inc()
		return err
	})
}

// outcome names what became of a task: it ran (success or failure), it
// was parked to wait for a slot, or its handler asked to run it again later
// (busy for an HTTP 429 or 503, requeued otherwise).
func outcome(err error) string {
	var parked *worker.ParkedError
	var busy *handlers.BusyError
	switch {
	case errors.As(err, &parked) && parked.Rule != "":
		return "parked"
	case errors.As(err, &parked) && errors.As(parked.Cause, &busy), errors.As(err, &busy):
		return "busy"
	case errors.As(err, &parked):
		return "requeued"
	case err != nil:
		return "failure"
	}
	return "success"
}

// logTasks logs each task that runs, with the fence of its first slot.
func logTasks(log *slog.Logger, next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		start := time.Now()
		id, _ := asynq.GetTaskID(ctx)
		args := []any{"task_id", id, "type", t.Type()}
		if fs := worker.FencesFromContext(ctx); len(fs) > 0 {
			args = append(args, "limiter", fs[0].Semaphore, "fence", fs[0].Token)
		}
		log.Info("task started", args...)
		err := next.ProcessTask(ctx, t)
		args = append(args, "outcome", outcome(err), "took", time.Since(start).Round(time.Millisecond))
		if err != nil {
			log.Warn("task finished", append(args, "error", err)...)
		} else {
			log.Info("task finished", args...)
		}
		return err
	})
}

// busyRequeues turns a handler's [*handlers.BusyError] (HTTP 429 or 503)
// into a requeue through the guard, after the Retry-After delay or, without
// one, the guard's backoff: no retry is spent and nothing is archived.
func busyRequeues(next asynq.Handler) asynq.Handler {
	return asynq.HandlerFunc(func(ctx context.Context, t *asynq.Task) error {
		err := next.ProcessTask(ctx, t)
		if busy, ok := errors.AsType[*handlers.BusyError](err); ok {
			return worker.RequeueAfter(busy.RetryAfter, err)
		}
		return err
	})
}
