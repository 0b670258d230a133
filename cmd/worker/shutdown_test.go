package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
	"github.com/slotguard/slotguard/internal/workerproc"
)

// TestShutdownHonoursItsTimeoutWhenRedisNeverAnswers points the worker at a
// plain Redis with rediss://, so every call waits for a TLS handshake that
// cannot succeed, and sends SIGTERM: the worker must exit within its
// shutdown timeout plus shutdownGrace (it took 81 s against 30 s before:
// asynq's shutdown waits on Redis calls without a deadline).
func TestShutdownHonoursItsTimeoutWhenRedisNeverAnswers(t *testing.T) {
	srv := redistest.StartServer(t)
	const timeout = 2 * time.Second
	admin := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	w := workerproc.Start(t, binary, fmt.Sprintf("worker:\n  shutdown_timeout: %v\n", timeout), []string{"--admin-addr", admin},
		"REDIS_URL=rediss://"+srv.Addr()+"/0")
	wait.Until(t, 30*time.Second, "the worker to start", func() bool { return strings.Contains(w.Logs(), "worker started") })
	time.Sleep(time.Second) // let asynq's processor block in a Dequeue, as it does under load
	start := time.Now()
	w.Signal(syscall.SIGTERM)
	_ = w.Wait(t, 60*time.Second)
	took := time.Since(start)
	if limit := timeout + shutdownGrace + 3*time.Second; took > limit {
		t.Fatalf("the worker took %v to exit after SIGTERM; want at most %v (shutdown_timeout %v + %v grace + 3 s for a loaded machine)", took.Round(100*time.Millisecond), limit, timeout, shutdownGrace)
	}
	if !strings.Contains(w.Logs(), "shutdown did not finish in time") {
		t.Fatalf("no log line says why the worker exited before its shutdown ended:\n%s", w.Logs())
	}
	t.Logf("exited %v after SIGTERM", took.Round(100*time.Millisecond))
}
