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
// payload. A placeholder may stand only in the path, where its value is
// path-escaped, or in a query parameter's value, where it is query-escaped:
// a payload can never change the scheme, the host, the port, a query key or
// the fragment, add a query parameter, or make a "." or ".." path segment.
type Template struct {
	raw    string
	parts  []string // literal, field, literal, field, ..., literal
	fields []string
	query  []bool // query[i]: fields[i] is in the query, not the path
}

// ErrPlaceholderPlace is wrapped by [ParseTemplate]'s error for a
// placeholder outside the path and the query values.
var ErrPlaceholderPlace = errors.New("placeholders may fill only path segments and query values")

// ParseTemplate checks s: every "{" must close with "}" around a non-empty
// field name made of letters, digits, '_' and '-'; each placeholder must
// stand in the path or in a query parameter's value (after "name="), never
// in the scheme, user information, host, port, a query key or the fragment.
// With the placeholders filled by "x", s must be an absolute http or https
// URL.
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
	before := ""
	for i, f := range t.fields {
		before += t.parts[2*i]
		inQuery, err := placeOf(before)
		if err != nil && strings.Contains(s, "://") { // else: not absolute, said below
			return nil, fmt.Errorf("placeholder {%s} in %q: %w", f, s, err)
		}
		t.query = append(t.query, inQuery)
		before += "x"
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

// placeOf tells where a placeholder that follows the URL text before stands:
// in the query (true) or the path (false), or an [ErrPlaceholderPlace]
// error for anywhere else.
func placeOf(before string) (inQuery bool, err error) {
	_, afterScheme, _ := strings.Cut(before, "://")
	end := strings.IndexAny(afterScheme, "/?#")
	switch {
	case end < 0:
		return false, fmt.Errorf("%w, not the host or port", ErrPlaceholderPlace)
	case strings.Contains(afterScheme[end:], "#"):
		return false, fmt.Errorf("%w, not the fragment", ErrPlaceholderPlace)
	case !strings.Contains(afterScheme[end:], "?"):
		return false, nil
	}
	q := afterScheme[strings.IndexByte(afterScheme, '?')+1:]
	param := q[strings.LastIndexByte(q, '&')+1:]
	if !strings.Contains(param, "=") {
		return false, fmt.Errorf("%w, not a query parameter's name", ErrPlaceholderPlace)
	}
	return true, nil
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
// the first field that is missing or not a scalar, or whose value would
// make a path segment empty, "." or "..".
func (t *Template) Expand(payload []byte) (string, error) {
	if len(t.fields) == 0 {
		return t.raw, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(payload, &obj); err != nil {
		return "", fmt.Errorf("%w: URL %q needs a JSON object payload: %v", ErrPayload, t.raw, err)
	}
	var b strings.Builder
	type span struct {
		field      string
		start, end int
	}
	var inPath []span
	for i, f := range t.fields {
		b.WriteString(t.parts[2*i])
		raw, ok := obj[f]
		if !ok {
			return "", fmt.Errorf("%w: URL placeholder {%s} is missing from the payload", ErrPayload, f)
		}
		v, err := scalar(raw)
		if err != nil {
			return "", fmt.Errorf("%w: URL placeholder {%s}: %v", ErrPayload, f, err)
		}
		if t.query[i] {
			b.WriteString(url.QueryEscape(v))
			continue
		}
		start := b.Len()
		b.WriteString(url.PathEscape(v))
		inPath = append(inPath, span{f, start, b.Len()})
	}
	b.WriteString(t.parts[len(t.parts)-1])
	out := b.String()
	for _, sp := range inPath {
		start := strings.LastIndexByte(out[:sp.start], '/') + 1
		end := len(out)
		if i := strings.IndexAny(out[sp.end:], "/?#"); i >= 0 {
			end = sp.end + i
		}
		switch seg := out[start:end]; seg {
		case "", ".", "..":
			return "", fmt.Errorf("%w: URL placeholder {%s} makes the path segment %q", ErrPayload, sp.field, seg)
		}
	}
	return out, nil
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
