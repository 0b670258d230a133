package readmetest

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMiddlewareSnippetCompiles builds the README's complete asynq program,
// so that it cannot drift from the worker package's API.
func TestMiddlewareSnippetCompiles(t *testing.T) {
	s := readme(t)
	i := strings.Index(s, "\n## The asynq middleware\n")
	if i < 0 {
		t.Fatal("README has no asynq middleware section")
	}
	m := regexp.MustCompile("(?s)```go\n(.*?)```").FindStringSubmatch(s[i:])
	if m == nil || !strings.HasPrefix(m[1], "package main") {
		t.Fatal("the middleware section has no complete Go program")
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("testdata", "snippet-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(m[1]), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("go", "build", "-o", os.DevNull, "./"+dir).CombinedOutput(); err != nil {
		t.Fatalf("the README's program does not build: %v\n%s", err, out)
	}
}
