package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ErrPayload is wrapped by errors about a payload that cannot fill a URL
// template. Such a task fails without retry.
var ErrPayload = errors.New("handlers: payload does not fit")

// Template is a URL with {field} placeholders filled from a task's JSON
// payload, each value URL-path-escaped.
type Template struct {
	raw    string
	parts  []string // literal, field, literal, field, ..., literal
	fields []string
}

// ParseTemplate checks s: every "{" must close with "}" around a non-empty
// field name made of letters, digits, '_' and '-'. With the placeholders
// filled by "x", s must be an absolute http or https URL.
func ParseTemplate(s string) (*Template, error) {
	t := &Template{raw: s}
	rest := s
	for {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			t.parts = append(t.parts, rest)
			break
		}
		if rest[i] == '}' {
			return nil, fmt.Errorf("unmatched '}' in %q", s)
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("unclosed '{' in %q", s)
		}
		name := rest[i+1 : i+j]
		if !validField(name) {
			return nil, fmt.Errorf("placeholder {%s} in %q: want a field name of letters, digits, '_' or '-'", name, s)
		}
		t.parts = append(t.parts, rest[:i], name)
		t.fields = append(t.fields, name)
		rest = rest[i+j+1:]
	}
	u, err := url.Parse(t.fill(func(string) string { return "x" }))
	if err != nil {
		return nil, fmt.Errorf("bad URL %q: %w", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("URL %q must be absolute http:// or https://", s)
	}
	return t, nil
}

func validField(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// Fields lists the payload fields the template needs.
func (t *Template) Fields() []string { return t.fields }

func (t *Template) fill(value func(string) string) string {
	var b strings.Builder
	for i, p := range t.parts {
		if i%2 == 1 {
			b.WriteString(value(p))
		} else {
			b.WriteString(p)
		}
	}
	return b.String()
}

// Expand fills the placeholders from payload, a JSON object whose fields
// are strings, numbers or booleans. It returns an [ErrPayload] error naming
// the first field that is missing or not a scalar.
func (t *Template) Expand(payload []byte) (string, error) {
	if len(t.fields) == 0 {
		return t.raw, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil {
		return "", fmt.Errorf("%w: URL %q needs a JSON object payload: %v", ErrPayload, t.raw, err)
	}
	values := map[string]string{}
	for _, f := range t.fields {
		raw, ok := obj[f]
		if !ok {
			return "", fmt.Errorf("%w: URL placeholder {%s} is missing from the payload", ErrPayload, f)
		}
		v, err := scalar(raw)
		if err != nil {
			return "", fmt.Errorf("%w: URL placeholder {%s}: %v", ErrPayload, f, err)
		}
		values[f] = url.PathEscape(v)
	}
	return t.fill(func(f string) string { return values[f] }), nil
}

func scalar(raw json.RawMessage) (string, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	}
	return "", fmt.Errorf("must be a string, number or boolean, got %s", string(raw))
}
