package main

import (
	"strings"
	"testing"
)

// FuzzParseConfig checks the worker's whole configuration file: parsing
// never panics, a file it accepts passes validation again after the
// defaults, and no error repeats a header value taken from the environment.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		demoConfig,
		"redis:\n  url: redis://user:pw@127.0.0.1:6379/2\nworker:\n  concurrency: 5\n  queues: {default: 1, critical: 6}\n",
		"redis:\n  sentinel: {master: m, addrs: [\"127.0.0.1:26379\"]}\n  tls: {ca_file: /nonexistent}\n",
		"redis:\n  cluster: {addrs: [\"127.0.0.1:7000\"]}\n",
		"redis:\n  url: rediss://127.0.0.1:6380\n  cluster: {addrs: [a]}\n",
		"redis:\n  url: \"redis://:ab/cd@127.0.0.1:6379/0?password=x\"\n",
		"redis:\n  url: 'redis://:a b\"c@127.0.0.1:6379'\n",
		"handlers:\n  - type: api:call\n    http:\n      url: \"https://api.example.com/{id}\"\n      headers: {Authorization: \"Bearer ${API_TOKEN}\"}\n",
		"handlers:\n  - type: a\n    command: [\"/bin/true\"]\n    sleep: {}\n",
		"handlers:\n  - type: a\n    http: {url: \"https://h/{\"}\n",
		"handlers:\n  - type: a\n    http: {url: \"http://{host}/x?{k}={v}#{f}\"}\n",
		"handlers:\n  - type: a\n    http:\n      url: https://h/\n      headers: {\"X Key\": \"v\\r\\n\"}\n",
		"admin: {addr: \"0.0.0.0:9090\", token: t}\nlog: {format: json, level: debug}\n",
		"limits:\n  rules:\n    - {name: a, task_types: [\"*\"], limit: 1}\nworker: {unknown: 1}\n",
		"limits: [1]\n",
		"[",
		"\x00",
	} {
		f.Add([]byte(s))
	}
	const secret = "s3cr3t-from-env"
	getenv := func(k string) string {
		if k == "API_TOKEN" {
			return secret
		}
		return ""
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseConfig(data, getenv)
		if err != nil {
			if strings.Contains(err.Error(), secret) && !strings.Contains(string(data), secret) {
				t.Fatalf("an error shows the environment's secret: %v", err)
			}
			return
		}
		if err := c.validate(getenv); err != nil {
			t.Fatalf("parseConfig accepted the file, validate says %v", err)
		}
		c.withDefaults()
		if err := c.validate(getenv); err != nil {
			t.Fatalf("the defaults are invalid: %v", err)
		}
	})
}

// TestCheckOfAHostileConfig runs --check on files an operator could get
// wrong: each is refused with its field named and without echoing a
// secret, a Redis password that was not URL-escaped included.
func TestCheckOfAHostileConfig(t *testing.T) {
	const secret = "S3CRET-pw"
	for _, tc := range []struct {
		name, yaml string
		want       []string
		env        map[string]string
	}{
		{"password with a slash in REDIS_URL", "{}\n", []string{"redis", "invalid port"}, map[string]string{"REDIS_URL": "redis://:ab/cd" + secret + "@127.0.0.1:6379/0"}},
		{"password with a slash", "redis:\n  url: \"redis://:ab/cd" + secret + "@127.0.0.1:6379/0\"\n", []string{"redis (line 1)", "invalid port", "URL-escape"}, nil},
		{"password with a space", "redis:\n  url: \"redis://:ab cd" + secret + "@127.0.0.1:6379\"\n", []string{"redis (line 1)", "invalid userinfo"}, nil},
		{"password with a quote", "redis:\n  url: 'redis://:ab\"cd" + secret + "@127.0.0.1:6379'\n", []string{"redis (line 1)", "invalid userinfo"}, nil},
		{"base64 password", "redis:\n  url: \"redis://app:Zm9v/YmFy+" + secret + "==@127.0.0.1:6379/0\"\n", []string{"redis (line 1)", "redis://app:xxxxx@127.0.0.1:6379/0"}, nil},
		{"password in the query", "redis:\n  url: \"redis://127.0.0.1:6379/0?password=" + secret + "\"\n", []string{"redis (line 1)", "unexpected option: password"}, nil},
		{"placeholder as the host", "handlers:\n  - type: x\n    http:\n      url: \"http://{host}/x\"\n", []string{"handlers[0].http.url (line 4)", "placeholders may fill only path segments and query values, not the host"}, nil},
		{"placeholder as a query key", "handlers:\n  - type: x\n    http:\n      url: \"https://api.test/x?{key}=1\"\n", []string{"handlers[0].http.url (line 4)", "not a query parameter's name"}, nil},
		{"env name with '='", "handlers:\n  - type: x\n    command: [/bin/true]\n    env: [\"A=B\"]\n", []string{"handlers[0].env[0] (line 4)", "cannot name an environment variable"}, nil},
		{"env on an http handler", "handlers:\n  - type: x\n    http: {url: \"https://api.test/\"}\n    env: [A]\n", []string{"handlers[0].env (line 4)", "applies to command handlers"}, nil},
		{"header name with a space", "handlers:\n  - type: x\n    http:\n      url: https://api.test/\n      headers: {\"X Key\": v}\n", []string{"handlers[0].http.headers.X Key", "invalid HTTP header"}, nil},
		{"header value with CRLF from the environment", "handlers:\n  - type: x\n    http:\n      url: https://api.test/\n      headers: {X-Key: \"${KEY}\"}\n", []string{"handlers[0].http.headers.X-Key (line 5)", "control character"}, map[string]string{"KEY": secret + "\r\nX-Evil: 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := check(t, tc.yaml, tc.env)
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out+err.Error(), secret) || strings.Contains(out, "cd") || strings.Contains(out, "X-Evil") {
				t.Errorf("output shows the secret:\n%s", out)
			}
		})
	}
}
