package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hibiken/asynq"
)

// TestCommandHandlerGetsAMinimalEnvironment runs a command handler built
// from the configuration in a process whose environment holds REDIS_URL
// with a password: the command sees PATH, the variables its env list
// allows and the task's SLOTGUARD_* variables, and nothing else.
func TestCommandHandlerGetsAMinimalEnvironment(t *testing.T) {
	t.Setenv("REDIS_URL", "redis://:s3cret-pw@127.0.0.1:6379/0")
	t.Setenv("SLOTGUARD_ADMIN_TOKEN_FOR_TEST", "t0ken")
	t.Setenv("AWS_REGION", "eu-west-1")
	out := filepath.Join(t.TempDir(), "env")
	hs, err := buildHandlers([]handlerConfig{{Type: "report:build", Command: []string{"sh", "-c", `env > "$1"`, "sh", out}, Env: []string{"AWS_REGION", "NOT_SET_ANYWHERE"}}},
		slog.New(slog.DiscardHandler), os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	if err := hs.ProcessTask(context.Background(), asynq.NewTask("report:build", nil)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for line := range strings.Lines(string(b)) {
		name, _, _ := strings.Cut(line, "=")
		names = append(names, name)
	}
	for _, want := range []string{"PATH", "AWS_REGION", "SLOTGUARD_TASK_TYPE", "SLOTGUARD_TASK_ID", "SLOTGUARD_QUEUE"} {
		if !slices.Contains(names, want) {
			t.Errorf("the command's environment lacks %s: %v", want, names)
		}
	}
	for _, secret := range []string{"s3cret-pw", "t0ken"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("the command's environment holds the worker's secret %q:\n%s", secret, b)
		}
	}
}
