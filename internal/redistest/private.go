package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// privateServer is the redis-server that [Main] starts for one test binary.
type privateServer struct {
	addr   string
	dir    string
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has exited
}

// startPrivate starts redis-server on a free loopback port, retrying on
// another port if one was taken in between, and waits until it answers.
func startPrivate() (*privateServer, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, err
	}
	var errs []error
	for range 3 {
		s, err := tryPrivate(bin)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func tryPrivate(bin string) (*privateServer, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir, err := os.MkdirTemp("", "slotguard-redistest-")
	if err != nil {
		return nil, err
	}
	s := &privateServer{addr: "127.0.0.1:" + strconv.Itoa(port), dir: dir, exited: make(chan struct{})}
	logfile := filepath.Join(dir, "redis.log")
	s.cmd = exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", logfile)
	s.cmd.SysProcAttr = privateProcAttr()
	if err := s.startLocked(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := awaitServer(s.addr, s.exited); err != nil {
		log, _ := os.ReadFile(logfile)
		s.stop()
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	return s, nil
}

// awaitServer waits until the Redis at addr answers PING, for at most 10
// seconds, or until exited (when not nil) is closed.
func awaitServer(addr string, exited <-chan struct{}) error {
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialerRetries: 1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		switch {
		case err == nil:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("redis-server on %s did not answer within 10s: %w", addr, err)
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server on %s exited", addr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// startLocked starts the process from a goroutine that holds its OS thread
// until the process exits: Linux sends the parent-death signal when the
// thread that started the child ends, not only the process, so that thread
// must not be handed back to Go's scheduler and retired early.
func (s *privateServer) startLocked() error {
	started := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := s.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	return <-started
}

// stop kills the server, waits for it to exit and removes its directory.
func (s *privateServer) stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	_ = os.RemoveAll(s.dir)
}
