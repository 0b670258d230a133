package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/slotguard/slotguard/internal/asynqtest"
	"github.com/slotguard/slotguard/internal/redistest"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "enqueue-test")
	if err != nil {
		panic(err)
	}
	binDir = dir
	for _, pkg := range []string{".", "../worker"} {
		out := filepath.Join(dir, filepath.Base(pkg))
		if pkg == "." {
			out = filepath.Join(dir, "enqueue")
		}
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, b)
			os.Exit(1)
		}
	}
	redistest.Main(m, func() {
		asynqtest.Release()
		os.RemoveAll(dir)
	})
}

type result struct {
	stdout, stderr string
	code           int
}

// enqueue runs the binary against the test's database.
func enqueue(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	url := fmt.Sprintf("redis://%s/%d", redistest.Addr(), asynqtest.DB(t))
	cmd := exec.Command(filepath.Join(binDir, "enqueue"), args...)
	cmd.Env = append(os.Environ(), "REDIS_URL="+url)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func inspector(t *testing.T, queue string) *asynq.Inspector {
	t.Helper()
	asynqtest.CleanQueue(t, queue)
	t.Cleanup(func() { asynqtest.CleanQueue(t, queue) })
	return asynq.NewInspectorFromRedisClient(asynqtest.Client(t))
}

func queueSize(t *testing.T, in *asynq.Inspector, queue string) int {
	t.Helper()
	info, err := in.GetQueueInfo(queue)
	if err != nil {
		return 0
	}
	return info.Size
}

func TestEnqueueOneTaskKeepsItsOptions(t *testing.T) {
	in := inspector(t, "eq-one")
	r := enqueue(t, "", "--type", "payments:charge", "--payload", `{"customer_id": "c1", "amount": 100}`,
		"--queue", "eq-one", "--max-retry", "3", "--timeout", "45s", "--retention", "1h", "--json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var out taskJSON
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
		t.Fatalf("--json printed %q: %v", r.stdout, err)
	}
	info, err := in.GetTaskInfo("eq-one", out.ID)
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != "payments:charge" || string(info.Payload) != `{"customer_id":"c1","amount":100}` ||
		info.MaxRetry != 3 || info.Timeout != 45*time.Second || info.Retention != time.Hour || info.State != asynq.TaskStatePending {
		t.Fatalf("task as stored: %+v", info)
	}
	if out.Queue != "eq-one" || out.State != "pending" {
		t.Fatalf("--json: %+v", out)
	}

	r = enqueue(t, "", "--type", "later", "--queue", "eq-one", "--in", "1h", "--task-id", "fixed-id", "--unique", "10m")
	if r.code != 0 || strings.TrimSpace(r.stdout) != "fixed-id" {
		t.Fatalf("exit %d, stdout %q: %s", r.code, r.stdout, r.stderr)
	}
	info, err = in.GetTaskInfo("eq-one", "fixed-id")
	if err != nil || info.State != asynq.TaskStateScheduled || time.Until(info.NextProcessAt) < 59*time.Minute {
		t.Fatalf("scheduled task: %+v, %v", info, err)
	}
	// The same ID again is a conflict: reported, exit 1, nothing added.
	r = enqueue(t, "", "--type", "later", "--queue", "eq-one", "--task-id", "fixed-id")
	if r.code != 1 || !strings.Contains(r.stderr, "not enqueued") {
		t.Fatalf("task-ID conflict: exit %d, %s", r.code, r.stderr)
	}
	r = enqueue(t, `{"ms": 5}`, "--type", "from:stdin", "--queue", "eq-one", "--payload", "-")
	if r.code != 0 {
		t.Fatalf("payload from stdin: exit %d, %s", r.code, r.stderr)
	}
	info, _ = in.GetTaskInfo("eq-one", strings.TrimSpace(r.stdout))
	if info == nil || string(info.Payload) != `{"ms":5}` {
		t.Fatalf("payload from stdin: %+v", info)
	}
}

func TestBulkEnqueueFromFileAndCount(t *testing.T) {
	in := inspector(t, "eq-bulk")
	file := filepath.Join(t.TempDir(), "tasks.jsonl")
	lines := `{"type":"a","payload":{"n":1},"queue":"eq-bulk"}

{"type":"b","payload":{"n":2},"queue":"eq-bulk","max_retry":0,"in":"1h"}
{"type":"c","queue":"eq-bulk","unique":"1h"}
{"type":"c","queue":"eq-bulk","unique":"1h"}
`
	if err := os.WriteFile(file, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	r := enqueue(t, "", "--file", file)
	if r.code != 0 || !strings.Contains(r.stderr, "enqueued 3, duplicates 1, failed 0") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if n := queueSize(t, in, "eq-bulk"); n != 3 {
		t.Fatalf("queue holds %d tasks, want 3", n)
	}
	r = enqueue(t, lines, "--file", "-")
	if r.code != 0 || !strings.Contains(r.stderr, "enqueued 2, duplicates 2, failed 0") {
		t.Fatalf("stdin: exit %d: %s", r.code, r.stderr)
	}
	r = enqueue(t, "", "--type", "demo:sleep", "--payload", `{"ms":1}`, "--queue", "eq-bulk", "--count", "500")
	if r.code != 0 || !strings.Contains(r.stderr, "enqueued 500, duplicates 0, failed 0") {
		t.Fatalf("--count: exit %d: %s", r.code, r.stderr)
	}
	if strings.Contains(r.stderr, "ETA") {
		t.Fatal("progress bar drawn although stdout is not a terminal")
	}
	if n := queueSize(t, in, "eq-bulk"); n != 505 {
		t.Fatalf("queue holds %d tasks, want 505", n)
	}
}

func TestBadInputIsRefusedAndEnqueuesNothing(t *testing.T) {
	in := inspector(t, "eq-bad")
	file := filepath.Join(t.TempDir(), "bad.jsonl")
	os.WriteFile(file, []byte(`{"type":"ok","queue":"eq-bad"}
{"type":"ok","queue":"eq-bad","in":"soon"}
not json
{"type":"","queue":"eq-bad"}
{"type":"ok","queue":"eq-bad","colour":"red"}
{"type":"ok","queue":"eq-bad"}
`), 0o644)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"bad JSON payload", []string{"--type", "t", "--queue", "eq-bad", "--payload", `{"a":`}, "not valid JSON"},
		{"unknown flag", []string{"--type", "t", "--colour", "red"}, "flag provided but not defined"},
		{"bad duration", []string{"--type", "t", "--queue", "eq-bad", "--in", "5 parsecs"}, "positive duration"},
		{"in and at", []string{"--type", "t", "--queue", "eq-bad", "--in", "1m", "--at", "2030-01-01T00:00:00Z"}, "exclude each other"},
		{"bad time", []string{"--type", "t", "--queue", "eq-bad", "--at", "tomorrow"}, "RFC 3339"},
		{"empty type", []string{"--type", " ", "--queue", "eq-bad"}, "type is required"},
		{"no type", []string{"--queue", "eq-bad"}, "type is required"},
		{"zero count", []string{"--type", "t", "--queue", "eq-bad", "--count", "0"}, "--count"},
		{"malformed lines", []string{"--file", file}, "line 2: in must be a positive duration"},
		{"bad limit", []string{"limits", "set", "x", "0"}, "from 1 to 1073741824"},
		{"limits typo", []string{"limits", "sett", "x", "1"}, "unknown limits subcommand"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := enqueue(t, "", c.args...)
			if r.code != 2 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and %q", r.code, r.stderr, c.want)
			}
		})
	}
	r := enqueue(t, "", "--file", file)
	for _, want := range []string{"line 3:", "line 4: type is required", "line 5:", "nothing was enqueued"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("malformed file: stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	if n := queueSize(t, in, "eq-bad"); n != 0 {
		t.Fatalf("bad input enqueued %d tasks", n)
	}
	r = enqueue(t, "", "--file", file, "--keep-going")
	if r.code != 0 || !strings.Contains(r.stderr, "enqueued 2, duplicates 0, failed 0") {
		t.Fatalf("--keep-going: exit %d: %s", r.code, r.stderr)
	}
	if n := queueSize(t, in, "eq-bad"); n != 2 {
		t.Fatalf("--keep-going enqueued %d tasks, want the 2 valid ones", n)
	}
}

func TestUnreachableRedisIsARuntimeError(t *testing.T) {
	port := redistest.FreePort(t)
	cmd := exec.Command(filepath.Join(binDir, "enqueue"), "--redis-url", fmt.Sprintf("redis://user:hunter2@127.0.0.1:%d", port), "--type", "t")
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v: %s", err, out)
	}
	if strings.Contains(string(out), "hunter2") {
		t.Fatalf("password in the output: %s", out)
	}
}
