package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/asynqtest"
	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/tally"
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
	code := m.Run()
	asynqtest.Release()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startWorker runs the binary with a config file holding yaml and an admin
// server on a free port, and waits until it is ready.
func startWorker(t *testing.T, yaml string, env ...string) *workerproc.Proc {
	t.Helper()
	admin := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	p := workerproc.Start(t, binary, yaml, []string{"--admin-addr", admin}, env...)
	eventually(t, 20*time.Second, "the worker to be ready", func() bool { return p.Get("/readyz") == "ready\n" })
	return p
}

// eventually waits until cond holds, failing the test after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	wait.Until(t, d, what, cond)
}

// fakeAPI counts its concurrent requests and records the payload's "n" of
// each request it served.
type fakeAPI struct {
	tally.Served
	inflight, peak, total atomic.Int64
	delay                 time.Duration
	reply                 func(n string) (status int, header http.Header)
	mu                    sync.Mutex
	seen                  []http.Header
}

func newFakeAPI(delay time.Duration) *fakeAPI {
	return &fakeAPI{delay: delay}
}

func (a *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := a.inflight.Add(1)
	defer a.inflight.Add(-1)
	tally.RaiseMax(&a.peak, now)
	a.total.Add(1)
	time.Sleep(a.delay)
	n := strings.TrimPrefix(r.URL.Path, "/call/")
	status := http.StatusOK
	if a.reply != nil {
		var h http.Header
		status, h = a.reply(n)
		for k, v := range h {
			w.Header()[k] = v
		}
	}
	a.mu.Lock()
	a.seen = append(a.seen, r.Header.Clone())
	if status == http.StatusOK {
		a.Add(n)
	}
	a.mu.Unlock()
	w.WriteHeader(status)
}
