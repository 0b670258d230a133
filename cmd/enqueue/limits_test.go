package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/asynqtest"
	"github.com/slotguard/slotguard/internal/redistest"
)

// limiterRow returns the "limits" table row of name: limit, held, waiting.
func limiterRow(t *testing.T, prefix, name string) (limit, held, waiting int, ok bool) {
	t.Helper()
	r := enqueue(t, "", "limits", "--prefix", prefix)
	if r.code != 0 {
		t.Fatalf("limits: exit %d: %s", r.code, r.stderr)
	}
	for line := range strings.SplitSeq(r.stdout, "\n") {
		f := strings.Fields(line)
		if len(f) == 5 && f[0] == name {
			fmt.Sscan(f[1], &limit)
			fmt.Sscan(f[2], &held)
			fmt.Sscan(f[3], &waiting)
			return limit, held, waiting, true
		}
	}
	return 0, 0, 0, false
}

func waitRow(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestLimitsSetIsSeenByARunningWorker(t *testing.T) {
	in := inspector(t, "eq-limits")
	_ = in
	b := redistest.Real(t)
	url := fmt.Sprintf("redis://%s/%d", redistest.Addr(), asynqtest.DB(t))
	cfg := filepath.Join(t.TempDir(), "worker.yaml")
	os.WriteFile(cfg, fmt.Appendf(nil, `
redis:
  url: %s
worker:
  concurrency: 10
  queues: {eq-limits: 1}
  shutdown_timeout: 5s
limits:
  prefix: %s
  rules:
    - name: lim
      task_types: ["slow:*"]
      limit: 1
handlers:
  - type: "slow:sleep"
    sleep: {}
admin:
  addr: "off"
log:
  level: warn
`, url, b.Prefix), 0o644)
	w := exec.Command(filepath.Join(binDir, "worker"), "--config", cfg)
	w.Stderr = os.Stderr
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = w.Process.Kill()
		_ = w.Wait()
	})
	r := enqueue(t, "", "--type", "slow:sleep", "--payload", `{"ms": 20000}`, "--queue", "eq-limits", "--count", "5")
	if r.code != 0 {
		t.Fatalf("enqueue: %s", r.stderr)
	}
	waitRow(t, "one holder and four waiters", func() bool {
		limit, held, waiting, ok := limiterRow(t, b.Prefix, "lim")
		return ok && limit == 1 && held == 1 && waiting == 4
	})
	r = enqueue(t, "", "limits", "set", "lim", "3", "--prefix", b.Prefix)
	if r.code != 0 || !strings.Contains(r.stdout, "lim: limit 1 -> 3") {
		t.Fatalf("limits set: exit %d, %q %s", r.code, r.stdout, r.stderr)
	}
	waitRow(t, "the worker to run 3 at once", func() bool {
		limit, held, waiting, _ := limiterRow(t, b.Prefix, "lim")
		return limit == 3 && held == 3 && waiting == 2
	})
	r = enqueue(t, "", "limits", "-v", "--prefix", b.Prefix)
	if strings.Count(r.stdout, "holder ") != 3 || !strings.Contains(r.stdout, "slow:sleep") {
		t.Fatalf("limits -v does not list the 3 holders with their tasks:\n%s", r.stdout)
	}
}
