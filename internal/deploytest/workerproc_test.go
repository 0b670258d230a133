package deploytest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/redistest"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// workerBinary builds cmd/worker once per test process.
func workerBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "deploytest-worker")
		if buildErr != nil {
			return
		}
		out, err := exec.Command("go", "build", "-o", filepath.Join(buildDir, "worker"), "../../cmd/worker").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build ./cmd/worker: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, "worker")
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	// The fault tests make go-redis log every refused dial.
	redis.SetLogger(quietLogger{})
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// proc is a running cmd/worker process.
type proc struct {
	cmd   *exec.Cmd
	admin string
	mu    sync.Mutex
	log   bytes.Buffer
	done  chan error
}

// startWorker runs the worker binary with yaml as its config file and extra
// arguments; env is added to the environment. It does not wait for
// readiness.
func startWorker(t *testing.T, yaml string, args []string, env ...string) *proc {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "worker.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &proc{done: make(chan error, 1)}
	p.cmd = exec.Command(workerBinary(t), append([]string{"--config", cfg}, args...)...)
	p.cmd.Env = append(os.Environ(), env...)
	stderr, _ := p.cmd.StderrPipe()
	p.cmd.Stdout = p.cmd.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
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
			t.Logf("worker log:\n%s", tail(p.logs(), 60))
		}
	})
	return p
}

// startAdminWorker starts the worker with an admin server on a free port and
// waits until the admin server answers.
func startAdminWorker(t *testing.T, yaml string, env ...string) *proc {
	t.Helper()
	admin := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	p := startWorker(t, yaml, []string{"--admin-addr", admin}, env...)
	p.admin = admin
	eventually(t, 30*time.Second, "the admin server", func() bool { return p.get("/healthz") == "ok\n" })
	return p
}

// startReadyWorker starts the worker with an admin server on a free port and
// waits for /readyz.
func startReadyWorker(t *testing.T, yaml string, env ...string) *proc {
	t.Helper()
	admin := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	p := startWorker(t, yaml, []string{"--admin-addr", admin}, env...)
	p.admin = admin
	eventually(t, 30*time.Second, "the worker to be ready", func() bool {
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("worker exited early: %v\n%s", err, p.logs())
		default:
		}
		return p.get("/readyz") == "ready\n"
	})
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

// exited waits up to d for the process to exit and returns its error.
func (p *proc) exited(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(d):
		t.Fatalf("worker did not exit within %v; log:\n%s", d, p.logs())
		return nil
	}
}

// fakeAPI counts its concurrent requests and records each task's "n" it
// served, and the request headers.
type fakeAPI struct {
	inflight, peak atomic.Int64
	delay          time.Duration
	mu             sync.Mutex
	served         map[string]int
	headers        []http.Header
}

func newFakeAPI(delay time.Duration) *fakeAPI {
	return &fakeAPI{delay: delay, served: map[string]int{}}
}

func (a *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := a.inflight.Add(1)
	defer a.inflight.Add(-1)
	for p := a.peak.Load(); now > p && !a.peak.CompareAndSwap(p, now); p = a.peak.Load() {
	}
	time.Sleep(a.delay)
	a.mu.Lock()
	a.served[strings.TrimPrefix(r.URL.Path, "/call/")]++
	a.headers = append(a.headers, r.Header.Clone())
	a.mu.Unlock()
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
