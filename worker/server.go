package worker

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"github.com/slotguard/slotguard/internal/asynqrdb"
)

// serverState travels in every handler context of a server made by
// [Guard.NewServer]: it tells the middleware that tasks can be parked, and
// when the server begins to stop.
type serverState struct {
	guard    *Guard
	client   *asynqrdb.Client
	draining context.Context // done when goroutines holding waiting tasks must let go
}

type stateKey struct{}

func stateFrom(ctx context.Context) *serverState {
	st, _ := ctx.Value(stateKey{}).(*serverState)
	return st
}

// Server is an asynq server that the guard can park tasks in. Its Shutdown
// first lets go of the tasks that goroutines hold while they wait for a
// slot (they stay parked).
type Server struct {
	srv      *asynq.Server
	guard    *Guard
	stopping context.Context
	stop     context.CancelFunc
	started  atomic.Bool
}

// NewServer returns an asynq server on the guard's Redis client, with cfg's
// hooks composed with the guard's:
//   - IsFailure reports false for a [*ParkedError] and asks cfg.IsFailure
//     (default: any error) otherwise;
//   - RetryDelayFunc asks cfg.RetryDelayFunc; without one, a task whose
//     worker died ([asynq.ErrLeaseExpired]) runs again after the config's
//     RequeueMinDelay rather than asynq's 15-45 s, and any other after
//     [asynq.DefaultRetryDelayFunc];
//   - ErrorHandler is not called for a [*ParkedError];
//   - BaseContext wraps cfg.BaseContext;
//   - Logger (asynq's default when nil) does not log a parked task as one
//     whose retries are exhausted.
//
// The server's Redis client lets the guard park tasks: asynq never retries
// or archives a parked task, and an idle processor waits for woken tasks
// instead of sleeping through its TaskCheckInterval first.
func (g *Guard) NewServer(cfg asynq.Config) *Server {
	queues := queuesOf(cfg)
	check := cfg.TaskCheckInterval
	if check <= 0 {
		check = time.Second // asynq's default
	}
	s := &Server{guard: g}
	s.stopping, s.stop = context.WithCancel(context.Background())
	isFailure := cfg.IsFailure
	cfg.IsFailure = func(err error) bool {
		if _, ok := errors.AsType[*ParkedError](err); ok {
			return false
		}
		if isFailure == nil {
			return err != nil
		}
		return isFailure(err)
	}

	client := asynqrdb.Wrap(g.rdb, len(queues), asynqrdb.Hooks{
		Idle: func(context.Context) []string { return g.wakes.wait(s.stopping, queues, check/2) },
		Guarded: func(taskType, queue string, payload []byte) bool {
			return len(needs(g.rules, taskType, queue, payload)) > 0
		},
		IsFailure: cfg.IsFailure,
	})
	st := &serverState{guard: g, client: client, draining: s.stopping}

	base := cfg.BaseContext
	if base == nil {
		base = context.Background
	}
	cfg.BaseContext = func() context.Context { return context.WithValue(base(), stateKey{}, st) }

	delay := cfg.RetryDelayFunc
	if delay == nil {
		delay = func(n int, err error, t *asynq.Task) time.Duration {
			if errors.Is(err, asynq.ErrLeaseExpired) {
				return g.cfg.RequeueMinDelay
			}
			return asynq.DefaultRetryDelayFunc(n, err, t)
		}
	}
	cfg.RetryDelayFunc = func(n int, err error, t *asynq.Task) time.Duration {
		if _, ok := errors.AsType[*ParkedError](err); ok {
			return 0 // asynq's follow-up for it is dropped
		}
		return delay(n, err, t)
	}

	if h := cfg.ErrorHandler; h != nil {
		cfg.ErrorHandler = asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if _, ok := errors.AsType[*ParkedError](err); !ok {
				h.HandleError(ctx, t, err)
			}
		})
	}
	cfg.Logger = client.Logger(cfg.Logger)

	s.srv = asynq.NewServerFromRedisClient(client, cfg)
	return s
}

// queuesOf returns the queues a server takes tasks from, the most
// important first (asynq's default is one queue, "default").
func queuesOf(cfg asynq.Config) []string {
	if len(cfg.Queues) == 0 {
		return []string{"default"}
	}
	out := make([]string, 0, len(cfg.Queues))
	for q := range cfg.Queues {
		out = append(out, q)
	}
	slices.SortFunc(out, func(a, b string) int { return cmp.Or(cmp.Compare(cfg.Queues[b], cfg.Queues[a]), cmp.Compare(a, b)) })
	return out
}

// Start starts processing tasks with h, as [asynq.Server.Start] does.
func (s *Server) Start(h asynq.Handler) error {
	if err := s.srv.Start(h); err != nil {
		return err
	}
	if s.started.CompareAndSwap(false, true) {
		s.guard.wakes.start()
		s.guard.watchTickets()
		go s.guard.sweepIdle(s.stopping)
	}
	return nil
}

// Stop stops taking new tasks, as [asynq.Server.Stop] does. Running tasks
// go on; goroutines holding waiting tasks let go (the tasks stay parked).
func (s *Server) Stop() {
	s.stop()
	s.srv.Stop()
}

// Shutdown stops taking new tasks, lets go of the tasks that goroutines
// hold while they wait for a slot (they stay parked in Redis, for any
// worker to run), then shuts the asynq server down: running tasks get its
// ShutdownTimeout, and slots are released as their handlers return.
func (s *Server) Shutdown() {
	s.stop()
	s.srv.Stop()
	s.srv.Shutdown()
	if s.started.CompareAndSwap(true, false) {
		s.guard.wakes.stop()
	}
}

// Ping reports whether the server's Redis answers, as [asynq.Server.Ping].
func (s *Server) Ping() error { return s.srv.Ping() }
