package worker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/worker"
)

// Example guards "payments:*" tasks with a limit of 2 slots shared by every
// worker process on the same Redis. It runs on an embedded miniredis.
func Example() {
	mr, err := miniredis.Run()
	if err != nil {
		panic(err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()

	cfg, err := worker.ParseConfig([]byte(`
rules:
  - name: payments-api
    task_types: ["payments:*"]
    limit: 2
`))
	if err != nil {
		panic(err)
	}
	guard, err := worker.New(rdb, cfg, nil)
	if err != nil {
		panic(err)
	}
	// NewServer installs the requeue hooks into the asynq config.
	srv := guard.NewServer(asynq.Config{Concurrency: 4, LogLevel: asynq.FatalLevel})

	done := make(chan struct{})
	mux := asynq.NewServeMux()
	mux.Use(guard.Middleware)
	mux.HandleFunc("payments:charge", func(ctx context.Context, t *asynq.Task) error {
		fence, ok := worker.FenceFromContext(ctx)
		fmt.Printf("charging %s with a fencing token: %v\n", t.Payload(), ok && fence > 0)
		close(done)
		return nil
	})
	if err := srv.Start(mux); err != nil {
		panic(err)
	}
	defer srv.Shutdown()

	client := asynq.NewClientFromRedisClient(rdb)
	if _, err := client.Enqueue(asynq.NewTask("payments:charge", []byte(`{"customer_id":"c1"}`))); err != nil {
		panic(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		fmt.Println("timed out")
	}
	// Output:
	// charging {"customer_id":"c1"} with a fencing token: true
}

// ExampleParseConfig shows a validation error: it names the field and the
// YAML line.
func ExampleParseConfig() {
	_, err := worker.ParseConfig([]byte(`
rules:
  - name: export-per-tenant
    task_types: ["export:run"]
    partition_by: tenant_id
    limit: 0
`))
	fmt.Println(err)
	// Output:
	// worker: config: rules[0].limit (line 6): must be at least 1, got 0
}

// ExampleExponentialBackoff shows the bounds of the default requeue delays.
func ExampleExponentialBackoff() {
	backoff := worker.ExponentialBackoff(time.Second, time.Minute)
	for _, attempt := range []int{1, 2, 3, 7, 8} {
		d := backoff(attempt)
		full := min(time.Second<<(attempt-1), time.Minute)
		fmt.Printf("attempt %d: between %v and %v: %v\n", attempt, full/2, full, d >= full/2 && d <= full)
	}
	// Output:
	// attempt 1: between 500ms and 1s: true
	// attempt 2: between 1s and 2s: true
	// attempt 3: between 2s and 4s: true
	// attempt 7: between 30s and 1m0s: true
	// attempt 8: between 30s and 1m0s: true
}
