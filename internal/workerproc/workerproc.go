// Package workerproc runs the cmd/worker binary as a subprocess for tests:
// it builds the binary, starts it on a config, keeps its log, and talks to
// its admin server.
package workerproc

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Build compiles cmd/worker into dir and returns the binary's path.
func Build(dir string) (string, error) {
	bin := filepath.Join(dir, "worker")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/slotguard/slotguard/cmd/worker").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/worker: %v\n%s", err, out)
	}
	return bin, nil
}

// Proc is a running worker process. Its stdout and stderr are kept.
type Proc struct {
	Cmd   *exec.Cmd
	Admin string // the admin server's host:port, when one was asked for

	mu   sync.Mutex
	log  bytes.Buffer
	done chan error
}

// Start runs bin with yaml as its config file and the extra args; env is
// added to the environment. The process is killed when the test ends, and
// its log shown if the test failed. Start does not wait for readiness.
func Start(t testing.TB, bin, yaml string, args []string, env ...string) *Proc {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "worker.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Proc{done: make(chan error, 1)}
	for i, a := range args {
		if a == "--admin-addr" && i+1 < len(args) {
			p.Admin = args[i+1]
		}
	}
	p.Cmd = exec.Command(bin, append([]string{"--config", cfg}, args...)...)
	p.Cmd.Env = append(os.Environ(), env...)
	out, err := p.Cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.Cmd.Stdout = p.Cmd.Stderr
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		p.done <- p.Cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("worker log:\n%s", tail(p.Logs(), 8000))
		}
	})
	return p
}

// Logs returns everything the process printed so far.
func (p *Proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// Get returns the body of an admin server path, or "" when it does not
// answer.
func (p *Proc) Get(path string) string {
	resp, err := http.Get("http://" + p.Admin + path)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) { _ = p.Cmd.Process.Signal(sig) }

// Exited reports whether the process has exited, and its error.
func (p *Proc) Exited() (bool, error) {
	select {
	case err := <-p.done:
		p.done <- err
		return true, err
	default:
		return false, nil
	}
}

// Wait waits up to d for the process to exit and returns its error; it
// fails the test when the process is still running then.
func (p *Proc) Wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(d):
		t.Fatalf("worker did not exit within %v; log:\n%s", d, tail(p.Logs(), 8000))
		return nil
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
