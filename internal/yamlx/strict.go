// Package yamlx decodes YAML strictly with go.yaml.in/yaml/v3: unknown keys
// are errors, and every error names the field and its line.
package yamlx

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// FieldError is one problem at a field of a YAML document.
type FieldError struct {
	Field string // such as "handlers[1].http.url"
	Line  int    // 0 when unknown
	Err   error
}

func (e *FieldError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s (line %d): %v", e.Field, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Field, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// Decode decodes n into out (a pointer) and reports, joined, every unknown
// key and every value of the wrong type, each as a [*FieldError] under path.
// The known fields are decoded even when there are errors. Types with their
// own UnmarshalYAML are decoded by it, and their errors are kept as they are.
func Decode(n *yaml.Node, path string, out any) error {
	w := walker{lines: map[int]string{}}
	errs := w.unknown(n, reflect.TypeOf(out).Elem(), path)
	if err := n.Decode(out); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, e := range te.Errors {
				errs = append(errs, w.typeError(path, e))
			}
		} else {
			errs = append(errs, err) // from a type's own UnmarshalYAML
		}
	}
	return errors.Join(errs...)
}

var unmarshaler = reflect.TypeFor[yaml.Unmarshaler]()

// walker remembers which field each line holds, to name the field in yaml's
// type errors, which give only the line.
type walker struct{ lines map[int]string }

// unknown walks n beside t and reports keys that t has no field for.
func (w walker) unknown(n *yaml.Node, t reflect.Type, path string) []error {
	if n == nil {
		return nil
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshaler) || t == reflect.TypeFor[time.Duration]() {
		return nil
	}
	var errs []error
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			w.lines[v.Line] = join(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				errs = append(errs, &FieldError{Field: join(path, k.Value), Line: k.Line, Err: errors.New("unknown key")})
				continue
			}
			errs = append(errs, w.unknown(v, ft, join(path, k.Value))...)
		}
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			w.lines[item.Line] = fmt.Sprintf("%s[%d]", orRoot(path), i)
			errs = append(errs, w.unknown(item, t.Elem(), fmt.Sprintf("%s[%d]", orRoot(path), i))...)
		}
	case t.Kind() == reflect.Map && n.Kind == yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			w.lines[n.Content[i+1].Line] = join(path, n.Content[i].Value)
			errs = append(errs, w.unknown(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))...)
		}
	}
	return errs
}

func (w walker) typeError(path, msg string) error {
	// yaml.v3 says "line 7: cannot unmarshal !!str `x` into int".
	var line int
	if _, err := fmt.Sscanf(msg, "line %d:", &line); err == nil {
		_, msg, _ = strings.Cut(msg, ": ")
	}
	field := orRoot(path)
	if f, ok := w.lines[line]; ok {
		field = f
	}
	return &FieldError{Field: field, Line: line, Err: errors.New(msg)}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func orRoot(path string) string {
	if path == "" {
		return "(document)"
	}
	return path
}

// Cut removes key from mapping n and returns its value, or nil. n is changed
// in place.
func Cut(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			v := n.Content[i+1]
			n.Content = append(n.Content[:i:i], n.Content[i+2:]...)
			return v
		}
	}
	return nil
}

// Root parses data and returns its top-level node, or nil for an empty
// document.
func Root(data []byte) (*yaml.Node, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}
