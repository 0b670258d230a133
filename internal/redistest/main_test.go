package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/wait"
)

func TestMain(m *testing.M) { Main(m, nil) }

// childEnv makes the Child tests below run; the tests of Main run this test
// binary again with it, as a package's test run.
const childEnv = "REDISTEST_CHILD"

// TestChildReportsItsRedis prints the address and the process ID of the
// Redis that Real gives it; with childEnv=block it then waits to be killed.
func TestChildReportsItsRedis(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("run by the tests of Main")
	}
	b := Real(t)
	info, err := b.Client.Info(t.Context(), "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	var pid string
	for l := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(l, "process_id:"); ok {
			pid = strings.TrimSpace(v)
		}
	}
	fmt.Printf("CHILD-REDIS %s %s\n", Addr(), pid)
	if mode == "block" {
		time.Sleep(time.Minute)
	}
}

// TestChildNeedsItsOwnServer only asks for redis-server.
func TestChildNeedsItsOwnServer(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("run by the tests of Main")
	}
	Binary(t)
}

// child runs this test binary's Child tests with env, REDIS_ADDR pointing
// at a port where nothing listens.
func child(t *testing.T, mode string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestChild", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, "REDIS_ADDR=127.0.0.1:"+strconv.Itoa(FreePort(t)), RequireEnv+"=")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// childRedis reads the "CHILD-REDIS addr pid" line.
func childRedis(t *testing.T, out string) (addr string, pid int) {
	t.Helper()
	for l := range strings.SplitSeq(out, "\n") {
		if rest, ok := strings.CutPrefix(l, "CHILD-REDIS "); ok {
			a, p, _ := strings.Cut(rest, " ")
			n, err := strconv.Atoi(p)
			if err != nil {
				t.Fatalf("bad line %q", l)
			}
			return a, n
		}
	}
	t.Fatalf("the child did not report its Redis:\n%s", out)
	return "", 0
}

func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestMainStartsAPrivateRedisWhereNoneAnswersAndStopsIt(t *testing.T) {
	Binary(t)
	tmp := t.TempDir()
	out, err := child(t, "report", "TMPDIR="+tmp).CombinedOutput()
	if err != nil {
		t.Fatalf("child failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestChildReportsItsRedis") || !strings.Contains(string(out), "--- PASS: TestChildNeedsItsOwnServer") {
		t.Fatalf("the child's tests did not both run:\n%s", out)
	}
	addr, pid := childRedis(t, string(out))
	if !strings.Contains(string(out), "these tests run on a private redis-server at "+addr) {
		t.Fatalf("the child did not say which Redis it started:\n%s", out)
	}
	if !gone(pid) {
		t.Fatalf("redis-server %d still runs after its test binary exited", pid)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "slotguard-redistest-*")); len(left) > 0 {
		t.Fatalf("the server's directory is left behind: %v", left)
	}
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if c.Ping(ctx).Err() == nil {
		t.Fatalf("something still answers at %s", addr)
	}
}

func TestMainsRedisDiesWithAKilledTestBinary(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("only Linux kills a child with its parent")
	}
	Binary(t)
	// The killed binary cannot remove its server's directory: put it here.
	cmd := child(t, "block", "TMPDIR="+t.TempDir())
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var pid int
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "CHILD-REDIS ") {
			_, pid = childRedis(t, sc.Text())
			break
		}
	}
	if pid == 0 {
		t.Fatal("the child did not report its Redis")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	wait.Until(t, 10*time.Second, fmt.Sprintf("redis-server %d to die with its SIGKILLed test binary", pid), func() bool { return gone(pid) })
}

func TestMainSaysHowManyTestsSkippedAndWhy(t *testing.T) {
	out, err := child(t, "report", "PATH="+t.TempDir()).CombinedOutput() // no redis-server on PATH
	if err != nil {
		t.Fatalf("child failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"--- SKIP: TestChildReportsItsRedis", "--- SKIP: TestChildNeedsItsOwnServer",
		"redistest: github.com/slotguard/slotguard/internal/redistest: 2 tests skipped for want of Redis:",
		"  1: no Redis answers at 127.0.0.1:", ", and redis-server is not installed to start one\n",
		"  1: redis-server is not installed, and the test starts its own\n",
		RequireEnv + "=1 makes these skips failures",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the child's output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(string(out), "tests skipped for want of Redis"); n != 1 {
		t.Errorf("the summary appears %d times:\n%s", n, out)
	}
}

func TestRequireRedisFailsInsteadOfStartingOne(t *testing.T) {
	out, err := child(t, "report", RequireEnv+"=1").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--- FAIL: TestChildReportsItsRedis") || strings.Contains(string(out), "private redis-server") {
		t.Fatalf("under %s=1 a missing Redis did not fail the test: %v\n%s", RequireEnv, err, out)
	}
}
