package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/slotguard/slotguard/examples/internal/exampletest"
	"github.com/slotguard/slotguard/internal/asynqtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	asynqtest.Release()
	os.Exit(code)
}

func runExample(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if err := run(t.Context(), args, exampletest.Getenv(t), &out, &errOut); err != nil {
		t.Fatalf("run %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, out.String(), errOut.String())
	}
	t.Logf("run %v:\n%s", args, out.String())
	return out.String()
}

func TestGuardKeepsTheAPIUnderItsLimit(t *testing.T) {
	const tasks, limit = 120, 4
	out := runExample(t, "--tasks=120", "--limit=4", "--servers=3", "--concurrency=5", "--work=10ms")
	if got := exampletest.Int(t, out, "tasks done:"); got != tasks {
		t.Errorf("tasks done = %d, want %d", got, tasks)
	}
	if got := exampletest.Int(t, out, "succeeded"); got != tasks {
		t.Errorf("succeeded = %d, want %d", got, tasks)
	}
	if got := exampletest.Int(t, out, "API 429 responses:"); got != 0 {
		t.Errorf("429 responses = %d, want 0", got)
	}
	if got := exampletest.Int(t, out, "handlers calling at once:"); got < 1 || got > limit {
		t.Errorf("handlers calling at once = %d, want 1..%d", got, limit)
	}
	if got := exampletest.Int(t, out, "API peak concurrency:"); got < 1 || got > limit {
		t.Errorf("API peak concurrency = %d, want 1..%d", got, limit)
	}
}

func TestWithoutTheGuardTheAPIAnswers429(t *testing.T) {
	const tasks, limit = 120, 4
	out := runExample(t, "--guard=false", "--tasks=120", "--limit=4", "--servers=3", "--concurrency=5", "--work=10ms")
	if got := exampletest.Int(t, out, "tasks done:"); got != tasks {
		t.Errorf("tasks done = %d, want %d", got, tasks)
	}
	rejected := exampletest.Int(t, out, "API 429 responses:")
	if rejected == 0 {
		t.Error("no 429 responses without the guard")
	}
	if got := exampletest.Int(t, out, "failed with 429:"); got != rejected {
		t.Errorf("tasks failed with 429 = %d, API counted %d", got, rejected)
	}
	if got := exampletest.Int(t, out, "handlers calling at once:"); got <= limit {
		t.Errorf("handlers calling at once = %d, want above %d", got, limit)
	}
	if got := exampletest.Int(t, out, "API peak concurrency:"); got <= limit {
		t.Errorf("API peak concurrency = %d, want above %d", got, limit)
	}
}
