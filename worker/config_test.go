package worker

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/slotguard/slotguard/internal/yamlx"
)

func TestParseConfigReadsTheLimitsSection(t *testing.T) {
	c, err := ParseConfig([]byte(`
park_after: 50ms
park_recheck: 2m
acquire_sleep_delay: 100ms
lease: 30s
rules:
  - name: payments-api
    task_types: ["payments:*"]
    limit: 5
  - name: default-queue
    queues: ["default"]
    limit: 50
    max_waiting: 8
  - name: export-per-tenant
    task_types: ["export:run"]
    partition_by: tenant_id
    limit: 2
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.ParkAfter != 50*time.Millisecond || c.ParkRecheck != 2*time.Minute || c.AcquireSleepDelay != 100*time.Millisecond || c.Lease != 30*time.Second {
		t.Errorf("durations = %v %v %v %v", c.ParkAfter, c.ParkRecheck, c.AcquireSleepDelay, c.Lease)
	}
	if len(c.Rules) != 3 || c.Rules[2].PartitionBy != "tenant_id" || c.Rules[1].MaxWaiting != 8 || c.Rules[0].TaskTypes[0] != "payments:*" {
		t.Errorf("rules = %+v", c.Rules)
	}
}

func TestParseConfigErrorsNameFieldAndLine(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "park_after: 5ms\nbogus: 1\n", "worker: config: bogus (line 2): unknown key"},
		{"retired key", "lease: 10s\nacquire_timeout: 5s\n", "acquire_timeout (line 2): is retired: a task that finds no free slot waits parked in Redis"},
		{"park_recheck too short", "park_recheck: 10ms\n", "park_recheck (line 1): must be at least 1s"},
		{"bad duration", "lease: soon\n", "lease (line 1): must be a duration"},
		{"negative duration", "park_after: -1s\n", "park_after (line 1): must not be negative"},
		{"limit zero", "rules:\n  - name: a\n    queues: [q]\n    limit: 0\n", "rules[0].limit (line 4): must be at least 1"},
		{"limit above the bound", "rules:\n  - name: a\n    queues: [q]\n    limit: 9007199254740993\n", "rules[0].limit (line 4): must be at most 1073741824"},
		{"limit not a number", "rules:\n  - name: a\n    queues: [q]\n    limit: many\n", "rules[0].limit (line 4): must be an integer"},
		{"duplicate name", "rules:\n  - {name: a, queues: [q], limit: 1}\n  - {name: a, queues: [q], limit: 1}\n", "rules[1].name (line 3): duplicates rules[0].name"},
		{"no selector", "rules:\n  - name: a\n    limit: 1\n", "rules[0] (line 2): needs task_types or queues"},
		{"missing name", "rules:\n  - queues: [q]\n    limit: 1\n", "rules[0].name (line 2): is required"},
		{"unknown rule key", "rules:\n  - name: a\n    queues: [q]\n    limits: 1\n", "rules[0].limits (line 4): unknown key"},
		{"negative max_waiting", "rules:\n  - {name: a, queues: [q], limit: 1, max_waiting: -1}\n", "rules[0].max_waiting (line 2): must not be negative"},
		{"rules not a list", "rules: {name: a}\n", "rules (line 1): must be a list"},
		{"min above max", "requeue_min_delay: 2m\nrequeue_max_delay: 1m\n", "requeue_max_delay (line 2): must not be shorter"},
		{"duplicate key", "lease: 10s\nprefix: a\nlease: 20s\n", "lease (line 3): duplicate key: also set at line 1"},
		{"duplicate key in a rule", "rules:\n  - name: a\n    queues: [q]\n    limit: 1\n    limit: 2\n", "rules[0].limit (line 5): duplicate key: also set at line 4"},
		{"second document", "lease: 10s\n---\nlease: 20s\n", "worker: config: yamlx: more than one YAML document: the second starts at line 2"},
		{"not a mapping", "- a\n", "top level (line 1): must be a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) && !errors.Is(err, yamlx.ErrMultipleDocuments) {
				t.Fatalf("error %v is not a *ConfigError", err)
			}
		})
	}
}

func TestParseConfigReportsEveryErrorOnce(t *testing.T) {
	_, err := ParseConfig([]byte("lease: x\nrules:\n  - {name: a, limit: 0}\n  - {name: b, queues: [q], limit: many}\n"))
	for _, want := range []string{"lease (line 1)", "rules[0] (line 3): needs", "rules[0].limit (line 3)", "rules[1].limit (line 4): must be an integer"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error = %v, want it to contain %q", err, want)
		}
	}
	// A value that does not decode is not also reported as invalid.
	if strings.Contains(err.Error(), "rules[1].limit (line 4): must be at least 1") {
		t.Errorf("error = %v, reports rules[1].limit twice", err)
	}
}

func TestLoadConfigNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "limits.yaml")
	if err := os.WriteFile(path, []byte("rules:\n  - {name: a, queues: [q], limit: 0}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := LoadConfig(path)
	if err == nil || !strings.Contains(err.Error(), "worker: config "+path+": rules[0].limit (line 2)") {
		t.Fatalf("error = %v, want it to name the file, field and line", err)
	}
	if _, err := LoadConfig(path + ".missing"); err == nil || !strings.Contains(err.Error(), path+".missing") {
		t.Fatalf("missing file: %v", err)
	}
}

func TestConfigEmbedsInALargerDocument(t *testing.T) {
	var file struct {
		Worker struct {
			Concurrency int `yaml:"concurrency"`
		} `yaml:"worker"`
		Limits Config `yaml:"limits"`
	}
	err := yaml.Unmarshal([]byte("worker:\n  concurrency: 3\nlimits:\n  rules:\n    - {name: a, queues: [q], limit: 2}\n"), &file)
	if err != nil {
		t.Fatal(err)
	}
	if file.Limits.Rules[0].Limit != 2 {
		t.Fatalf("limits = %+v", file.Limits)
	}

	var doc yaml.Node
	if err := yaml.Unmarshal([]byte("limits:\n  rules:\n    - {name: a, queues: [q], limit: 0}\n"), &doc); err != nil {
		t.Fatal(err)
	}
	_, err = ParseConfigNode(doc.Content[0].Content[1], "limits")
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Field != "limits.rules[0].limit" || ce.Line != 3 || !strings.Contains(ce.Err.Error(), "at least 1") {
		t.Fatalf("error = %v, want a *ConfigError for limits.rules[0].limit at line 3", err)
	}
}
