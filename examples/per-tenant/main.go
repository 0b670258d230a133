// Command per-tenant gives every tenant its own slots with one partitioned
// slotguard rule (partition_by: tenant_id), so that a noisy tenant that
// enqueues many tasks cannot take the slots of the others.
//
//	go run ./examples/per-tenant
//	go run ./examples/per-tenant --partition=false   # one shared limit instead
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
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
		fmt.Fprintln(os.Stderr, "per-tenant:", err)
		os.Exit(1)
	}
}

type settings struct {
	noisy                  string
	quiet                  []string
	noisyTasks, quietTasks int
	limit                  int
	servers, concurrency   int
	maxWaiting             int
	work, parkAfter        time.Duration
	timeout                time.Duration
	partition              bool
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var s settings
	var quiet string
	fs := flag.NewFlagSet("per-tenant", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&s.noisy, "noisy", "acme", "the noisy tenant")
	fs.IntVar(&s.noisyTasks, "noisy-tasks", 100, "tasks the noisy tenant enqueues, first")
	fs.StringVar(&quiet, "quiet", "globex,initech", "comma-separated quiet tenants")
	fs.IntVar(&s.quietTasks, "quiet-tasks", 4, "tasks each quiet tenant enqueues, after the noisy ones")
	fs.IntVar(&s.limit, "limit", 2, "slots per tenant")
	fs.IntVar(&s.servers, "servers", 2, "asynq servers")
	fs.IntVar(&s.concurrency, "concurrency", 10, "asynq Concurrency of each server (a task waiting for a slot is parked in Redis and holds none)")
	fs.IntVar(&s.maxWaiting, "max-waiting", 0, "the rule's max_waiting (0: no cap)")
	fs.DurationVar(&s.parkAfter, "park-after", 0, "the guard's park_after: how long a waiting task keeps its goroutine")
	fs.DurationVar(&s.work, "work", 50*time.Millisecond, "how long each task runs")
	fs.DurationVar(&s.timeout, "timeout", time.Minute, "give up when the tasks are not done by then")
	fs.BoolVar(&s.partition, "partition", true, "partition the limit by tenant_id; false: one limit of limit x tenants for all")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s.quiet = strings.Split(quiet, ",")
	if s.noisyTasks < 1 || s.quietTasks < 1 || s.limit < 1 || s.servers < 1 || s.concurrency < 1 {
		return errors.New("task counts, --limit, --servers and --concurrency must be at least 1")
	}
	tenants := append([]string{s.noisy}, s.quiet...)

	conn, err := exampleredis.Connect(getenv)
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Fprintln(stdout, "Redis:", conn.Where)

	queue := exampleredis.Unique("per-tenant")
	prefix := exampleredis.Unique("slotguard-example")
	defer func() {
		_ = exampleredis.DeleteQueue(conn.Client, queue)
		_ = exampleredis.DeletePrefix(conn.Client, prefix)
	}()

	rule := worker.Rule{Name: "export", TaskTypes: []string{"export:*"}, Limit: s.limit, MaxWaiting: s.maxWaiting}
	if s.partition {
		rule.PartitionBy = "tenant_id"
		fmt.Fprintf(stdout, "rule %q: partition_by tenant_id, limit %d per tenant\n", rule.Name, s.limit)
	} else {
		rule.Limit = s.limit * len(tenants)
		fmt.Fprintf(stdout, "rule %q: not partitioned, limit %d shared by all tenants\n", rule.Name, rule.Limit)
	}
	cfg := worker.Config{
		Prefix:          prefix,
		ParkAfter:       s.parkAfter,
		RequeueMinDelay: 100 * time.Millisecond,
		RequeueMaxDelay: 500 * time.Millisecond,
		Rules:           []worker.Rule{rule},
	}

	t := newTally(tenants)
	handler := func(ctx context.Context, task *asynq.Task) error {
		var p struct {
			TenantID string `json:"tenant_id"`
		}
		if err := json.Unmarshal(task.Payload(), &p); err != nil {
			return fmt.Errorf("%v: %w", err, asynq.SkipRetry)
		}
		end := t.begin(p.TenantID)
		defer end()
		select {
		case <-time.After(s.work):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	var servers []*worker.Server
	defer func() {
		var wg sync.WaitGroup
		for _, srv := range servers {
			wg.Go(srv.Shutdown)
		}
		wg.Wait()
	}()
	for i := range s.servers {
		guard, err := worker.New(conn.Client, cfg, &worker.Options{Name: fmt.Sprintf("server-%d", i+1)})
		if err != nil {
			return err
		}
		srv := guard.NewServer(asynq.Config{
			Concurrency:              s.concurrency,
			Queues:                   map[string]int{queue: 1},
			TaskCheckInterval:        100 * time.Millisecond,
			DelayedTaskCheckInterval: 100 * time.Millisecond,
			LogLevel:                 asynq.FatalLevel,
		})
		mux := asynq.NewServeMux()
		mux.Use(guard.Middleware)
		mux.HandleFunc("export:run", handler)
		if err := srv.Start(mux); err != nil {
			return fmt.Errorf("start server %d: %w", i+1, err)
		}
		servers = append(servers, srv)
	}
	fmt.Fprintf(stdout, "%d asynq servers x concurrency %d; %s enqueues %d tasks of %v, then %s enqueue %d each\n",
		s.servers, s.concurrency, s.noisy, s.noisyTasks, s.work, strings.Join(s.quiet, " and "), s.quietTasks)

	client := asynq.NewClientFromRedisClient(conn.Client)
	enqueue := func(tenant string, n int) error {
		t.enqueuing(tenant)
		for i := range n {
			payload := fmt.Sprintf(`{"tenant_id":%q,"n":%d}`, tenant, i)
			if _, err := client.EnqueueContext(ctx, asynq.NewTask("export:run", []byte(payload)), asynq.Queue(queue)); err != nil {
				return fmt.Errorf("enqueue: %w", err)
			}
		}
		return nil
	}
	if err := enqueue(s.noisy, s.noisyTasks); err != nil {
		return err
	}
	for _, q := range s.quiet {
		if err := enqueue(q, s.quietTasks); err != nil {
			return err
		}
	}

	total := s.noisyTasks + len(s.quiet)*s.quietTasks
	if err := waitFor(ctx, s.timeout, func() bool { return t.total() >= total }); err != nil {
		return fmt.Errorf("%d of %d tasks done: %w", t.total(), total, err)
	}

	fmt.Fprintln(stdout, "tenant      tasks  peak running  all done (after its first enqueue)")
	for _, name := range tenants {
		st := t.get(name)
		fmt.Fprintf(stdout, "%-10s  %5d  %12d  %.2fs\n", name, st.done, st.peak, st.last.Sub(st.enqueued).Seconds())
	}
	var quietDone time.Duration
	for _, name := range s.quiet {
		st := t.get(name)
		quietDone = max(quietDone, st.last.Sub(st.enqueued))
	}
	fmt.Fprintf(stdout, "quiet tenants all done within %.2fs; %s ran at most %d tasks at once\n", quietDone.Seconds(), s.noisy, t.get(s.noisy).peak)
	return nil
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
