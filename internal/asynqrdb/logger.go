package asynqrdb

import (
	"fmt"
	stdlog "log"
	"os"
	"strings"

	"github.com/hibiken/asynq"
)

// quietLogger passes every line to its base logger but the warning asynq
// v0.26's processor logs before its follow-up for a task that has no
// retries left ("Retry exhausted for task id=…"), when that follow-up is
// one the Client drops: the task was parked, not exhausted.
type quietLogger struct {
	asynq.Logger
	client *Client
}

// Logger returns base (asynq's default logger when base is nil) without the
// lines that would misreport the tasks c parks.
func (c *Client) Logger(base asynq.Logger) asynq.Logger {
	if base == nil {
		base = defaultLogger()
	}
	return quietLogger{Logger: base, client: c}
}

const exhausted = "Retry exhausted for task id="

func (l quietLogger) Warn(args ...any) {
	if id, ok := strings.CutPrefix(fmt.Sprint(args...), exhausted); ok && l.client.dropping(id) {
		return
	}
	l.Logger.Warn(args...)
}

// dropping reports whether the follow-up of task id is to be dropped.
func (c *Client) dropping(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.drops[id]
	return ok
}

// stdLogger is asynq v0.26's default logger (internal/log): standard log
// lines to stderr, prefixed with the pid and the level.
type stdLogger struct{ *stdlog.Logger }

func defaultLogger() asynq.Logger {
	prefix := fmt.Sprintf("asynq: pid=%d ", os.Getpid())
	return stdLogger{stdlog.New(os.Stderr, prefix, stdlog.Ldate|stdlog.Ltime|stdlog.Lmicroseconds|stdlog.LUTC)}
}

func (l stdLogger) Debug(args ...any) { l.Print(append([]any{"DEBUG: "}, args...)...) }
func (l stdLogger) Info(args ...any)  { l.Print(append([]any{"INFO: "}, args...)...) }
func (l stdLogger) Warn(args ...any)  { l.Print(append([]any{"WARN: "}, args...)...) }
func (l stdLogger) Error(args ...any) { l.Print(append([]any{"ERROR: "}, args...)...) }
func (l stdLogger) Fatal(args ...any) {
	l.Print(append([]any{"FATAL: "}, args...)...)
	os.Exit(1)
}
