package worker

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestPartitionIsOnePerValueHoweverSpelled gives each group of payloads
// that hold one JSON value in several spellings: they must share one
// partition, and no two groups may share one.
func TestPartitionIsOnePerValueHoweverSpelled(t *testing.T) {
	groups := []struct {
		want      string
		spellings []string // the tenant field's JSON text; "" leaves it out
	}{
		{"1", []string{`1`, `1.0`, `1e0`, `10e-1`, `1E0`, `0.1e1`, `100e-2`, `1.000e+0`}},
		{"0", []string{`0`, `-0`, `0.0`, `0e10`, `-0.0e-5`}},
		{"-2.5", []string{`-2.5`, `-25e-1`, `-0.25E1`}},
		{"100000000000000000000", []string{`1e20`, `100000000000000000000`}},
		{"1e21", []string{`1e21`, `1000000000000000000000`, `10e20`}},
		{"0.000001", []string{`1e-6`, `0.000001`}},
		{"1e-7", []string{`1e-7`, `0.0000001`}},
		{"9007199254740993", []string{`9007199254740993`}},
		{"9007199254740992", []string{`9007199254740992`}},
		{"1e99999999999999999999", []string{`1e99999999999999999999`, `10e99999999999999999998`}},
		{"acme", []string{`"acme"`, `"\u0061cme"`}},
		{`""`, []string{`""`}},
		{"true", []string{`true`}},
		{`{"a":[1,2],"b":"x"}`, []string{`{"b":"x","a":[1,2]}`, `{ "a" : [ 1.0, 2e0 ], "b" : "\u0078" }`, `{"a":[9],"b":"x","a":[1,2]}`}},
		{`[{"k":"<&>"}]`, []string{`[{"k":"<&>"}]`, `[{"k":"\u003c\u0026\u003e"}]`}},
		{"", []string{"", `null`}},
	}
	owner := map[string]int{}
	for gi, g := range groups {
		for _, sp := range g.spellings {
			payload := `{"tenant":` + sp + `,"other":1}`
			if sp == "" {
				payload = `{"other":1}`
			}
			got := partitionOf([]byte(payload), "tenant")
			if got != g.want {
				t.Errorf("partition of %s = %q, want %q", payload, got, g.want)
			}
			if prev, ok := owner[got]; ok && prev != gi {
				t.Errorf("%s shares partition %q with group %d", payload, got, prev)
			}
			owner[got] = gi
		}
	}
	for _, p := range []string{`not json`, `[1]`, `"tenant"`, ``} {
		if got := partitionOf([]byte(p), "tenant"); got != "" {
			t.Errorf("partition of a payload that is not an object (%q) = %q, want the no-value partition", p, got)
		}
	}
}

// TestPartitionIsBoundedAndValidUTF8 checks the length bound and the
// UTF-8 of every partition: a long value keeps a readable start and a hash
// of the whole, so that two long values with one start stay apart.
func TestPartitionIsBoundedAndValidUTF8(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes: the cut must fall between runes
	a := partitionOf([]byte(`{"t":"`+long+`a"}`), "t")
	b := partitionOf([]byte(`{"t":"`+long+`b"}`), "t")
	for _, p := range []string{a, b} {
		if len(p) > MaxPartitionBytes || !utf8.ValidString(p) || !strings.HasPrefix(p, strings.Repeat("é", 32)+"…") {
			t.Fatalf("long partition %q (%d bytes): want ≤ %d valid UTF-8 bytes starting with the value", p, len(p), MaxPartitionBytes)
		}
	}
	if a == b {
		t.Fatalf("two long values share partition %q", a)
	}
	exact := strings.Repeat("x", MaxPartitionBytes)
	if got := partitionOf([]byte(`{"t":"`+exact+`"}`), "t"); got != exact {
		t.Fatalf("a value of exactly %d bytes became %q", MaxPartitionBytes, got)
	}
	for _, payload := range []string{
		"{\"t\":{\"k\":\"\xff\xfe\"}}",
		"{\"t\":[\"\xc3\x28\"]}",
		"{\"t\":{\"\xff\":1}}",
		"{\"t\":\"\xed\xa0\x80\"}",
	} {
		if got := partitionOf([]byte(payload), "t"); !utf8.ValidString(got) || got == "" {
			t.Errorf("partition of %q = %q: want a valid UTF-8 partition", payload, got)
		}
	}
}
