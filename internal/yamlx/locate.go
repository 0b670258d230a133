package yamlx

import (
	"cmp"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Check decodes n into out with [Decode], then calls validate (when not nil)
// on the result, and returns every problem, joined and in the order of their
// lines: the decoding errors, and validate's errors placed with [Locate]. A
// validation error about a field that already failed to decode is left out,
// since it only repeats it (a limit of "many" would also be "below 1").
func Check(n *yaml.Node, path string, out any, validate func() error) error {
	errs := Split(Decode(n, path, out))
	if validate != nil {
		errs = append(errs, validation(n, path, validate(), errs)...)
	}
	slices.SortStableFunc(errs, func(a, b error) int { return cmp.Compare(lineKey(a), lineKey(b)) })
	return errors.Join(errs...)
}

// lineKey orders errors by line, those without one last.
func lineKey(err error) int {
	if fe, ok := err.(*FieldError); ok && fe.Line > 0 {
		return fe.Line
	}
	return math.MaxInt
}

// validation places the errors of validate with [Locate], leaving out those
// about a field that is among the decoding errors.
func validation(n *yaml.Node, path string, validateErr error, decodeErrs []error) []error {
	var errs []error
	failed := map[string]bool{}
	for _, err := range decodeErrs {
		if fe, ok := err.(*FieldError); ok {
			failed[fe.Field] = true
		}
	}
	for _, err := range Split(Locate(n, path, validateErr)) {
		if fe, ok := err.(*FieldError); ok && failed[fe.Field] {
			continue
		}
		errs = append(errs, err)
	}
	return errs
}

// Locate places the errors of a value decoded from n: each [*FieldError]
// in err (a field relative to n, such as "rules[1].limit") gets path
// prefixed and, when its Line is 0, the line where n sets that field, or
// else the line of the nearest enclosing field that n sets. Other errors are
// kept as they are. It returns nil for nil and never changes err's errors.
func Locate(n *yaml.Node, path string, err error) error {
	var out []error
	for _, e := range Split(err) {
		fe, ok := e.(*FieldError)
		if !ok {
			out = append(out, e)
			continue
		}
		line := fe.Line
		if line == 0 {
			line = lineOf(n, fe.Field)
		}
		out = append(out, &FieldError{Field: Join(path, fe.Field), Line: line, Err: fe.Err})
	}
	return errors.Join(out...)
}

// lineOf finds a field path such as "handlers[1].http.url" in n: the line of
// its key (or list item), or of the nearest enclosing one found; 0 when n
// sets none of it.
func lineOf(n *yaml.Node, field string) int {
	line := 0
	if n != nil && field == "" {
		return n.Line
	}
	for _, step := range steps(field) {
		if n == nil {
			break
		}
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		var next *yaml.Node
		switch {
		case step.isIndex && n.Kind == yaml.SequenceNode && step.index >= 0 && step.index < len(n.Content):
			next = n.Content[step.index]
			line = next.Line
		case !step.isIndex && n.Kind == yaml.MappingNode:
			d := &decoder{}
			for _, e := range d.entries(n, "") {
				if e.key.Value == step.key {
					next, line = e.value, e.key.Line
					break
				}
			}
		}
		n = next
	}
	return line
}

// step is one part of a field path: a key, or a list index.
type step struct {
	key     string
	index   int
	isIndex bool
}

// steps splits "a.b[1][2].c" into a, b, [1], [2], c.
func steps(field string) []step {
	var out []step
	for part := range strings.SplitSeq(field, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key != "" {
			out = append(out, step{key: key})
		}
		for rest != "" {
			idx, after, _ := strings.Cut(rest, "]")
			i, err := strconv.Atoi(idx)
			if err != nil {
				i = -1 // matches nothing
			}
			out = append(out, step{index: i, isIndex: true})
			_, rest, _ = strings.Cut(after, "[")
		}
	}
	return out
}
