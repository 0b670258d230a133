// Command enqueue puts asynq tasks on their queues, one or in bulk, and lists
// and changes slotguard limits. It shares cmd/worker's Redis configuration:
// --redis-url, REDIS_URL and the redis section of --config.
//
// Exit codes: 0 on success, 1 on a runtime failure, 2 on a usage error.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "enqueue:", err)
	}
	os.Exit(exitCode(err))
}
