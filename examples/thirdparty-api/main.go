// Command thirdparty-api limits concurrent calls to a third-party API across
// several asynq servers with one slotguard rule.
//
// A local fake API answers 429 whenever more than --limit requests are in
// flight. --servers asynq servers (in one process here; separate machines in
// production) process --tasks tasks that each make one call. With the guard,
// the API never sees more than --limit calls at once and answers no 429;
// with --guard=false the same load gets 429s.
//
//	go run ./examples/thirdparty-api
//	go run ./examples/thirdparty-api --guard=false
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hibiken/asynq"

	"github.com/slotguard/slotguard/examples/internal/exampleredis"
	"github.com/slotguard/slotguard/worker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "thirdparty-api:", err)
		os.Exit(1)
	}
}

type settings struct {
	tasks, limit, servers, concurrency int
	work, timeout                      time.Duration
	guard                              bool
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var s settings
	fs := flag.NewFlagSet("thirdparty-api", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&s.tasks, "tasks", 300, "tasks to process, one API call each")
	fs.IntVar(&s.limit, "limit", 5, "concurrent requests the API accepts, and the guard's limit")
	fs.IntVar(&s.servers, "servers", 3, "asynq servers sharing the limit")
	fs.IntVar(&s.concurrency, "concurrency", 10, "asynq Concurrency of each server")
	fs.DurationVar(&s.work, "work", 20*time.Millisecond, "how long the API takes per request")
	fs.DurationVar(&s.timeout, "timeout", time.Minute, "give up when the tasks are not done by then")
	fs.BoolVar(&s.guard, "guard", true, "guard the API calls with slotguard")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if s.tasks < 1 || s.limit < 1 || s.servers < 1 || s.concurrency < 1 {
		return errors.New("--tasks, --limit, --servers and --concurrency must be at least 1")
	}

	conn, err := exampleredis.Connect(getenv)
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Fprintln(stdout, "Redis:", conn.Where)

	api := &fakeAPI{limit: int64(s.limit), work: s.work}
	srv := httptest.NewServer(api)
	defer srv.Close()
	fmt.Fprintf(stdout, "fake API: answers 429 when more than %d requests are in flight\n", s.limit)

	// Every run uses its own queue and key prefix, so that it can share a
	// Redis with anything else, and removes them at the end.
	queue := exampleredis.Unique("thirdparty-api")
	prefix := exampleredis.Unique("slotguard-example")
	defer func() {
		_ = exampleredis.DeleteQueue(conn.Client, queue)
		_ = exampleredis.DeletePrefix(conn.Client, prefix)
	}()

	var done, failed, calling, callPeak atomic.Int64
	httpc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: s.servers * s.concurrency}, Timeout: 10 * time.Second}
	call := func(ctx context.Context, t *asynq.Task) error {
		defer done.Add(1)
		n := calling.Add(1)
		defer calling.Add(-1)
		for p := callPeak.Load(); n > p && !callPeak.CompareAndSwap(p, n); p = callPeak.Load() {
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, nil)
		if err != nil {
			return err
		}
		resp, err := httpc.Do(req)
		if err != nil {
			failed.Add(1)
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			// A real handler could return worker.RequeueAfter here; the
			// example counts the failure instead, to show how many there are.
			failed.Add(1)
			return fmt.Errorf("api answered %s: %w", resp.Status, asynq.SkipRetry)
		}
		return nil
	}

	servers, err := startServers(conn, s, queue, prefix, call)
	defer func() {
		var wg sync.WaitGroup
		for _, stop := range servers {
			wg.Go(stop)
		}
		wg.Wait()
	}()
	if err != nil {
		return err
	}

	mode := "without the guard"
	if s.guard {
		mode = fmt.Sprintf("guarded by one slotguard rule, limit %d", s.limit)
	}
	fmt.Fprintf(stdout, "%d asynq servers x concurrency %d, %s: %d tasks\n", s.servers, s.concurrency, mode, s.tasks)

	start := time.Now()
	client := asynq.NewClientFromRedisClient(conn.Client)
	for i := range s.tasks {
		task := asynq.NewTask("api:call", []byte(`{"n":`+strconv.Itoa(i)+`}`))
		if _, err := client.EnqueueContext(ctx, task, asynq.Queue(queue), asynq.MaxRetry(0)); err != nil {
			return fmt.Errorf("enqueue: %w", err)
		}
	}
	if err := waitFor(ctx, s.timeout, func() bool { return done.Load() >= int64(s.tasks) }); err != nil {
		return fmt.Errorf("%d of %d tasks done: %w", done.Load(), s.tasks, err)
	}
	took := time.Since(start)

	fmt.Fprintf(stdout, "  tasks done:                  %d (succeeded %d, failed with 429: %d)\n", done.Load(), done.Load()-failed.Load(), failed.Load())
	fmt.Fprintf(stdout, "  handlers calling at once:    %d\n", callPeak.Load())
	fmt.Fprintf(stdout, "  API peak concurrency:        %d (the API accepts %d)\n", api.peak.Load(), s.limit)
	fmt.Fprintf(stdout, "  API 429 responses:           %d\n", api.rejected.Load())
	fmt.Fprintf(stdout, "  took:                        %v\n", took.Round(10*time.Millisecond))
	if s.guard {
		fmt.Fprintln(stdout, "Run with --guard=false to send the same load without slotguard.")
	}
	return nil
}

// startServers starts s.servers asynq servers on queue, each with its own
// Redis client as a separate process would have, and, with s.guard, its own
// worker.Guard. It returns their shutdown functions.
func startServers(conn *exampleredis.Conn, s settings, queue, prefix string, call asynq.HandlerFunc) ([]func(), error) {
	cfg := worker.Config{
		Prefix:          prefix,
		RequeueMinDelay: 100 * time.Millisecond,
		Rules:           []worker.Rule{{Name: "thirdparty-api", TaskTypes: []string{"api:*"}, Limit: s.limit}},
	}
	acfg := asynq.Config{
		Concurrency:              s.concurrency,
		Queues:                   map[string]int{queue: 1},
		TaskCheckInterval:        100 * time.Millisecond,
		DelayedTaskCheckInterval: 100 * time.Millisecond,
		LogLevel:                 asynq.FatalLevel,
	}
	var stops []func()
	for i := range s.servers {
		rdb, err := conn.NewClient()
		if err != nil {
			return stops, err
		}
		closeClient := func() { _ = rdb.Close() }
		mux := asynq.NewServeMux()
		mux.HandleFunc("api:call", call)
		var srv interface {
			Start(asynq.Handler) error
			Shutdown()
		}
		if s.guard {
			guard, err := worker.New(rdb, cfg, &worker.Options{Name: fmt.Sprintf("server-%d", i+1)})
			if err != nil {
				closeClient()
				return stops, err
			}
			mux.Use(guard.Middleware)
			srv = guard.NewServer(acfg)
		} else {
			srv = asynq.NewServerFromRedisClient(rdb, acfg)
		}
		if err := srv.Start(mux); err != nil {
			closeClient()
			return stops, fmt.Errorf("start server %d: %w", i+1, err)
		}
		stops = append(stops, func() { srv.Shutdown(); closeClient() })
	}
	return stops, nil
}

// waitFor polls cond until it holds, ctx is done or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}
