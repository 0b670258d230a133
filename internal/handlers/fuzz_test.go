package handlers

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"
)

// FuzzTemplate checks URL templates and their expansion: parsing never
// panics; a template it accepts expands, with every placeholder set, to an
// absolute http(s) URL with the template's own scheme, host, path segment
// count and query keys, whatever the values; and a payload that does not
// fit gives an ErrPayload error.
func FuzzTemplate(f *testing.F) {
	for _, s := range [][3]string{
		{"https://api.example.com/v1/users/{id}/notify", `{"id":"42"}`, "a/b?c#d"},
		{"http://127.0.0.1:8080/call/{n}?x={n}", `{"n":7}`, "../../admin"},
		{"https://h/{a}{b}", `{"a":true,"b":1.5}`, "%2F%00"},
		{"https://h/{a}", `{"a":{"nested":1}}`, "\xff\xfe"},
		{"https://h/{a}", `{"b":1}`, " "},
		{"https://h/{a}", `[1]`, "{}"},
		{"https://h/{}", `{}`, "x"},
		{"https://h/{a", `{}`, "x"},
		{"https://h/a}", `{}`, "x"},
		{"ftp://h/{a}", `{"a":"x"}`, "x"},
		{"https://{host}/x", `{"host":"evil.example"}`, "evil.example:1@"},
		{"https://h{p}/x", `{"p":":6379"}`, ":6379"},
		{"https://u:{p}@h/x", `{"p":"x"}`, "x"},
		{"https://h/x?{k}=1", `{"k":"admin"}`, "admin"},
		{"https://h/x?a=1&{k}", `{"k":"admin"}`, "admin"},
		{"https://h/x#{f}", `{"f":"x"}`, "x"},
		{"https://h/x?q={v}&r=1", `{"v":"a&admin=1"}`, "a&admin=1+b=c"},
		{"https://h?q={v}", `{"v":"=="}`, "="},
		{"https://h/api/{a}/data", `{"a":".."}`, ".."},
		{"https://h/api/{a}{b}/data", `{"a":".","b":"."}`, "."},
		{"https://h/api/{a}/data", `{"a":""}`, ""},
		{"/relative/{a}", `{"a":"x"}`, "x"},
	} {
		f.Add(s[0], []byte(s[1]), s[2])
	}
	f.Fuzz(func(t *testing.T, tpl string, payload []byte, value string) {
		tm, err := ParseTemplate(tpl)
		if err != nil {
			return
		}
		base, err := url.Parse(tm.fill(func(string) string { return "x" }))
		if err != nil {
			t.Fatalf("accepted %q, which is no URL: %v", tpl, err)
		}
		obj := map[string]string{}
		for _, f := range tm.Fields() {
			obj[f] = value
		}
		b, _ := json.Marshal(obj)
		got, err := tm.Expand(b)
		switch {
		case err != nil && errors.Is(err, ErrPayload) && (value == "" || value == "." || value == ".." || strings.Trim(value, ".") == "" && len(tm.Fields()) > 1):
			// an empty, "." or ".." path segment (two "." may make one "..")
		case err != nil:
			t.Fatalf("Expand(%q) with every field set to %q: %v", tpl, value, err)
		default:
			u, err := url.Parse(got)
			if err != nil {
				t.Fatalf("%q with %q expands to %q, which is no URL: %v", tpl, value, got, err)
			}
			if u.Scheme != base.Scheme || u.Host != base.Host || u.User.String() != base.User.String() || u.Fragment != base.Fragment {
				t.Fatalf("%q with %q expands to %q: scheme, user, host or fragment changed from %q", tpl, value, got, base)
			}
			if strings.Count(u.EscapedPath(), "/") != strings.Count(base.EscapedPath(), "/") {
				t.Fatalf("%q with %q expands to path %q: its segments changed from %q", tpl, value, u.EscapedPath(), base.EscapedPath())
			}
			for _, seg := range strings.Split(u.EscapedPath(), "/") {
				if seg == "." || seg == ".." {
					t.Fatalf("%q with %q expands to path %q with a dot segment", tpl, value, u.EscapedPath())
				}
			}
			if !sameKeys(u.Query(), base.Query()) {
				t.Fatalf("%q with %q expands to query %q: its keys changed from %q", tpl, value, u.RawQuery, base.RawQuery)
			}
		}
		if _, err := tm.Expand(payload); err != nil && !errors.Is(err, ErrPayload) {
			t.Fatalf("Expand(%q, %q): %v does not wrap ErrPayload", tpl, payload, err)
		}
	})
}

func sameKeys(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if len(b[k]) != len(v) {
			return false
		}
	}
	return true
}

// TestHostileTemplates lists URL templates and payloads that would steer a
// call elsewhere: each template is refused by --check, or each payload
// fails the task without retry, or its value stays inside its place.
func TestHostileTemplates(t *testing.T) {
	for _, tc := range []struct {
		tpl, payload string
		want         string // the URL; "!parse" when the template is refused; "!payload" when the task fails
	}{
		{"http://{host}/x", `{"host":"127.0.0.1:6379"}`, "!parse"},
		{"https://api.{env}.example/x", `{"env":"evil.com/"}`, "!parse"},
		{"https://h:{port}/x", `{"port":"6379"}`, "!parse"},
		{"https://{user}@h/x", `{"user":"a"}`, "!parse"},
		{"https://h/x?{key}=1", `{"key":"admin"}`, "!parse"},
		{"https://h/x?a=1&{key}", `{"key":"admin=1"}`, "!parse"},
		{"https://h/x#{frag}", `{"frag":"a"}`, "!parse"},
		{"https://h/x?q={v}", `{"v":"a&admin=1"}`, "https://h/x?q=a%26admin%3D1"},
		{"https://h/x?q={v}", `{"v":"1+1=2 ok"}`, "https://h/x?q=1%2B1%3D2+ok"},
		{"https://h/x?q={v}", `{"v":"#frag"}`, "https://h/x?q=%23frag"},
		{"https://h/api/{id}/data", `{"id":".."}`, "!payload"},
		{"https://h/api/{id}/data", `{"id":"."}`, "!payload"},
		{"https://h/api/{id}/data", `{"id":""}`, "!payload"},
		{"https://h/api/{a}{b}/data", `{"a":".","b":"."}`, "!payload"},
		{"https://h/api/{id}", `{"id":"../../data"}`, "https://h/api/..%2F..%2Fdata"},
		{"https://h/api/{id}.json", `{"id":".."}`, "https://h/api/...json"},
		{"https://h/api/{id}", `{"id":"%2e%2e"}`, "https://h/api/%252e%252e"},
		{"https://h/api/{id}", `{"id":"a;b?c"}`, "https://h/api/a%3Bb%3Fc"},
	} {
		t.Run(tc.tpl+" "+tc.payload, func(t *testing.T) {
			tm, err := ParseTemplate(tc.tpl)
			if tc.want == "!parse" {
				if !errors.Is(err, ErrPlaceholderPlace) {
					t.Fatalf("ParseTemplate(%q) = %v, want ErrPlaceholderPlace", tc.tpl, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := tm.Expand([]byte(tc.payload))
			switch {
			case tc.want == "!payload" && !errors.Is(err, ErrPayload):
				t.Fatalf("Expand = %q, %v; want ErrPayload", got, err)
			case tc.want != "!payload" && got != tc.want:
				t.Fatalf("Expand = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
