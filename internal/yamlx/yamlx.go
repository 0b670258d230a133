// Package yamlx is the one strict YAML decoder of every slotguard
// configuration file, on top of go.yaml.in/yaml/v3. Unknown keys, duplicate
// keys, values of the wrong type and a second document are errors, and every
// error names the field and its line as a [*FieldError].
package yamlx

import (
	"errors"
	"fmt"
	"strings"
)

// ErrMultipleDocuments is wrapped by [Parse]'s error for a file that holds
// more than one YAML document.
var ErrMultipleDocuments = errors.New("yamlx: more than one YAML document")

// FieldError is one problem at a field of a YAML document.
type FieldError struct {
	Field string // such as "handlers[1].http.url"; "" for the whole document
	Line  int    // 0 when unknown
	Err   error
}

func (e *FieldError) Error() string {
	field := e.Field
	if field == "" {
		field = "top level"
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s (line %d): %v", field, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", field, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// Split returns the errors joined in err (by [errors.Join], at any depth),
// or err itself when it joins none; nil for nil.
func Split(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, Split(e)...)
	}
	return out
}

// Join names the field key (a mapping key, or an index such as "[2]") under
// path.
func Join(path, key string) string {
	if path == "" {
		return key
	}
	if strings.HasPrefix(key, "[") {
		return path + key
	}
	return path + "." + key
}
