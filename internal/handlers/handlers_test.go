package handlers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

func TestTemplate(t *testing.T) {
	bad := []string{"https://x/{", "https://x/}", "https://x/{}", "https://x/{a b}", "ftp://x/{id}", "/relative/{id}", "https://x/{id}{"}
	for _, s := range bad {
		if _, err := ParseTemplate(s); err == nil {
			t.Errorf("ParseTemplate(%q) accepted", s)
		}
	}
	tpl, err := ParseTemplate("https://api.example.test/charges/{customer_id}/{n}?x={flag}")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tpl.Expand([]byte(`{"customer_id":"a/b c?","n":42,"flag":true}`))
	if err != nil || got != "https://api.example.test/charges/a%2Fb%20c%3F/42?x=true" {
		t.Fatalf("Expand = %q, %v", got, err)
	}
	for _, payload := range []string{`{"n":1,"flag":true}`, `{"customer_id":{"x":1},"n":1,"flag":true}`, `[1]`, `not json`,
		`{"customer_id":"..","n":1,"flag":true}`, `{"customer_id":".","n":1,"flag":true}`, `{"customer_id":"","n":1,"flag":true}`} {
		if _, err := tpl.Expand([]byte(payload)); !errors.Is(err, ErrPayload) {
			t.Errorf("Expand(%s): %v, want ErrPayload", payload, err)
		}
	}
	_, err = tpl.Expand([]byte(`{"n":1,"flag":true}`))
	if !strings.Contains(err.Error(), "{customer_id}") {
		t.Errorf("error does not name the missing placeholder: %v", err)
	}
}

func TestHTTPOutcomes(t *testing.T) {
	var gotBody, gotAuth, gotPath string
	status, retryAfter := 200, ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		gotBody, gotAuth, gotPath = string(b), r.Header.Get("Authorization"), r.URL.EscapedPath()
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte("detail"))
	}))
	defer srv.Close()
	tpl, _ := ParseTemplate(srv.URL + "/charges/{customer_id}")
	h := &HTTP{Method: "POST", URL: tpl, Headers: http.Header{"Authorization": {"Bearer s3cret"}}, Timeout: time.Second}
	task := asynq.NewTask("payments:charge", []byte(`{"customer_id":"c/1","amount":100}`))
	ctx := context.Background()

	if err := h.ProcessTask(ctx, task); err != nil {
		t.Fatalf("2xx: %v", err)
	}
	if gotBody != `{"customer_id":"c/1","amount":100}` || gotAuth != "Bearer s3cret" || gotPath != "/charges/c%2F1" {
		t.Fatalf("request: body %q auth %q path %q", gotBody, gotAuth, gotPath)
	}
	cases := []struct {
		status     int
		retryAfter string
		check      func(error) bool
	}{
		{429, "1", func(err error) bool {
			var b *BusyError
			return errors.As(err, &b) && b.RetryAfter == time.Second && b.Status == 429
		}},
		{503, "", func(err error) bool { var b *BusyError; return errors.As(err, &b) && b.RetryAfter == 0 }},
		{503, time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat), func(err error) bool {
			var b *BusyError
			return errors.As(err, &b) && b.RetryAfter > time.Second && b.RetryAfter <= 3*time.Second
		}},
		{404, "", func(err error) bool { return errors.Is(err, asynq.SkipRetry) && strings.Contains(err.Error(), "404") }},
		{500, "", func(err error) bool {
			var b *BusyError
			return err != nil && !errors.Is(err, asynq.SkipRetry) && !errors.As(err, &b)
		}},
	}
	for _, c := range cases {
		status, retryAfter = c.status, c.retryAfter
		if err := h.ProcessTask(ctx, task); !c.check(err) {
			t.Errorf("HTTP %d (Retry-After %q): %v", c.status, c.retryAfter, err)
		}
	}
	if err := h.ProcessTask(ctx, asynq.NewTask("payments:charge", []byte(`{"amount":1}`))); !errors.Is(err, asynq.SkipRetry) || !errors.Is(err, ErrPayload) {
		t.Errorf("missing placeholder: %v", err)
	}
	srv.Close()
	if err := h.ProcessTask(ctx, task); err == nil || errors.Is(err, asynq.SkipRetry) {
		t.Errorf("network error: %v, want a retryable error", err)
	}
}

// TestHTTPFollowsNoRedirect points the handler at a server that redirects
// to another one: the other server gets no request (so neither the API key
// nor the body), and the task fails without retry, naming the redirect but
// not its query.
func TestHTTPFollowsNoRedirect(t *testing.T) {
	var reached atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	defer other.Close()
	for _, code := range []int{301, 302, 303, 307, 308} {
		for _, target := range []string{other.URL + "/steal?token=abc", "/same-origin?token=abc"} {
			api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/same-origin" {
					reached.Add(1)
					return
				}
				http.Redirect(w, r, target, code)
			}))
			tpl, _ := ParseTemplate(api.URL + "/call/{n}")
			h := &HTTP{Method: "POST", URL: tpl, Headers: http.Header{"X-Api-Key": {"k3y"}}, Timeout: 5 * time.Second}
			err := h.ProcessTask(t.Context(), asynq.NewTask("api:call", []byte(`{"n":1}`)))
			api.Close()
			if !errors.Is(err, asynq.SkipRetry) || !strings.Contains(err.Error(), fmt.Sprintf("HTTP %d redirect", code)) || strings.Contains(err.Error(), "abc") {
				t.Errorf("redirect %d to %s: %v; want a failure without retry naming the redirect, without its query", code, target, err)
			}
		}
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("a redirect was followed %d times", n)
	}
}

func TestCheckHeader(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		ok          bool
	}{
		{"Authorization", "Bearer abc", true},
		{"X-Api-Key", "a\tb é", true},
		{"X-Odd!#$%&'*+-.^_`|~1", "", true},
		{"X Key", "s3cr3t", false},
		{"X-Key:", "s3cr3t", false},
		{"", "s3cr3t", false},
		{"X-Key\r\nX-Evil", "s3cr3t", false},
		{"X-Key", "s3cr3t\r\nX-Evil: 1", false},
		{"X-Key", "s3cr3t\n", false},
		{"X-Key", "s3cr3t\x00", false},
		{"X-Key", "s3cr3t\x7f", false},
		{"Ключ", "s3cr3t", false},
	} {
		err := CheckHeader(tc.name, tc.value)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrHeader) {
			t.Errorf("CheckHeader(%q, %q) = %v, want ok %v", tc.name, tc.value, err, tc.ok)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("CheckHeader's error quotes the value: %v", err)
		}
	}
}

func TestExpandEnvReportsMissing(t *testing.T) {
	env := map[string]string{"TOKEN": "abc"}
	got, missing := ExpandEnv("Bearer ${TOKEN} ${NOPE}", func(k string) string { return env[k] })
	if got != "Bearer abc " || len(missing) != 1 || missing[0] != "NOPE" {
		t.Fatalf("got %q, missing %v", got, missing)
	}
}

func TestCommand(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	task := asynq.NewTask("report:build", []byte(`{"a":"$(rm -rf /)"}`))
	ok := &Command{Argv: []string{"sh", "-c", `cat > "$1"`, "sh", out}}
	if err := ok.ProcessTask(context.Background(), task); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); string(b) != `{"a":"$(rm -rf /)"}` {
		t.Fatalf("stdin was %q", b)
	}
	fail := &Command{Argv: []string{"sh", "-c", "echo first >&2; echo boom >&2; exit 3"}}
	err := fail.ProcessTask(context.Background(), task)
	if err == nil || !strings.Contains(err.Error(), "exited with 3") || !strings.Contains(err.Error(), "boom") || errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("failing command: %v", err)
	}
	// A timeout kills the whole process group, grandchildren included.
	pidFile := filepath.Join(dir, "pid")
	slow := &Command{Argv: []string{"sh", "-c", `sleep 30 & echo $! > "$1"; wait`, "sh", pidFile}, Timeout: 300 * time.Millisecond}
	start := time.Now()
	if err := slow.ProcessTask(context.Background(), task); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("timed-out command: %v", err)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Fatalf("timeout took %v", el)
	}
	b, _ := os.ReadFile(pidFile)
	var pid int
	for _, c := range strings.TrimSpace(string(b)) {
		pid = pid*10 + int(c-'0')
	}
	deadline := time.Now().Add(3 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d survived the timeout", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	missing := &Command{Argv: []string{filepath.Join(dir, "no-such-program")}}
	if err := missing.ProcessTask(context.Background(), task); !errors.Is(err, asynq.SkipRetry) {
		t.Fatalf("missing program: %v", err)
	}
}

func TestSleep(t *testing.T) {
	ctx := context.Background()
	start := time.Now()
	if err := (Sleep{}).ProcessTask(ctx, asynq.NewTask("demo:sleep", []byte(`{"ms":50}`))); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Fatalf("slept %v", el)
	}
	for _, p := range []string{`{"ms":-1}`, `{"ms":"x"}`, `[`} {
		if err := (Sleep{}).ProcessTask(ctx, asynq.NewTask("demo:sleep", []byte(p))); !errors.Is(err, asynq.SkipRetry) {
			t.Errorf("payload %s: %v", p, err)
		}
	}
	if err := (Sleep{}).ProcessTask(ctx, asynq.NewTask("demo:sleep", []byte(`{"ms":1,"fail":true}`))); err == nil {
		t.Error("fail:true did not fail")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := (Sleep{}).ProcessTask(cctx, asynq.NewTask("demo:sleep", []byte(`{"ms":10000}`))); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
