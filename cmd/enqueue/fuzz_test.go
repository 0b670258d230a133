package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// FuzzParseLines checks the JSON-lines parser: it never panics, every
// non-blank line becomes exactly one task or one error naming that line,
// and every task it accepts has a type and a payload within the bound.
func FuzzParseLines(f *testing.F) {
	for _, s := range []string{
		`{"type":"email:send","payload":{"to":"a@b"}}`,
		"{\"type\":\"a\"}\n\n{\"type\":\"b\",\"queue\":\"q\",\"in\":\"5s\",\"max_retry\":0}\n",
		`{"type":"a","payload":"raw bytes","unique":"1m","task_id":"x","retention":"1h","group":"g"}`,
		`{"type":"a","at":"2026-12-01T10:00:00Z","deadline":"2026-12-01T11:00:00Z","timeout":"30s"}`,
		`{"type":"a","in":"1s","at":"2026-12-01T10:00:00Z"}`,
		`{"type":"a","max_retry":-1}`,
		`{"type":"a","extra":1}`,
		`{"type":"a"} {"type":"b"}`,
		`{"type":"a","payload":{"x":` + strings.Repeat("[", 20000) + `}}`,
		"{\"type\":\"\xff\",\"payload\":\"\xfe\"}",
		`[1,2,3]`,
		`"string"`,
		"\r\n \t\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, raw bool) {
		tasks, bad := parseLines(data, raw)
		lines := 0
		for _, l := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(l)) > 0 {
				lines++
			}
		}
		if len(tasks)+len(bad) != lines {
			t.Fatalf("%d tasks and %d errors for %d lines", len(tasks), len(bad), lines)
		}
		total := bytes.Count(data, []byte("\n")) + 1
		for _, e := range bad {
			if e.line < 1 || e.line > total || !strings.HasPrefix(e.Error(), "line ") {
				t.Fatalf("error %q names line %d of %d", e, e.line, total)
			}
		}
		for _, tk := range tasks {
			if tk.typ == "" || len(tk.payload) > maxPayload {
				t.Fatalf("accepted task with type %q and a %d-byte payload", tk.typ, len(tk.payload))
			}
		}
	})
}

// TestHostileBulkInput feeds the parser input a broken producer could
// write: each line gets a clear answer, quickly.
func TestHostileBulkInput(t *testing.T) {
	huge := func(n int) string { return `{"type":"a","payload":"` + strings.Repeat("x", n) + `"}` }
	for _, tc := range []struct {
		name    string
		line    string
		raw     bool
		wantErr string // "" when the line must be accepted
	}{
		{"payload of exactly 8 MiB, raw", huge(maxPayload), true, ""},
		{"payload of 8 MiB + 1, raw", huge(maxPayload + 1), true, "payload is 8388609 bytes, more than the 8388608 allowed"},
		{"payload over 8 MiB as JSON", `{"type":"a","payload":"` + strings.Repeat("x", maxPayload) + `"}`, false, "more than the 8388608 allowed"},
		{"nesting past encoding/json's limit", `{"type":"a","payload":` + strings.Repeat("[", 20000) + strings.Repeat("]", 20000) + `}`, false, "not a task object"},
		{"deep but legal nesting", `{"type":"a","payload":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`, false, ""},
		{"invalid UTF-8 in the type", "{\"type\":\"\xff\"}", false, ""},
		{"invalid UTF-8 raw payload", "{\"type\":\"a\",\"payload\":\"\xc3\x28\"}", true, ""},
		{"braces and stars in type and queue", `{"type":"{a}*","queue":"{q}*"}`, false, ""},
		{"an escaped NUL", `{"type":"a\u0000b"}`, false, ""},
		{"a raw NUL", "{\"type\":\"a\x00b\"}", false, "invalid character"},
		{"a type of spaces", `{"type":"   "}`, false, "type is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			tasks, bad := parseLines([]byte(tc.line), tc.raw)
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("took %v", d)
			}
			switch {
			case tc.wantErr == "" && (len(tasks) != 1 || len(bad) != 0):
				t.Fatalf("want the line accepted, got %d tasks, errors %v", len(tasks), bad)
			case tc.wantErr != "" && (len(bad) != 1 || !strings.Contains(bad[0].Error(), tc.wantErr)):
				t.Fatalf("want an error containing %q, got %d tasks, errors %.200v", tc.wantErr, len(tasks), bad)
			}
		})
	}
}

// TestHostileCommandLines runs enqueue in process with command lines an
// operator could mistype: each is a usage error (exit 2) with a clear
// message, is refused before anything reaches Redis, and never prints a
// password given in a Redis URL, not even in the usage text's defaults.
func TestHostileCommandLines(t *testing.T) {
	const secret = "s3cr3t-pw"
	url := "redis://:" + secret + "@127.0.0.1:1/0" // nothing listens: a contacted Redis would be exit 1
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"negative limit after a Redis URL", []string{"--redis-url", url, "limits", "set", "api", "-1"}, `limit must be a whole number from 1 to 1073741824, got "-1"`},
		{"unknown flag after limits, URL before", []string{"--redis-url", url, "limits", "--bogus"}, "flag provided but not defined"},
		{"unknown flag after limits, URL after", []string{"limits", "--redis-url", url, "--bogus"}, "flag provided but not defined"},
		{"limit past int64", []string{"--redis-url", url, "limits", "set", "api", "9223372036854775808"}, "from 1 to 1073741824"},
		{"limit of max int64", []string{"--redis-url", url, "limits", "set", "api", "9223372036854775807"}, "from 1 to 1073741824"},
		{"limit past 2^53", []string{"--redis-url", url, "limits", "set", "api", "9007199254740993"}, "from 1 to 1073741824"},
		{"limit one past the bound", []string{"--redis-url", url, "limits", "set", "api", "1073741825"}, "from 1 to 1073741824"},
		{"limit as a float", []string{"--redis-url", url, "limits", "set", "api", "2.5"}, "from 1 to 1073741824"},
		{"negative max-retry", []string{"--redis-url", url, "--type", "t", "--max-retry", "-2"}, "max_retry must not be negative, got -2"},
		{"max-retry of -1", []string{"--redis-url", url, "--type", "t", "--max-retry", "-1"}, "max_retry must not be negative, got -1"},
		{"password with a slash in the URL", []string{"--redis-url", "redis://:ab/" + secret + "@127.0.0.1:1/0", "--type", "t"}, "invalid port after host (URL-escape"},
		{"password with a space in the URL, limits", []string{"limits", "--redis-url", "redis://:ab " + secret + "@127.0.0.1:1/0"}, "invalid userinfo"},
		{"password in the URL's query", []string{"--redis-url", "redis://127.0.0.1:1/0?password=" + secret, "--type", "t"}, "unexpected option: password"},
		{"max-retry not a number", []string{"--redis-url", url, "--type", "t", "--max-retry", "x"}, "want a whole number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(t.Context(), tc.args, func(string) string { return "" }, strings.NewReader(""), &out, &errb)
			all := out.String() + errb.String()
			if err != nil {
				all += err.Error()
			}
			if exitCode(err) != 2 || !strings.Contains(all, tc.want) {
				t.Fatalf("exit %d (%v), output %q; want exit 2 and %q", exitCode(err), err, all, tc.want)
			}
			if strings.Contains(all, secret) {
				t.Fatalf("the output shows the Redis password:\n%s", all)
			}
		})
	}
}
