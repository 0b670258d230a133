package main

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/asynqtest"
	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
	"github.com/slotguard/slotguard/internal/workerproc"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "worker-test")
	if err != nil {
		panic(err)
	}
	if binary, err = workerproc.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	redistest.Main(m, func() {
		asynqtest.Release()
		os.RemoveAll(dir)
	})
}

// startWorker runs the binary with a config file holding yaml and an admin
// server on a free port, and waits until it is ready.
func startWorker(t *testing.T, yaml string, env ...string) *workerproc.Proc {
	t.Helper()
	admin := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	p := workerproc.Start(t, binary, yaml, []string{"--admin-addr", admin}, env...)
	wait.Until(t, 20*time.Second, "the worker to be ready", func() bool { return p.Get("/readyz") == "ready\n" })
	return p
}
