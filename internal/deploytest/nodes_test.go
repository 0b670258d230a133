package deploytest

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/redistest"
)

// node is a redis-server (or sentinel) process this test started.
type node struct {
	t    testing.TB
	port int
	dir  string
	cmd  *exec.Cmd
}

func (n *node) addr() string { return "127.0.0.1:" + strconv.Itoa(n.port) }

func (n *node) logs() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "redis.log"))
	return string(b)
}

// kill sends SIGKILL to the process and waits for it. Safe to call twice.
func (n *node) kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	n.cmd = nil
}

// spawn starts redis-server on port with args (a config file, if any,
// first) and waits until ready returns nil. The process is killed when the
// test ends; its log is shown if the test failed.
func spawn(t testing.TB, port int, ready func(context.Context) error, args ...string) *node {
	t.Helper()
	redistest.Binary(t)
	n := &node{t: t, port: port, dir: t.TempDir()}
	args = append(args, "--bind", "127.0.0.1", "--dir", n.dir, "--daemonize", "no",
		"--logfile", filepath.Join(n.dir, "redis.log"))
	n.cmd = exec.Command("redis-server", args...)
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start redis-server: %v", err)
	}
	t.Cleanup(func() {
		n.kill()
		if t.Failed() {
			t.Logf("log of redis-server %s:\n%s", n.addr(), tail(n.logs(), 30))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := ready(ctx)
		cancel()
		if err == nil {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server %v did not get ready: %v\n%s", args, err, tail(n.logs(), 30))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pingReady is a ready func for a plain TCP server.
func pingReady(addr string) func(context.Context) error {
	return func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		defer c.Close()
		return c.Ping(ctx).Err()
	}
}

// startRedis starts a plain redis-server without persistence.
func startRedis(t testing.TB, extra ...string) *node {
	t.Helper()
	return startRedisOn(t, redistest.FreePort(t), extra...)
}

// startRedisOn starts a plain redis-server on port, without persistence.
func startRedisOn(t testing.TB, port int, extra ...string) *node {
	t.Helper()
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{"--port", strconv.Itoa(port), "--save", "", "--appendonly", "no",
		"--repl-diskless-sync-delay", "0"}, extra...)
	return spawn(t, port, pingReady(addr), args...)
}

// clusterPort returns a free port P whose cluster bus port P+10000 is free
// too.
func clusterPort(t testing.TB) int {
	t.Helper()
	for range 200 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p+10000 > 65535 {
			// Take a lower port at random from the same run of free ports.
			p = 20000 + p%30000
		}
		if portFree(p) && portFree(p+10000) {
			return p
		}
	}
	t.Fatal("no free port pair P, P+10000")
	return 0
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func tail(s string, lines int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

func mustDo(t testing.TB, c redis.UniversalClient, args ...any) any {
	t.Helper()
	v, err := c.Do(context.Background(), args...).Result()
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return v
}
