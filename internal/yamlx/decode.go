package yamlx

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds the nodes one Decode visits, and maxDepth how deeply
// they nest, so that aliases that expand exponentially or refer to
// themselves end in an error, not a hang.
const (
	maxNodes = 1 << 20
	maxDepth = 1000
)

// Decode decodes n into out, a non-nil pointer, strictly, by out's yaml
// struct tags. It reports, joined, each as a [*FieldError] whose field is
// under path:
//   - a key that the struct has no field for ("unknown key"),
//   - a key given twice in one mapping, naming both lines,
//   - a value of the wrong shape or type (a list where a mapping belongs,
//     "many" for an integer, "soon" for a [time.Duration]).
//
// It decodes every field it can even when others fail. A value whose type
// implements [yaml.Unmarshaler] is decoded by its UnmarshalYAML, and the
// [*FieldError]s it returns get the value's path prefixed; out itself is
// always decoded by its tags, so that an UnmarshalYAML can call Decode on
// its own receiver. Durations are Go duration strings ("250ms", "5s") or 0.
// A null value leaves the field as it was. Decode panics if out is not a
// non-nil pointer.
func Decode(n *yaml.Node, path string, out any) error {
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		panic(fmt.Sprintf("yamlx: Decode needs a non-nil pointer, got %T", out))
	}
	d := &decoder{}
	if n != nil {
		d.value(n, path, v.Elem(), true)
	}
	return errors.Join(d.errs...)
}

type decoder struct {
	errs  []error
	nodes int
	depth int
	over  bool // maxNodes or maxDepth was passed
}

// visit counts one more node, and reports false, with one error for the
// whole document, once there were more than maxNodes or they nest deeper
// than maxDepth.
func (d *decoder) visit(n *yaml.Node, path string) bool {
	if d.over {
		return false
	}
	if d.nodes++; d.nodes > maxNodes || d.depth > maxDepth {
		d.over = true
		d.fail(path, n.Line, "the document expands to more than %d values or %d levels (aliases of aliases?)", maxNodes, maxDepth)
	}
	return !d.over
}

func (d *decoder) fail(field string, line int, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Field: field, Line: line, Err: fmt.Errorf(format, args...)})
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
)

func (d *decoder) value(n *yaml.Node, path string, v reflect.Value, top bool) {
	if !d.visit(n, path) {
		return
	}
	d.depth++
	defer func() { d.depth-- }()
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if isNull(n) {
		return
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(n, path, v.Elem(), false)
		return
	}
	if !top && reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		d.unmarshal(v.Addr().Interface().(yaml.Unmarshaler), n, path)
		return
	}
	switch {
	case v.Type() == durationType:
		d.duration(n, path, v)
	case v.Kind() == reflect.Struct:
		d.structure(n, path, v)
	case v.Kind() == reflect.Map:
		d.mapping(n, path, v)
	case v.Kind() == reflect.Slice:
		d.sequence(n, path, v)
	case v.Kind() == reflect.Interface:
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.errs = append(d.errs, typeError(path, n.Line, err.Error()))
		}
	default:
		d.scalar(n, path, v)
	}
}

// unmarshal runs a type's own UnmarshalYAML and places its errors under
// path.
func (d *decoder) unmarshal(u yaml.Unmarshaler, n *yaml.Node, path string) {
	for _, err := range Split(u.UnmarshalYAML(n)) {
		var fe *FieldError
		var te *yaml.TypeError
		switch {
		case errors.As(err, &fe):
			line := fe.Line
			if line == 0 {
				line = n.Line
			}
			d.errs = append(d.errs, &FieldError{Field: Join(path, fe.Field), Line: line, Err: fe.Err})
		case errors.As(err, &te):
			for _, msg := range te.Errors {
				d.errs = append(d.errs, typeError(path, n.Line, msg))
			}
		default:
			d.errs = append(d.errs, &FieldError{Field: path, Line: n.Line, Err: err})
		}
	}
}

// typeError turns yaml's "line 7: cannot unmarshal ..." into a FieldError.
func typeError(path string, line int, msg string) error {
	var l int
	if _, err := fmt.Sscanf(msg, "line %d:", &l); err == nil {
		line = l
		_, msg, _ = strings.Cut(msg, ": ")
	}
	return &FieldError{Field: path, Line: line, Err: errors.New(msg)}
}

func (d *decoder) structure(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n.Line, "must be a mapping of keys to values")
		return
	}
	fields := fieldsOf(v.Type())
	for _, e := range d.entries(n, path) {
		field := Join(path, e.key.Value)
		index, ok := fields[e.key.Value]
		if !ok {
			d.fail(field, e.key.Line, "unknown key")
			continue
		}
		d.value(e.value, field, v.FieldByIndex(index), false)
	}
}

// fieldsOf maps each YAML key of struct type t to its field, as yaml.v3
// names them: the tag's name, else the field's name in lower case; ",inline"
// structs add their own fields.
func fieldsOf(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || (f.PkgPath != "" && !f.Anonymous) {
			continue
		}
		if strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct {
			for k, idx := range fieldsOf(f.Type) {
				out[k] = append([]int{i}, idx...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = []int{i}
	}
	return out
}

func (d *decoder) mapping(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.fail(path, n.Line, "must be a mapping of keys to values")
		return
	}
	if v.IsNil() {
		v.Set(reflect.MakeMap(v.Type()))
	}
	for _, e := range d.entries(n, path) {
		field := Join(path, e.key.Value)
		key := reflect.New(v.Type().Key()).Elem()
		d.scalar(e.key, field, key)
		val := reflect.New(v.Type().Elem()).Elem()
		d.value(e.value, field, val, false)
		v.SetMapIndex(key, val)
	}
}

func (d *decoder) sequence(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.fail(path, n.Line, "must be a list, such as [a, b]")
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.value(item, Join(path, fmt.Sprintf("[%d]", i)), s.Index(i), false)
	}
	v.Set(s)
}

func (d *decoder) scalar(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n.Line, "must be a single value, not a list or a mapping")
		return
	}
	if v.Kind() == reflect.String {
		v.SetString(n.Value)
		return
	}
	if err := n.Decode(v.Addr().Interface()); err != nil {
		switch v.Kind() {
		case reflect.Bool:
			d.fail(path, n.Line, "must be true or false, got %q", n.Value)
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			d.fail(path, n.Line, "must be an integer, got %q", n.Value)
		case reflect.Float32, reflect.Float64:
			d.fail(path, n.Line, "must be a number, got %q", n.Value)
		default:
			d.errs = append(d.errs, typeError(path, n.Line, err.Error()))
		}
	}
}

func (d *decoder) duration(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.fail(path, n.Line, "must be a single value, not a list or a mapping")
		return
	}
	if n.Value == "0" {
		v.SetInt(0)
		return
	}
	t, err := time.ParseDuration(n.Value)
	if err != nil {
		d.fail(path, n.Line, "must be a duration such as \"5s\" or \"250ms\", got %q", n.Value)
		return
	}
	v.SetInt(int64(t))
}
