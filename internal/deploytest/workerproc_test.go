package deploytest

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
	"github.com/slotguard/slotguard/internal/workerproc"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
	workerBin string
)

// workerBinary builds cmd/worker once per test process.
func workerBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "deploytest-worker")
		if buildErr == nil {
			workerBin, buildErr = workerproc.Build(buildDir)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return workerBin
}

type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	// The fault tests make go-redis log every refused dial.
	redis.SetLogger(quietLogger{})
	redistest.Main(m, func() {
		if buildDir != "" {
			os.RemoveAll(buildDir)
		}
	})
}

// startWorker runs the worker binary with yaml as its config file and extra
// arguments; env is added to the environment. It does not wait for
// readiness.
func startWorker(t *testing.T, yaml string, args []string, env ...string) *workerproc.Proc {
	t.Helper()
	return workerproc.Start(t, workerBinary(t), yaml, args, env...)
}

// startAdminWorker starts the worker with an admin server on a free port and
// waits until the admin server answers.
func startAdminWorker(t *testing.T, yaml string, env ...string) *workerproc.Proc {
	t.Helper()
	p := startWorker(t, yaml, []string{"--admin-addr", fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))}, env...)
	wait.Until(t, 30*time.Second, "the admin server", func() bool { return p.Get("/healthz") == "ok\n" })
	return p
}

// startReadyWorker starts the worker with an admin server on a free port and
// waits for /readyz.
func startReadyWorker(t *testing.T, yaml string, env ...string) *workerproc.Proc {
	t.Helper()
	p := startWorker(t, yaml, []string{"--admin-addr", fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))}, env...)
	wait.Until(t, 30*time.Second, "the worker to be ready", func() bool {
		if done, err := p.Exited(); done {
			t.Fatalf("worker exited early: %v\n%s", err, p.Logs())
		}
		return p.Get("/readyz") == "ready\n"
	})
	return p
}
