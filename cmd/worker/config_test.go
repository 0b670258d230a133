package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func check(t *testing.T, yaml string, env map[string]string) (string, error) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "w.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	err := run(context.Background(), []string{"--check", "--config", cfg}, func(k string) string { return env[k] }, &out, &errb)
	return out.String() + errb.String(), err
}

func TestCheckReportsEveryBadConfigWithFieldAndLine(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"unknown key", "worker:\n  concurency: 5\n", []string{"worker.concurency (line 2): unknown key"}},
		{"unknown section", "limitz: {}\n", []string{"limitz (line 1): unknown key"}},
		{"limit 0", "limits:\n  rules:\n    - name: a\n      task_types: [x]\n      limit: 0\n", []string{"limits.rules[0].limit (line 5): must be at least 1"}},
		{"bad duration", "limits:\n  park_after: 5 parsecs\n", []string{"limits.park_after (line 2): must be a duration"}},
		{"unknown key in limits", "limits:\n  leese: 1s\n", []string{"limits.leese (line 2): unknown key"}},
		{"duplicate top-level key", "worker: {}\nlimits: {}\nworker: {}\n", []string{"worker (line 3): duplicate key: also set at line 1"}},
		{"duplicate limits section", "limits:\n  lease: 1s\nlimits:\n  lease: 2s\n", []string{"limits (line 3): duplicate key: also set at line 1"}},
		{"duplicate key in limits", "limits:\n  lease: 1s\n  lease: 2s\n", []string{"limits.lease (line 3): duplicate key: also set at line 2"}},
		{"duplicate key in a rule", "limits:\n  rules:\n    - name: a\n      task_types: [x]\n      name: b\n      limit: 1\n", []string{"limits.rules[0].name (line 5): duplicate key: also set at line 3"}},
		{"duplicate header", "handlers:\n  - type: x\n    http:\n      url: https://a.test/\n      headers:\n        A: b\n        A: c\n", []string{"handlers[0].http.headers.A (line 7): duplicate key: also set at line 6"}},
		{"two documents", "worker: {}\n---\nlimits: {}\n", []string{"more than one YAML document", "line 2"}},
		{"bad worker duration", "worker:\n  shutdown_timeout: soon\n", []string{"worker.shutdown_timeout (line 2)"}},
		{"duplicate rule", "limits:\n  rules:\n    - {name: a, task_types: [x], limit: 1}\n    - {name: a, task_types: [y], limit: 1}\n", []string{"rules[1].name", "line 4", "duplicates"}},
		{"handler with no kind", "handlers:\n  - type: x\n", []string{"handlers[0] (line 2): needs one of http, command or sleep"}},
		{"handler with two kinds", "handlers:\n  - type: x\n    sleep: {}\n    command: [/bin/true]\n", []string{"handlers[0] (line 2): has more than one"}},
		{"handler without type", "handlers:\n  - sleep: {}\n", []string{"handlers[0].type", "is required"}},
		{"duplicate handler", "handlers:\n  - {type: x, sleep: {}}\n  - {type: x, sleep: {}}\n", []string{"handlers[1].type (line 3)", "duplicates"}},
		{"unclosed placeholder", "handlers:\n  - type: x\n    http:\n      url: \"https://api.test/{customer_id\"\n", []string{"handlers[0].http.url (line 4)", "unclosed"}},
		{"empty placeholder", "handlers:\n  - type: x\n    http:\n      url: \"https://api.test/{}\"\n", []string{"handlers[0].http.url (line 4)", "placeholder"}},
		{"relative url", "handlers:\n  - type: x\n    http:\n      url: /charges\n", []string{"handlers[0].http.url", "absolute"}},
		{"bad method", "handlers:\n  - type: x\n    http:\n      url: https://a.test/\n      method: FETCH\n", []string{"handlers[0].http.method (line 5)"}},
		{"missing env secret", "handlers:\n  - type: x\n    http:\n      url: https://a.test/\n      headers: {Authorization: \"Bearer ${NOPE_TOKEN}\"}\n", []string{"handlers[0].http.headers.Authorization", "NOPE_TOKEN is not set"}},
		{"empty command", "handlers:\n  - type: x\n    command: []\n", []string{"handlers[0].command (line 3)"}},
		{"bad redis url", "redis:\n  url: \"redis://u:hunter2@h:notaport\"\n", []string{"redis (line 1)", "redis.url"}},
		{"two redis modes", "redis:\n  url: redis://h:1\n  cluster: {addrs: [\"h:2\"]}\n", []string{"only one of"}},
		{"bad log level", "log:\n  level: loud\n", []string{"log.level (line 2)"}},
		{"bad admin addr", "admin:\n  addr: nowhere\n", []string{"admin.addr (line 2)"}},
		{"bad concurrency type", "worker:\n  concurrency: many\n", []string{"worker.concurrency (line 2)"}},
		{"bad queue priority", "worker:\n  queues: {default: 0}\n", []string{"worker.queues.default", "line 2"}},
		{"not yaml", "limits: [\n", []string{"yaml"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := check(t, c.yaml, nil)
			if err == nil {
				t.Fatalf("accepted:\n%s", c.yaml)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "hunter2") {
				t.Errorf("output leaks a password:\n%s", out)
			}
			if strings.Contains(c.name, "duplicate") && strings.Contains(out, "unknown key") {
				t.Errorf("a duplicate key is reported as unknown:\n%s", out)
			}
		})
	}
	out, err := check(t, "worker:\n  concurency: 5\nlimits:\n  rules:\n    - {name: a, task_types: [x], limit: 0}\n", nil)
	if err == nil || !strings.Contains(out, "concurency") {
		t.Fatalf("first of several errors missing: %s", out)
	}
}

func TestCheckListsErrorsInLineOrder(t *testing.T) {
	out, err := check(t, "handlers:\n  - type: x\nlimits:\n  lease: soon\nworker:\n  concurency: 5\n", nil)
	if err == nil {
		t.Fatal("accepted")
	}
	h, l, w := strings.Index(out, "handlers[0] (line 2)"), strings.Index(out, "limits.lease (line 4)"), strings.Index(out, "worker.concurency (line 6)")
	if h < 0 || l < 0 || w < 0 || !(h < l && l < w) {
		t.Fatalf("want the errors of lines 2, 4 and 6 in that order:\n%s", out)
	}
}

func TestCheckNamesAFileItCannotRead(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	var out, errb bytes.Buffer
	err := run(t.Context(), []string{"--check", "--config", missing}, func(string) string { return "" }, &out, &errb)
	if err == nil || !strings.HasPrefix(errb.String(), missing+": no such file or directory\n") || !strings.Contains(err.Error(), missing) {
		t.Fatalf("error %v, stderr:\n%s\nwant the file's name before the reason", err, errb.String())
	}
}

func TestCheckAcceptsTheDocumentedExample(t *testing.T) {
	data, err := os.ReadFile("../../docs/worker.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := check(t, string(data), map[string]string{"PAYMENTS_TOKEN": "x"})
	if err != nil || !strings.Contains(out, "configuration is valid") {
		t.Fatalf("the documented example is rejected: %v\n%s", err, out)
	}
}

func TestPrecedenceFlagsOverEnvOverFile(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "w.yaml")
	os.WriteFile(cfg, []byte("redis:\n  url: redis://file:1/0\nworker:\n  concurrency: 7\nadmin:\n  addr: 127.0.0.1:1111\n"), 0o644)
	env := map[string]string{"REDIS_URL": "redis://env:2/0", "SLOTGUARD_CONCURRENCY": "8"}
	getenv := func(k string) string { return env[k] }
	load := func(args ...string) fileConfig {
		t.Helper()
		f, err := parseFlags(append([]string{"--config", cfg}, args...), getenv, &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		c, _, err := loadConfig(f, getenv)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := load()
	if c.Redis.URL != "redis://env:2/0" || c.Worker.Concurrency != 8 || c.Admin.Addr != "127.0.0.1:1111" {
		t.Fatalf("env over file: %+v", c)
	}
	c = load("--redis-url", "redis://flag:3/0", "--concurrency", "9", "--admin-addr", "127.0.0.1:2222")
	if c.Redis.URL != "redis://flag:3/0" || c.Worker.Concurrency != 9 || c.Admin.Addr != "127.0.0.1:2222" {
		t.Fatalf("flags over env: %+v", c)
	}
	delete(env, "REDIS_URL")
	delete(env, "SLOTGUARD_CONCURRENCY")
	c = load()
	if c.Redis.URL != "redis://file:1/0" || c.Worker.Concurrency != 7 {
		t.Fatalf("file: %+v", c)
	}
	os.WriteFile(cfg, []byte("{}\n"), 0o644)
	c = load()
	if c.Worker.Concurrency != defaultConcurrency || c.Admin.Addr != defaultAdminAddr || c.Worker.ShutdownTimeout != defaultShutdownTimeout || c.Worker.Queues["default"] != 1 {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestUsageErrors(t *testing.T) {
	var out, errb bytes.Buffer
	for _, args := range [][]string{{"--bogus"}, {"extra"}, {"--concurrency", "-1"}} {
		err := run(context.Background(), args, func(string) string { return "" }, &out, &errb)
		if err == nil || !isUsage(err) {
			t.Errorf("%v: %v, want a usage error", args, err)
		}
	}
	if err := run(context.Background(), []string{"--config", "/no/such/file.yaml"}, func(string) string { return "" }, &out, &errb); err == nil || isUsage(err) {
		t.Errorf("missing file: %v", err)
	}
}
