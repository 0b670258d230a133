package worker

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParseConfig checks that ParseConfig never panics, that a config it
// accepts is valid, and that every error it returns names a field.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"rules:\n  - name: api\n    task_types: [\"api:*\"]\n    limit: 5\n",
		"park_after: 2s\nlease: 10s\nprefix: sg\nrules:\n  - {name: a, queues: [q], partition_by: tenant, limit: 1, max_waiting: 3}\n",
		"rules:\n  - name: x\n    limit: 0\n",
		"sync_replicas: 1\nsync_timeout: 50ms\n",
		"lease: -1s\nprefix: \"{bad}\"\n",
		"rules: [{name: a/b, task_types: [\"\"], limit: -1}, {name: a/b}]",
		"unknown: 1",
		"- not a map",
		"rules: {name: x}",
		"park_after: 99999999999999999999h",
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
// panics; it is valid UTF-8 of at most MaxPartitionBytes; a short string
// field is its partition as is; a payload that is not a JSON object holding
// the field is in the no-value partition ""; the same value spelled another
// way (white space, key order, number spellings) is in the same partition;
// and a partition that is not a string's is canonical JSON that maps to
// itself.
func FuzzPartitionOf(f *testing.F) {
	for _, s := range [][2]string{
		{`{"tenant":"acme"}`, "tenant"},
		{`{"tenant":42}`, "tenant"},
		{`{"tenant":10e-1}`, "tenant"},
		{`{"tenant":-0.0}`, "tenant"},
		{`{"tenant":1e999999999999}`, "tenant"},
		{`{"tenant":{"b":1, "a": [1, 2.50]}}`, "tenant"},
		{`{"tenant":null}`, "tenant"},
		{`{"tenant":""}`, "tenant"},
		{`{"tenant":"a\u0000b{}*"}`, "tenant"},
		{`{"t":"x","t":"y"}`, "t"},
		{`[1,2]`, "0"},
		{`not json`, "tenant"},
		{"{\"k\":\"\xff\"}", "k"},
		{"{\"k\":{\"\xff\":\"\xfe\"}}", "k"},
		{`{"k":"` + strings.Repeat("ü", 100) + `"}`, "k"},
		{`{"":"empty field"}`, ""},
	} {
		f.Add([]byte(s[0]), s[1])
	}
	f.Fuzz(func(t *testing.T, payload []byte, field string) {
		got := partitionOf(payload, field)
		if !utf8.ValidString(got) || len(got) > MaxPartitionBytes {
			t.Fatalf("partitionOf(%q, %q) = %q: not valid UTF-8 of at most %d bytes", payload, field, got, MaxPartitionBytes)
		}
		var obj map[string]json.RawMessage
		if json.Unmarshal(payload, &obj) != nil {
			if got != "" {
				t.Fatalf("partitionOf(%q, %q) = %q for a payload that is not an object", payload, field, got)
			}
			return
		}
		raw, ok := obj[field]
		if (!ok || string(raw) == "null") && got != "" {
			t.Fatalf("partitionOf(%q, %q) = %q for a missing or null field", payload, field, got)
		}
		if !ok {
			return
		}
		var s string
		isString := json.Unmarshal(raw, &s) == nil
		if isString && s != "" && len(s) <= MaxPartitionBytes && got != s {
			t.Fatalf("partitionOf(%q, %q) = %q, want the string %q", payload, field, got, s)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		other, err := json.MarshalIndent(map[string]any{field: respell(v)}, " ", "\t")
		if err != nil {
			t.Fatal(err)
		}
		if again := partitionOf(other, field); again != got {
			t.Fatalf("the value of %q spelled as %s is partition %q, not %q", payload, other, again, got)
		}
		if !isString && got != "" && !strings.Contains(got, "…") {
			if again := partitionOf([]byte(`{"f":`+got+`}`), "f"); again != got {
				t.Fatalf("partition %q of %q is not canonical JSON: it maps to %q", got, payload, again)
			}
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

// respell returns v with every number spelled another way, for
// FuzzPartitionOf: 42 becomes 42.0e0, -1E5 becomes -1.0e5.
func respell(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = respell(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = respell(e)
		}
		return out
	case json.Number:
		m, e, hasExp := strings.Cut(strings.ToLower(string(x)), "e")
		if !strings.Contains(m, ".") {
			m += "."
		}
		if !hasExp {
			e = "0"
		}
		return json.Number(m + "0e" + e)
	}
	return v
}

// TestHostilePayloadsForPartitions feeds the partition lookup payloads an
// attacker or a broken producer could enqueue: each must give an answer
// quickly, without a panic or a stack overflow.
func TestHostilePayloadsForPartitions(t *testing.T) {
	big := `{"tenant":"` + strings.Repeat("a", 8<<20) + `"}`
	deep := strings.Repeat("[", 5000) + strings.Repeat("]", 5000)
	for _, tc := range []struct {
		name    string
		payload string
		want    string // "…" ends a prefix: the partition is that prefix and a hash
	}{
		{"nested 100000 deep", strings.Repeat(`{"a":`, 100000) + "1" + strings.Repeat("}", 100000), ""},
		{"nested 100000 deep inside the field", `{"tenant":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`, ""},
		{"nested 5000 deep inside the field", `{"tenant":` + deep + `}`, deep[:64] + "…"},
		{"8 MiB value", big, strings.Repeat("a", 64) + "…"},
		{"invalid UTF-8", "{\"tenant\":\"\xff\xfe\"}", "\ufffd\ufffd"},
		{"invalid UTF-8 inside an object", "{\"tenant\":{\"k\":\"\xff\"}}", "{\"k\":\"\ufffd\"}"},
		{"braces and stars", `{"tenant":"{a}*"}`, "{a}*"},
		{"unterminated", `{"tenant":"a`, ""},
		{"duplicate field, last wins", `{"tenant":"a","tenant":"b"}`, "b"},
		{"a number spelled four ways", `{"tenant":10e-1}`, "1"},
		{"the empty string", `{"tenant":""}`, `""`},
		{"null", `{"tenant":null}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			got := partitionOf([]byte(tc.payload), "tenant")
			prefix, hashed := strings.CutSuffix(tc.want, "…")
			if hashed && (!strings.HasPrefix(got, prefix+"…") || len(got) != len(prefix)+len("…")+32) ||
				!hashed && got != tc.want {
				t.Fatalf("partitionOf = %.80q (%d bytes), want %.80q", got, len(got), tc.want)
			}
			if !utf8.ValidString(got) || len(got) > MaxPartitionBytes {
				t.Fatalf("partition %q is not valid UTF-8 of at most %d bytes", got, MaxPartitionBytes)
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
	// A rule name is a metric label: Prometheus refuses invalid UTF-8.
	if err := (Config{Rules: []Rule{{Name: "a\xff", TaskTypes: []string{"*"}, Limit: 1}}}).Validate(); !errors.As(err, &ce) || ce.Field != "rules[0].name" {
		t.Fatalf("a rule name of invalid UTF-8: %v, want a rules[0].name error", err)
	}
}
