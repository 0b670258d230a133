package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/asynqtest"
	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "worker-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "worker")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	asynqtest.Release()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running worker binary.
type proc struct {
	cmd   *exec.Cmd
	admin string
	mu    sync.Mutex
	log   bytes.Buffer
	done  chan error
}

// startWorker runs the binary with a config file holding yaml and an admin
// server on a free port.
func startWorker(t *testing.T, yaml string, env ...string) *proc {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "worker.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &proc{admin: fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t)), done: make(chan error, 1)}
	p.cmd = exec.Command(binary, "--config", cfg, "--admin-addr", p.admin)
	p.cmd.Env = append(os.Environ(), env...)
	stderr, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("worker log:\n%s", p.logs())
		}
	})
	eventually(t, 20*time.Second, "the worker to be ready", func() bool { return p.get("/readyz") == "ready\n" })
	return p
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *proc) get(path string) string {
	resp, err := http.Get("http://" + p.admin + path)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func (p *proc) signal(sig syscall.Signal) { _ = p.cmd.Process.Signal(sig) }

// wait waits for the process to exit and returns its error.
func (p *proc) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(d):
		t.Fatalf("worker did not exit within %v", d)
		return nil
	}
}

// eventually waits until cond holds, failing the test after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	wait.Until(t, d, what, cond)
}

// fakeAPI counts its concurrent requests and records the payload's "n" of
// each request it served.
type fakeAPI struct {
	inflight, peak, total atomic.Int64
	delay                 time.Duration
	reply                 func(n string) (status int, header http.Header)
	mu                    sync.Mutex
	served                map[string]int
	seen                  []http.Header
}

func newFakeAPI(delay time.Duration) *fakeAPI {
	return &fakeAPI{delay: delay, served: map[string]int{}}
}

func (a *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := a.inflight.Add(1)
	defer a.inflight.Add(-1)
	for {
		p := a.peak.Load()
		if now <= p || a.peak.CompareAndSwap(p, now) {
			break
		}
	}
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
		a.served[n]++
	}
	a.mu.Unlock()
	w.WriteHeader(status)
}

func (a *fakeAPI) distinct() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.served)
}

func (a *fakeAPI) duplicates() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	d := 0
	for _, c := range a.served {
		d += c - 1
	}
	return d
}
