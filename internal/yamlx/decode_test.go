package yamlx

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

type inner struct {
	Timeout time.Duration     `yaml:"timeout"`
	Headers map[string]string `yaml:"headers"`
}

type doc struct {
	Name   string           `yaml:"name"`
	Count  int              `yaml:"count"`
	On     bool             `yaml:"on"`
	Items  []inner          `yaml:"items"`
	Queues map[string]int   `yaml:"queues"`
	Sub    *inner           `yaml:"sub"`
	Custom section          `yaml:"custom"`
	Skip   string           `yaml:"-"`
	Nested map[string]inner `yaml:"nested"`
}

// section decodes itself, as worker.Config does: with Decode on its own
// receiver, then a check whose error names a field relative to it.
type section struct {
	Limit int `yaml:"limit"`
}

func (s *section) UnmarshalYAML(n *yaml.Node) error {
	return Check(n, "", s, func() error {
		if s.Limit < 0 {
			return &FieldError{Field: "limit", Err: errors.New("must not be negative")}
		}
		return nil
	})
}

// tree is a list of lists, as deep as the document makes it.
type tree []tree

func decode(t *testing.T, src string) (doc, error) {
	t.Helper()
	n, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("Parse(%q): %v", src, err)
	}
	var d doc
	return d, Decode(n, "", &d)
}

// fieldErrors returns "field@line: message" for every error in err, and
// fails the test for one that is not a *FieldError.
func fieldErrors(t *testing.T, err error) []string {
	t.Helper()
	var out []string
	for _, e := range Split(err) {
		fe, ok := e.(*FieldError)
		if !ok {
			t.Fatalf("%v (%T) is not a *FieldError", e, e)
		}
		out = append(out, fmt.Sprintf("%s@%d: %v", fe.Field, fe.Line, fe.Err))
	}
	return out
}

func TestDecodeNamesFieldAndLineOfEveryProblem(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "name: a\nbogus: 1\n", "bogus@2: unknown key"},
		{"unknown key in a list item", "name: a\nitems:\n  - timeout: 1s\n    nope: x\n", "items[0].nope@4: unknown key"},
		{"not an integer", "count: many\n", `count@1: must be an integer, got "many"`},
		{"not a bool", "on: maybe\n", `on@1: must be true or false, got "maybe"`},
		{"not a duration", "items:\n  - timeout: 5 parsecs\n", `items[0].timeout@2: must be a duration such as "5s" or "250ms", got "5 parsecs"`},
		{"a list for a single value", "name: [a]\n", "name@1: must be a single value, not a list or a mapping"},
		{"a mapping for a list", "items: {timeout: 1s}\n", "items@1: must be a list, such as [a, b]"},
		{"a list for a mapping", "sub: [1]\n", "sub@1: must be a mapping of keys to values"},
		{"map value of the wrong type", "queues:\n  a: 1\n  b: x\n", `queues.b@3: must be an integer, got "x"`},
		{"unknown key in a map's struct value", "nested:\n  n1:\n    timeout: 1s\n    bad: 2\n", "nested.n1.bad@4: unknown key"},
		{"a tagged-out field is unknown", "skip: x\n", "skip@1: unknown key"},
		{"the document is not a mapping", "- a\n", "@1: must be a mapping of keys to values"},
		{"duplicate key", "name: a\ncount: 1\nname: b\n", "name@3: duplicate key: also set at line 1"},
		{"duplicate key in a nested mapping", "sub:\n  timeout: 1s\n  timeout: 2s\n", "sub.timeout@3: duplicate key: also set at line 2"},
		{"duplicate key in a map", "queues: {a: 1, a: 2}\n", "queues.a@1: duplicate key: also set at line 1"},
		{"duplicate key in a list item", "items:\n  - timeout: 1s\n    headers: {}\n    timeout: 2s\n", "items[0].timeout@4: duplicate key: also set at line 2"},
		{"own unmarshaler's decode error", "custom:\n  limit: lots\n", `custom.limit@2: must be an integer, got "lots"`},
		{"own unmarshaler's check", "custom:\n  limit: -1\n", "custom.limit@2: must not be negative"},
		{"own unmarshaler's unknown key", "custom:\n  limits: 1\n", "custom.limits@2: unknown key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := decode(t, c.yaml)
			got := fieldErrors(t, err)
			if len(got) != 1 || got[0] != c.want {
				t.Fatalf("errors = %q, want exactly %q", got, c.want)
			}
		})
	}
}

func TestDecodeFillsEveryKindOfField(t *testing.T) {
	d, err := decode(t, `
name: a
count: 2
on: true
items:
  - timeout: 250ms
    headers: {A: b}
  - timeout: 0
queues: {default: 1, critical: 6}
sub: {timeout: 1m}
custom: {limit: 3}
nested: {x: {timeout: 2s}}
`)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "a" || d.Count != 2 || !d.On || len(d.Items) != 2 || d.Items[0].Timeout != 250*time.Millisecond ||
		d.Items[0].Headers["A"] != "b" || d.Items[1].Timeout != 0 || d.Queues["critical"] != 6 || d.Sub == nil ||
		d.Sub.Timeout != time.Minute || d.Custom.Limit != 3 || d.Nested["x"].Timeout != 2*time.Second {
		t.Fatalf("decoded %+v", d)
	}
}

func TestDecodeKeepsGoodFieldsAndReportsEveryBadOne(t *testing.T) {
	d, err := decode(t, "name: a\ncount: many\nbogus: 1\nitems:\n  - timeout: soon\n")
	got := fieldErrors(t, err)
	want := []string{`count@2: must be an integer, got "many"`, "bogus@3: unknown key", `items[0].timeout@5: must be a duration such as "5s" or "250ms", got "soon"`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d.Name != "a" {
		t.Fatalf("the good field was not decoded: %+v", d)
	}
}

func TestDecodeFollowsAliasesAndMerges(t *testing.T) {
	d, err := decode(t, `
items:
  - &one {timeout: 1s}
  - *one
sub:
  <<: {timeout: 9s, headers: {M: n}}
  timeout: 2s
`)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Items) != 2 || d.Items[1].Timeout != time.Second || d.Sub.Timeout != 2*time.Second || d.Sub.Headers["M"] != "n" {
		t.Fatalf("decoded %+v, sub %+v", d, d.Sub)
	}
	// A key that a merge sets and the mapping sets again is an override,
	// not a duplicate.
	if _, err := decode(t, "sub:\n  <<: [{timeout: 1s}, {timeout: 3s}]\n"); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeStopsOnAliasesThatExplode(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 10; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d, *a%[3]d]\n", i, i, i-1)
	}
	b.WriteString("items: *a9\n")
	n, err := Parse([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var m struct {
		Items [][][][][][][][][][]string `yaml:"items"`
	}
	err = Decode(n, "", &m)
	if err == nil || !strings.Contains(err.Error(), "expands to more than") {
		t.Fatalf("10^10 values decoded without an error: %.200v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v", d)
	}
	self, err := Parse([]byte("a: &x [*x]\n"))
	if err != nil {
		t.Fatal(err)
	}
	var loop map[string]tree
	if err := Decode(self, "", &loop); err == nil {
		t.Fatal("a list that contains itself decoded without an error")
	}
	selfMerge, err := Parse([]byte("sub: &x {timeout: 1s, <<: *x}\n"))
	if err != nil {
		t.Skipf("yaml refuses a mapping that merges itself: %v", err)
	}
	var d doc
	if err := Decode(selfMerge, "", &d); err == nil {
		t.Fatal("a mapping that merges itself decoded without an error")
	}
}

func TestDecodePrefixesPath(t *testing.T) {
	n, _ := Parse([]byte("name: a\n"))
	err := Decode(n, "sect", &struct{}{})
	if got := fieldErrors(t, err); len(got) != 1 || got[0] != "sect.name@1: unknown key" {
		t.Fatalf("errors = %q", got)
	}
}

func TestParseRefusesASecondDocument(t *testing.T) {
	for _, src := range []string{"a: 1\n---\nb: 2\n", "---\na: 1\n---\n\n[1]\n"} {
		_, err := Parse([]byte(src))
		if !errors.Is(err, ErrMultipleDocuments) || !strings.Contains(err.Error(), "line") {
			t.Errorf("Parse(%q) = %v, want ErrMultipleDocuments with the line", src, err)
		}
	}
	for _, src := range []string{"", "# only a comment\n", "---\na: 1\n", "a: 1\n---\n", "a: 1\n...\n"} {
		if _, err := Parse([]byte(src)); err != nil {
			t.Errorf("Parse(%q) = %v, want no error", src, err)
		}
	}
	if n, err := Parse([]byte("a: [\n")); err == nil || n != nil {
		t.Errorf("a syntax error: %v", err)
	}
}

func TestLocateFindsTheLineOfAFieldOrItsParent(t *testing.T) {
	n, err := Parse([]byte("worker:\n  queues:\n    a: 1\nhandlers:\n  - type: x\n  - type: y\n    http:\n      url: u\n"))
	if err != nil {
		t.Fatal(err)
	}
	errs := errors.Join(
		&FieldError{Field: "worker.queues.a", Err: errors.New("e1")},
		&FieldError{Field: "handlers[1].http.url", Err: errors.New("e2")},
		&FieldError{Field: "handlers[1].http.method", Err: errors.New("e3")}, // absent: its parent's line
		&FieldError{Field: "handlers[0]", Err: errors.New("e4")},
		&FieldError{Field: "nowhere", Err: errors.New("e5")},
		&FieldError{Field: "worker", Line: 99, Err: errors.New("e6")},
		errors.New("plain"),
	)
	got := Split(Locate(n, "file", errs))
	want := []string{"file.worker.queues.a (line 3): e1", "file.handlers[1].http.url (line 8): e2", "file.handlers[1].http.method (line 7): e3",
		"file.handlers[0] (line 5): e4", "file.nowhere: e5", "file.worker (line 99): e6", "plain"}
	if len(got) != len(want) {
		t.Fatalf("got %q", got)
	}
	for i := range want {
		if got[i].Error() != want[i] {
			t.Errorf("error %d = %q, want %q", i, got[i], want[i])
		}
	}
	if Locate(n, "x", nil) != nil {
		t.Fatal("Locate(nil) is not nil")
	}
}

func TestCheckDropsValidationErrorsOfFieldsThatFailedToDecode(t *testing.T) {
	n, _ := Parse([]byte("limit: many\n"))
	var s section
	err := Check(n, "s", &s, func() error {
		return errors.Join(
			&FieldError{Field: "limit", Err: errors.New("must be at least 1")},
			&FieldError{Field: "other", Err: errors.New("is required")},
		)
	})
	got := fieldErrors(t, err)
	if len(got) != 2 || got[0] != `s.limit@1: must be an integer, got "many"` || got[1] != "s.other@0: is required" {
		t.Fatalf("errors = %q", got)
	}
}
