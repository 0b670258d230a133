package handlers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hibiken/asynq"
)

// Command runs a program with the task's payload on stdin. The argv is run
// directly, never through a shell.
type Command struct {
	Argv    []string
	Timeout time.Duration
	// Env is the program's whole environment as KEY=VALUE pairs, besides
	// the task's SLOTGUARD_* variables: the worker's own environment (its
	// REDIS_URL, its secrets) is not inherited. See [CommandEnv].
	Env []string
}

// DefaultCommandEnv names the variables a command gets from the worker's
// environment when they are set, besides those its configuration allows:
// enough to find programs and to run in the right locale and time zone.
var DefaultCommandEnv = []string{"PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR"}

// CommandEnv returns the KEY=VALUE pairs of a command's environment: each
// variable of [DefaultCommandEnv] and of allow that getenv finds set (not
// empty), in that order, each once.
func CommandEnv(allow []string, getenv func(string) string) []string {
	var env []string
	seen := map[string]bool{}
	for _, k := range append(slices.Clone(DefaultCommandEnv), allow...) {
		if v := getenv(k); v != "" && !seen[k] {
			seen[k] = true
			env = append(env, k+"="+v)
		}
	}
	return env
}

// CheckEnvName reports whether name can name an environment variable:
// not empty, and without '=' or NUL.
func CheckEnvName(name string) error {
	if name == "" || strings.ContainsAny(name, "=\x00") {
		return fmt.Errorf("handlers: %q cannot name an environment variable", name)
	}
	return nil
}

// stderrTail is how much of stderr a failure's error quotes.
const stderrTail = 1024

// ProcessTask runs the command with [Command.Env] and SLOTGUARD_TASK_ID,
// SLOTGUARD_TASK_TYPE and SLOTGUARD_QUEUE as its environment. Exit 0 is success; any other exit
// is an error that asynq retries, quoting the tail of stderr. On timeout or
// cancellation the whole process group is killed.
func (c *Command) ProcessTask(ctx context.Context, t *asynq.Task) error {
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	id, _ := asynq.GetTaskID(ctx)
	queue, _ := asynq.GetQueueName(ctx)
	cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
	cmd.Stdin = bytes.NewReader(t.Payload())
	var stderr tailBuffer
	cmd.Stderr = &stderr
	cmd.Env = append(slices.Clone(c.Env),
		"SLOTGUARD_TASK_ID="+id, "SLOTGUARD_TASK_TYPE="+t.Type(), "SLOTGUARD_QUEUE="+queue)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("handlers: command %s killed: %w", c.Argv[0], ctx.Err())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("handlers: command %s exited with %d: %s", c.Argv[0], exit.ExitCode(), strings.TrimSpace(stderr.String()))
	}
	return fmt.Errorf("handlers: command %s: %w: %w", c.Argv[0], err, asynq.SkipRetry)
}

// tailBuffer keeps the last stderrTail bytes written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > stderrTail {
		t.b = t.b[len(t.b)-stderrTail:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.b) }
