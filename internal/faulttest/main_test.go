package faulttest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
	"github.com/slotguard/slotguard/internal/workerproc"
	"github.com/slotguard/slotguard/limiter"
)

var workerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "faulttest")
	if err != nil {
		panic(err)
	}
	if workerBin, err = workerproc.Build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	redistest.Main(m, func() { os.RemoveAll(dir) })
}

// Every test uses these names on its own redis-server.
const (
	queue  = "faults"
	prefix = "sg"
	rule   = "api"
)

// workerConfig is a cmd/worker config whose api:call handler calls apiURL
// under one rule of limit slots, with the given lease, on Redis at addr.
func workerConfig(addr, apiURL string, limit, concurrency int, lease time.Duration) string {
	return fmt.Sprintf(`
redis:
  url: redis://%s/0
worker:
  concurrency: %d
  queues: {%s: 1}
  shutdown_timeout: 5s
  delayed_task_check_interval: 200ms
  task_check_interval: 200ms
limits:
  prefix: %s
  lease: %s
  rules:
    - name: %s
      task_types: ["api:*"]
      limit: %d
handlers:
  - type: "api:call"
    http:
      url: "%s/call/{n}"
      timeout: 10s
`, addr, concurrency, queue, prefix, lease, rule, limit, apiURL)
}

// proc is one running worker binary; its log goes to a file.
type proc struct {
	cmd     *exec.Cmd
	admin   string
	logPath string
	done    chan struct{}
}

// startWorker runs the worker binary on the config file cfg and waits until
// its admin server answers /healthz.
func startWorker(t *testing.T, cfg string) *proc {
	t.Helper()
	p := &proc{admin: fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t)), done: make(chan struct{})}
	logf, err := os.CreateTemp(t.TempDir(), "worker-*.log")
	if err != nil {
		t.Fatal(err)
	}
	p.logPath = logf.Name()
	p.cmd = exec.Command(workerBin, "--config", cfg, "--admin-addr", p.admin)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("log of worker pid %d (last 3000 bytes):\n%s", p.cmd.Process.Pid, tail(p.logs(), 3000))
		}
		if dir := os.Getenv("FAULTTEST_KEEP_LOGS"); dir != "" { // keep every worker's log there
			_ = os.WriteFile(filepath.Join(dir, t.Name()+"-"+filepath.Base(p.logPath)), []byte(p.logs()), 0o644)
		}
	})
	wait.Until(t, 20*time.Second, "the worker's admin server", func() bool {
		resp, err := http.Get("http://" + p.admin + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// kill sends SIGKILL and waits for the process to exit.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// alive reports whether the process still runs.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) logs() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "worker.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// enqueue adds n api:call tasks whose "n" is prefix followed by 0..n-1.
func enqueue(t *testing.T, rdb redis.UniversalClient, prefix string, n int) {
	t.Helper()
	c := asynq.NewClientFromRedisClient(rdb)
	for i := range n {
		payload := fmt.Sprintf(`{"n":"%s%d"}`, prefix, i)
		if _, err := c.Enqueue(asynq.NewTask("api:call", []byte(payload)), asynq.Queue(queue)); err != nil {
			t.Fatal(err)
		}
	}
}

// queueState returns asynq's counts for the test queue; ok is false when
// Redis did not answer.
func queueState(rdb redis.UniversalClient) (q *asynq.QueueInfo, ok bool) {
	in := asynq.NewInspectorFromRedisClient(rdb)
	q, err := in.GetQueueInfo(queue)
	if err != nil {
		return nil, false
	}
	return q, true
}

// drained reports whether the queue holds no pending, active, scheduled or
// retry task.
func drained(rdb redis.UniversalClient) bool {
	q, ok := queueState(rdb)
	return ok && q.Pending+q.Active+q.Scheduled+q.Retry == 0
}

func archived(t *testing.T, rdb redis.UniversalClient) int {
	t.Helper()
	q, ok := queueState(rdb)
	if !ok {
		t.Fatal("cannot read the queue's state")
	}
	return q.Archived
}

// held returns how many slots of the rule's semaphore are held.
func held(t *testing.T, rdb redis.UniversalClient) int {
	t.Helper()
	s, err := limiter.New(rdb, rule, 1, &limiter.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("limiter info: %v", err)
	}
	return info.Held
}

// assertNoSlotHeldAfter checks that no slot is held one lease (plus a
// renewal's slack) after the end of the run.
func assertNoSlotHeldAfter(t *testing.T, rdb redis.UniversalClient, lease time.Duration) {
	t.Helper()
	deadline := time.Now().Add(lease + time.Second)
	for held(t, rdb) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d slots still held %v after the run ended", held(t, rdb), lease+time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
