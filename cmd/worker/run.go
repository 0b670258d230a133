package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/slotguard/slotguard/internal/redisconn"
	"github.com/slotguard/slotguard/internal/yamlx"
	"github.com/slotguard/slotguard/worker"
)

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	f, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg, source, err := loadConfig(f, getenv)
	if f.check {
		if err != nil {
			for _, e := range yamlx.Split(err) {
				fmt.Fprintf(stderr, "%s: %v\n", source, e)
			}
			return fmt.Errorf("%s: configuration is invalid", source)
		}
		fmt.Fprintf(stdout, "%s: configuration is valid\n", source)
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s:\n%w", source, err)
	}
	log := newLogger(stderr, cfg.Log.Format, cfg.Log.Level)

	if cfg.Redis.Embedded() {
		url, stop, err := localRedis(ctx, redisconn.DefaultEmbeddedAddr, stderr)
		if err != nil {
			return err
		}
		defer stop()
		cfg.Redis.URL = url
	}
	rdb, err := cfg.Redis.NewClient()
	if err != nil {
		return err
	}
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	if err := rdb.Ping(pctx).Err(); err != nil {
		log.Error("Redis does not answer; the worker starts anyway and keeps trying (see /readyz)",
			"redis", cfg.Redis.Describe(), "error", redisconn.Redact(err.Error()))
	}
	cancel()
	if f.config == "" {
		log.Info("no --config given: running the built-in demo configuration", "handler", "demo:sleep", "rule", "demo", "task_types", "demo:*", "limit", 2)
	}
	return serve(ctx, cfg, rdb, log, getenv)
}

// serve runs the guarded asynq server and the admin server until ctx is
// done, then shuts both down: tasks waiting for slots go back to their
// queues, running tasks get the shutdown timeout, and every slot is released.
func serve(ctx context.Context, cfg fileConfig, rdb redis.UniversalClient, log *slog.Logger, getenv func(string) string) error {
	states := newStateReader(rdb, cfg.Limits)
	m := newMetrics(states.ruleStates)
	events := newRecorder()
	events.onNew = states.notice
	states.local = events.activity
	guard, err := worker.New(rdb, cfg.Limits, &worker.Options{OnEvent: func(e worker.Event) {
		m.observe(e)
		events.record(e)
		logEvent(log, e)
	}})
	if err != nil {
		return err
	}
	tasks, err := buildHandlers(cfg.Handlers, log, getenv)
	if err != nil {
		return err
	}
	srv := guard.NewServer(asynq.Config{
		Concurrency:              cfg.Worker.Concurrency,
		Queues:                   cfg.Worker.Queues,
		StrictPriority:           cfg.Worker.StrictPriority,
		ShutdownTimeout:          cfg.Worker.ShutdownTimeout,
		DelayedTaskCheckInterval: cfg.Worker.DelayedTaskCheckInterval,
		TaskCheckInterval:        cfg.Worker.TaskCheckInterval,
		Logger:                   asynqLogger{log},
		LogLevel:                 asynqLevel(logLevel(cfg.Log.Level)),
	})
	var running atomic.Bool
	g, gctx := errgroup.WithContext(ctx)

	if cfg.Admin.Addr != "off" {
		ln, err := listenAdmin(cfg.Admin, log)
		if err != nil {
			return err
		}
		a := &admin{rdb: rdb, states: states, metrics: m, running: &running, token: cfg.Admin.Token, loopback: loopbackHost(ln.Addr().String()),
			events: events, queues: newQueueReader(rdb, cfg.Worker.Queues), log: log}
		hs := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 5 * time.Second}
		log.Info("admin server listening", "addr", "http://"+ln.Addr().String(), "paths", "/ /metrics /healthz /readyz /limits")
		if !a.loopback && a.token == "" {
			log.Warn("admin server is not on loopback and has no admin.token: limits are read-only there")
		}
		g.Go(func() error {
			if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("admin server: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return hs.Shutdown(sctx)
		})
	}

	handler := countOutcomes(m, tasks, guard.Middleware(busyRequeues(logTasks(log, tasks))))
	if err := srv.Start(handler); err != nil {
		return fmt.Errorf("asynq server: %w", err)
	}
	running.Store(true)
	log.Info("worker started", "redis", cfg.Redis.Describe(), "concurrency", cfg.Worker.Concurrency,
		"queues", queueList(cfg.Worker.Queues), "handlers", tasks.types(), "rules", ruleList(cfg.Limits))
	g.Go(func() error {
		<-gctx.Done()
		log.Info("shutting down: tasks waiting for a slot stay parked in Redis, running ones get the shutdown timeout", "shutdown_timeout", cfg.Worker.ShutdownTimeout)
		running.Store(false)
		return shutdownWithin(srv.Shutdown, cfg.Worker.ShutdownTimeout+shutdownGrace, log)
	})
	return g.Wait()
}

// shutdownGrace is how long after the shutdown timeout the worker still
// waits for asynq's and the guard's last Redis calls (requeueing waiting
// tasks, clearing the server's state) before it exits anyway.
const shutdownGrace = 5 * time.Second

// shutdownWithin runs shutdown and waits for it at most d. asynq's shutdown
// makes Redis calls without a deadline (its processor waits for a Dequeue
// to return before it stops), so against a Redis that never answers (such
// as rediss:// pointed at a plain server, where each TLS handshake waits
// for its dial timeout and is retried) it took minutes. Past d the worker
// exits anyway: slots still held come back when their leases end, and asynq
// recovers the tasks that were running when their own leases end.
func shutdownWithin(shutdown func(), d time.Duration, log *slog.Logger) error {
	done := make(chan struct{})
	go func() {
		shutdown()
		close(done)
	}()
	select {
	case <-done:
		log.Info("worker stopped")
	case <-time.After(d):
		log.Error("shutdown did not finish in time (does Redis answer?): exiting anyway; held slots come back when their leases end",
			"waited", d)
	}
	return nil
}

func queueList(qs map[string]int) string {
	var out []string
	for q, p := range qs {
		out = append(out, fmt.Sprintf("%s=%d", q, p))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func ruleList(c worker.Config) string {
	var out []string
	for _, r := range c.Rules {
		s := fmt.Sprintf("%s(limit %d)", r.Name, r.Limit)
		if r.PartitionBy != "" {
			s = fmt.Sprintf("%s(limit %d per %s)", r.Name, r.Limit, r.PartitionBy)
		}
		out = append(out, s)
	}
	return strings.Join(out, ",")
}

func logEvent(log *slog.Logger, e worker.Event) {
	switch e.Kind {
	case worker.EventAcquired:
		log.Debug("slot acquired", "task_id", e.Task.ID, "type", e.Task.Type, "limiter", e.Semaphore, "waited", e.Waited.Round(time.Millisecond))
	case worker.EventParked:
		log.Debug("task parked: waits for a slot in Redis", "task_id", e.Task.ID, "type", e.Task.Type, "limiter", e.Semaphore)
	case worker.EventWoken:
		log.Debug("parked task woken: its slot is reserved", "task_id", e.Task.ID, "type", e.Task.Type, "limiter", e.Semaphore, "waited", e.Waited.Round(time.Millisecond))
	case worker.EventRequeued:
		log.Info("task requeued", "task_id", e.Task.ID, "type", e.Task.Type,
			"delay", e.Delay.Round(time.Millisecond), "attempt", e.Attempt, "reason", requeueReason(e.Err))
	case worker.EventRedisError:
		log.Warn("Redis error while a task waited for its slot; trying again", "task_id", e.Task.ID, "limiter", e.Semaphore,
			"error", redisconn.Redact(e.Err.Error()))
	case worker.EventLeaseLost:
		log.Warn("slot lease lost: task cancelled", "task_id", e.Task.ID, "type", e.Task.Type, "limiter", e.Semaphore)
	case worker.EventReleased:
		if e.Err != nil {
			log.Warn("slot release failed; its lease will free it", "task_id", e.Task.ID, "limiter", e.Semaphore, "error", e.Err)
		}
	}
}
