package redisconn

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/redistest"
)

func TestValidateRejectsBadSectionsWithoutLeakingPasswords(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"two modes", Config{URL: "redis://h:1", Cluster: &Cluster{Addrs: []string{"h:1"}}}, "only one of"},
		{"bad scheme", Config{URL: "http://u:hunter2@h:1"}, "redis.url"},
		{"bad port", Config{URL: "redis://u:hunter2@h:notaport/0"}, "redis.url"},
		{"bad db", Config{URL: "redis://u:hunter2@h:6379/x"}, "redis.url"},
		{"sentinel without master", Config{Sentinel: &Sentinel{Addrs: []string{"h:1"}}}, "redis.sentinel.master"},
		{"sentinel without addrs", Config{Sentinel: &Sentinel{Master: "m"}}, "redis.sentinel.addrs"},
		{"cluster addr without port", Config{Cluster: &Cluster{Addrs: []string{"h"}}}, "redis.cluster.addrs[0]"},
		{"cert without key", Config{URL: "rediss://h:1", TLS: &TLS{CertFile: "c"}}, "redis.tls"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrConfig naming %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
	for _, ok := range []Config{{}, {URL: "redis://127.0.0.1:6379/2"}, {URL: "rediss://u:p@h:6380"},
		{Sentinel: &Sentinel{Master: "m", Addrs: []string{"127.0.0.1:26379"}}}, {Cluster: &Cluster{Addrs: []string{"[::1]:7000"}}}} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%s: %v", ok.Describe(), err)
		}
	}
}

func TestRedactHidesPasswords(t *testing.T) {
	for in, want := range map[string]string{
		"redis://user:hunter2@h:6379/0":               "redis://user:xxxxx@h:6379/0",
		"rediss://:hunter2@h:6380":                    "rediss://:xxxxx@h:6380",
		"redis://h:6379":                              "redis://h:6379",
		`parse "redis://u:hunter2@h:x": invalid port`: `parse "redis://u:xxxxx@h:x": invalid port`,
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestURLClientTalksToRedis(t *testing.T) {
	b := redistest.Real(t)
	c, err := Config{URL: "redis://" + redistest.Addr() + "/0"}.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Set(t.Context(), b.Prefix+":k", "v", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if got := b.Client.Get(t.Context(), b.Prefix+":k").Val(); got != "v" {
		t.Fatalf("got %q", got)
	}
}

func TestEmbeddedFallsBackToAFreePortAndAgesKeys(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	e, err := StartEmbedded(l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Addr() == l.Addr().String() {
		t.Fatal("embedded Redis claims a taken port")
	}
	c, err := Config{URL: e.URL()}.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Set(t.Context(), "k", "v", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for c.Exists(t.Context(), "k").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("a key with a 300ms TTL still exists after 3s: TTLs do not advance")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHostileURLsNeverShowTheirSecret gives URLs whose password was not
// URL-escaped (base64 passwords often hold '/'), or sits in the query: the
// validation error, the description for logs, NewClient's error and Redact
// of a parser message quoting the URL show none of it, while the error
// still says what is wrong.
func TestHostileURLsNeverShowTheirSecret(t *testing.T) {
	const secret = "S3CRET"
	for _, tc := range []struct {
		url, want string // want: in the validation error; "" when the URL is valid
	}{
		{"redis://:ab/cd" + secret + "@h:6379/0", "invalid port after host (URL-escape a password"},
		{"redis://:ab cd" + secret + "@h:6379", "invalid userinfo"},
		{`redis://:ab"cd` + secret + "@h:6379", "invalid userinfo"},
		{"redis://:ab?cd" + secret + "@h:6379", "invalid port"},
		{"redis://:ab#cd" + secret + "@h:6379", "invalid port"},
		{"redis://:ab%zz" + secret + "@h:6379", "invalid URL escape"},
		{"redis://user:ab/+=" + secret + "==@h:6379", "invalid port"},
		{"rediss://:a/b" + secret + "@h:6380/0?dial_timeout=3s", "invalid port"},
		{"redis://h:6379/0?password=" + secret, "unexpected option: password"},
		{"redis://h:6379/0?dial_timeout=1s&sentinel_password=" + secret, "unexpected option"},
		{"redis://:" + secret + "@h:6379/0?dial_timeout=soon", "invalid dial_timeout"},
		{"redis://" + secret + "@h:6379/x", "invalid database number"},
		{"redis://u:a@b" + secret + "@h:6379/0", ""},
		{"redis://:" + secret + "@h:6379/0", ""},
	} {
		t.Run(tc.url, func(t *testing.T) {
			c := Config{URL: tc.url}
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate: %v, want an error containing %q", err, tc.want)
			}
			_, nerr := c.NewClient()
			shown := map[string]string{
				"Describe":          c.Describe(),
				"RedactURL":         RedactURL(tc.url),
				"Redact of a quote": Redact(`parse "` + tc.url + `": net/url: invalid userinfo`),
				"Redact of %q":      Redact(fmt.Sprintf("dial %q failed", tc.url)),
			}
			if err != nil {
				shown["Validate"], shown["NewClient"] = err.Error(), nerr.Error()
			}
			for what, s := range shown {
				if strings.Contains(s, secret) || strings.Contains(s, "cd") && strings.Contains(tc.url, "cd") {
					t.Errorf("%s shows the password: %s", what, s)
				}
			}
			if d := c.Describe(); !strings.Contains(d, "h:63") {
				t.Errorf("Describe = %q: the host is hidden too", d)
			}
		})
	}
}
