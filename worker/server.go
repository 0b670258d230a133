package worker

import (
	"context"
	"errors"
	"time"

	"github.com/hibiken/asynq"
)

// serverState travels in every handler context of a server configured by
// [Guard.ServerConfig]: it tells the middleware that the hooks are installed
// and when the server starts to shut down.
type serverState struct {
	guard    *Guard
	draining context.Context // done when waiting tasks must go back
	drain    context.CancelFunc
}

type stateKey struct{}

func stateFrom(ctx context.Context) *serverState {
	st, _ := ctx.Value(stateKey{}).(*serverState)
	return st
}

// ServerConfig returns cfg with the guard's hooks installed, composed with
// cfg's own:
//   - IsFailure reports false for a [*RequeueError] and asks cfg.IsFailure
//     (default: any error) otherwise;
//   - RetryDelayFunc returns the requeue delay for a [*RequeueError] and asks
//     cfg.RetryDelayFunc otherwise; without one, a task whose worker died
//     ([asynq.ErrLeaseExpired]) is retried after the config's
//     RequeueMinDelay, and any other after [asynq.DefaultRetryDelayFunc];
//   - ErrorHandler is not called for a [*RequeueError] (see [Event] for
//     requeues) and calls cfg.ErrorHandler for every other error;
//   - BaseContext wraps cfg.BaseContext to mark handler contexts as hooked.
//
// Without these hooks the middleware still never archives a task nor spends
// a retry, but every requeue then gives the task a new ID (see
// [RequeueError]). [Guard.NewServer] installs them for you.
func (g *Guard) ServerConfig(cfg asynq.Config) asynq.Config {
	cfg, _ = g.serverConfig(cfg)
	return cfg
}

func (g *Guard) serverConfig(cfg asynq.Config) (asynq.Config, *serverState) {
	st := &serverState{guard: g}
	st.draining, st.drain = context.WithCancel(context.Background())

	base := cfg.BaseContext
	if base == nil {
		base = context.Background
	}
	cfg.BaseContext = func() context.Context { return context.WithValue(base(), stateKey{}, st) }

	isFailure := cfg.IsFailure
	cfg.IsFailure = func(err error) bool {
		if _, ok := errors.AsType[*RequeueError](err); ok {
			return false
		}
		if isFailure == nil {
			return err != nil
		}
		return isFailure(err)
	}

	delay := cfg.RetryDelayFunc
	if delay == nil {
		// A task whose worker died (asynq's lease on it expired) did not
		// fail: run it again soon rather than after asynq's 15-45 s.
		delay = func(n int, err error, t *asynq.Task) time.Duration {
			if errors.Is(err, asynq.ErrLeaseExpired) {
				return g.cfg.RequeueMinDelay
			}
			return asynq.DefaultRetryDelayFunc(n, err, t)
		}
	}
	cfg.RetryDelayFunc = func(n int, err error, t *asynq.Task) time.Duration {
		if rq, ok := errors.AsType[*RequeueError](err); ok {
			return rq.Delay
		}
		return delay(n, err, t)
	}

	if h := cfg.ErrorHandler; h != nil {
		cfg.ErrorHandler = asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			if _, ok := errors.AsType[*RequeueError](err); !ok {
				h.HandleError(ctx, t, err)
			}
		})
	}
	return cfg, st
}

// Server is an asynq server with the guard's hooks installed, whose
// Shutdown first sends tasks still waiting for slots back to their queues.
type Server struct {
	srv   *asynq.Server
	state *serverState
}

// NewServer returns an asynq server on the guard's Redis client, with cfg
// passed through [Guard.ServerConfig].
func (g *Guard) NewServer(cfg asynq.Config) *Server {
	cfg, st := g.serverConfig(cfg)
	return &Server{srv: asynq.NewServerFromRedisClient(g.rdb, cfg), state: st}
}

// Start starts processing tasks with h, as [asynq.Server.Start] does.
func (s *Server) Start(h asynq.Handler) error { return s.srv.Start(h) }

// Stop stops taking new tasks, as [asynq.Server.Stop] does. Running and
// waiting tasks go on.
func (s *Server) Stop() { s.srv.Stop() }

// Shutdown stops taking new tasks, requeues every task that is waiting for
// a slot (with no delay, and releasing nothing it did not hold), then shuts
// the asynq server down: running tasks get its ShutdownTimeout, and slots
// are released as their handlers return.
func (s *Server) Shutdown() {
	s.srv.Stop()
	s.state.drain()
	s.srv.Shutdown()
}

// Ping reports whether the server's Redis answers, as [asynq.Server.Ping].
func (s *Server) Ping() error { return s.srv.Ping() }
