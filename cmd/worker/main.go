// Command worker is an asynq worker whose task handlers are guarded by
// slotguard limits. With no configuration it runs a demo handler on the Redis
// at 127.0.0.1:6379, or on an embedded one where none answers there, so that
// `go run ./cmd/worker` shows the whole system working.
//
// Usage:
//
//	worker [--config FILE] [--redis-url URL] [--concurrency N] [--admin-addr ADDR]
//	worker --check --config FILE
//
// See docs/config.md for the configuration file.
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
	go func() {
		<-ctx.Done()
		stop() // a second signal now ends the process at once
	}()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "worker:", err)
		if isUsage(err) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
