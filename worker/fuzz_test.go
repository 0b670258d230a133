package worker

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParseConfig checks that ParseConfig never panics, that a config it
// accepts is valid, and that every error it returns names a field.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"rules:\n  - name: api\n    task_types: [\"api:*\"]\n    limit: 5\n",
		"acquire_timeout: 2s\nlease: 10s\nprefix: sg\nrules:\n  - {name: a, queues: [q], partition_by: tenant, limit: 1, max_waiting: 3}\n",
		"rules:\n  - name: x\n    limit: 0\n",
		"sync_replicas: 1\nsync_timeout: 50ms\n",
		"lease: -1s\nprefix: \"{bad}\"\n",
		"rules: [{name: a/b, task_types: [\"\"], limit: -1}, {name: a/b}]",
		"unknown: 1",
		"- not a map",
		"rules: {name: x}",
		"acquire_timeout: 99999999999999999999h",
		"rules:\n  - &a {name: a, task_types: [t], limit: 1}\n  - *a\n",
		"\xff\xfe",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseConfig(data)
		if err == nil {
			if verr := c.Validate(); verr != nil {
				t.Fatalf("ParseConfig accepted %q, but Validate says %v", data, verr)
			}
			return
		}
		if !strings.HasPrefix(err.Error(), "worker: ") {
			t.Fatalf("error without the package prefix: %v", err)
		}
	})
}

// FuzzPartitionOf checks the partition taken from a payload: it never
// panics, it is a string field's value as is, and it is "" for a payload
// that is not a JSON object holding the field.
func FuzzPartitionOf(f *testing.F) {
	for _, s := range [][2]string{
		{`{"tenant":"acme"}`, "tenant"},
		{`{"tenant":42}`, "tenant"},
		{`{"tenant":{"b":1, "a": [1, 2]}}`, "tenant"},
		{`{"tenant":null}`, "tenant"},
		{`{"tenant":"a\u0000b{}*"}`, "tenant"},
		{`{"t":"x","t":"y"}`, "t"},
		{`[1,2]`, "0"},
		{`not json`, "tenant"},
		{"{\"k\":\"\xff\"}", "k"},
		{`{"":"empty field"}`, ""},
	} {
		f.Add([]byte(s[0]), s[1])
	}
	f.Fuzz(func(t *testing.T, payload []byte, field string) {
		got := partitionOf(payload, field)
		var obj map[string]json.RawMessage
		if json.Unmarshal(payload, &obj) != nil {
			if got != "" {
				t.Fatalf("partitionOf(%q, %q) = %q for a payload that is not an object", payload, field, got)
			}
			return
		}
		raw, ok := obj[field]
		if !ok && got != "" {
			t.Fatalf("partitionOf(%q, %q) = %q for a missing field", payload, field, got)
		}
		var s string
		if ok && json.Unmarshal(raw, &s) == nil && got != s {
			t.Fatalf("partitionOf(%q, %q) = %q, want the string %q", payload, field, got, s)
		}
		if field == "" {
			return // no partition_by: the rule is not partitioned
		}
		r := compileRule(Rule{Name: "r", TaskTypes: []string{"*"}, PartitionBy: field, Limit: 1})
		ns := needs([]*rule{r}, "t", "q", payload)
		if len(ns) != 1 || ns[0].sem != "r/"+got {
			t.Fatalf("needs = %+v, want one semaphore r/%s", ns, got)
		}
	})
}

// TestHostilePayloadsForPartitions feeds the partition lookup payloads an
// attacker or a broken producer could enqueue: each must give an answer
// quickly, without a panic or a stack overflow.
func TestHostilePayloadsForPartitions(t *testing.T) {
	big := `{"tenant":"` + strings.Repeat("a", 8<<20) + `"}`
	for _, tc := range []struct {
		name    string
		payload string
		want    string
	}{
		{"nested 100000 deep", strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000), ""},
		{"nested 100000 deep inside the field", `{"tenant":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`, ""},
		{"nested 5000 deep inside the field", `{"tenant":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, strings.Repeat("[", 5000) + strings.Repeat("]", 5000)},
		{"8 MiB value", big, strings.Repeat("a", 8<<20)},
		{"invalid UTF-8", "{\"tenant\":\"\xff\xfe\"}", "\ufffd\ufffd"},
		{"braces and stars", `{"tenant":"{a}*"}`, "{a}*"},
		{"unterminated", `{"tenant":"a`, ""},
		{"duplicate field, last wins", `{"tenant":"a","tenant":"b"}`, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			got := partitionOf([]byte(tc.payload), "tenant")
			if got != tc.want {
				t.Fatalf("partitionOf = %.40q (%d bytes), want %.40q", got, len(got), tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
	// A partition is a semaphore name: braces and stars stay inside its
	// hash tag (see limiter's FuzzNameAndHolder).
	if err := (Config{Rules: []Rule{{Name: "{x}", TaskTypes: []string{"*"}, Limit: 1}}}).Validate(); err != nil {
		t.Fatalf("a rule name with braces: %v", err)
	}
	var ce *ConfigError
	if err := (Config{Prefix: "a{b}"}).Validate(); !errors.As(err, &ce) || ce.Field != "prefix" {
		t.Fatalf("a prefix with braces: %v, want a prefix error", err)
	}
}
