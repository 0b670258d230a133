package yamlx

import (
	"errors"
	"strings"
	"testing"
	"time"
)

type inner struct {
	Timeout time.Duration     `yaml:"timeout"`
	Headers map[string]string `yaml:"headers"`
}

type doc struct {
	Name  string  `yaml:"name"`
	Count int     `yaml:"count"`
	Items []inner `yaml:"items"`
}

func TestDecodeNamesFieldAndLine(t *testing.T) {
	cases := []struct {
		yaml, field string
		line        int
	}{
		{"name: a\nbogus: 1\n", "bogus", 2},
		{"name: a\nitems:\n  - timeout: 1s\n    nope: x\n", "items[0].nope", 4},
		{"count: many\n", "count", 1},
		{"items:\n  - timeout: 5 parsecs\n", "items[0].timeout", 2},
	}
	for _, c := range cases {
		n, err := Root([]byte(c.yaml))
		if err != nil {
			t.Fatal(err)
		}
		var d doc
		err = Decode(n, "", &d)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field || fe.Line != c.line {
			t.Errorf("%q: got %v, want field %s line %d", c.yaml, err, c.field, c.line)
		}
	}
	n, _ := Root([]byte("name: a\ncount: 2\nitems:\n  - timeout: 250ms\n    headers: {A: b}\n"))
	var d doc
	if err := Decode(n, "", &d); err != nil || d.Count != 2 || d.Items[0].Timeout != 250*time.Millisecond || d.Items[0].Headers["A"] != "b" {
		t.Fatalf("valid document: %+v, %v", d, err)
	}
	if err := Decode(n, "sect", &struct{}{}); err == nil || !strings.Contains(err.Error(), "sect.name") {
		t.Fatalf("path prefix: %v", err)
	}
}
