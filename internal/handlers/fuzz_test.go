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
// absolute http(s) URL on the template's own host, whatever the values; and
// a payload that does not fit gives an ErrPayload error.
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
		if err != nil {
			t.Fatalf("Expand(%q) with every field set to %q: %v", tpl, value, err)
		}
		if len(tm.Fields()) > 0 && !strings.Contains(base.Host, "x") {
			u, err := url.Parse(got)
			if err != nil {
				t.Fatalf("%q with %q expands to %q, which is no URL: %v", tpl, value, got, err)
			}
			if u.Scheme != base.Scheme || u.Host != base.Host {
				t.Fatalf("%q with %q expands to %q: scheme or host changed from %s://%s", tpl, value, got, base.Scheme, base.Host)
			}
		}
		if _, err := tm.Expand(payload); err != nil && !errors.Is(err, ErrPayload) {
			t.Fatalf("Expand(%q, %q): %v does not wrap ErrPayload", tpl, payload, err)
		}
	})
}
