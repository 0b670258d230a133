package deploytest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/fakeapi"
	"github.com/slotguard/slotguard/internal/wait"
)

// TestSecretsStayOutOfLogsAndAdmin runs the worker with a Redis password in
// its URL and an API token from the environment in a header, at debug log
// level: neither appears in the log, /limits or /metrics, while both work.
func TestSecretsStayOutOfLogsAndAdmin(t *testing.T) {
	const redisPass, token = "redis-pw-7f3a9c", "api-token-5d1e8b"
	srv := startRedis(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.addr()})
	defer admin.Close()
	mustDo(t, admin, append([]any{"ACL", "SETUSER", "sg", "on", ">" + redisPass}, toAny(strings.Fields(minimalACL))...)...)
	api := &fakeapi.API{Delay: 10 * time.Millisecond}
	apiURL := api.Start(t)
	section := fmt.Sprintf("  url: redis://sg:%s@%s/0", redisPass, srv.addr())
	cfg := apiWorkerConfig(section, "secrets", apiURL) +
		"      headers: {Authorization: \"Bearer ${API_TOKEN}\"}\nlog: {level: debug}\n"
	w := startReadyWorker(t, cfg, "API_TOKEN="+token)
	enqueueCallsOn(t, admin, "secrets", 5)
	wait.Until(t, 30*time.Second, "every task to run", func() bool { return api.Distinct() == 5 })
	got := api.Headers()[0].Get("Authorization")
	if got != "Bearer "+token {
		t.Fatalf("the API got Authorization %q: the header from the environment was not sent", got)
	}
	for what, body := range map[string]string{"log": w.Logs(), "/limits": w.Get("/limits"), "/metrics": w.Get("/metrics")} {
		if body == "" {
			t.Fatalf("%s is empty", what)
		}
		for _, secret := range []string{redisPass, token} {
			if strings.Contains(body, secret) {
				t.Fatalf("%s shows a secret:\n%s", what, body)
			}
		}
	}
	if !strings.Contains(w.Logs(), "redis=redis://sg:xxxxx@") {
		t.Fatalf("the log does not show the redacted Redis URL:\n%s", w.Logs())
	}

	// A bad config names the field but not the secret.
	bad := strings.Replace(cfg, "concurrency: 4", "concurrency: -1", 1)
	c := startWorker(t, bad, []string{"--admin-addr", "off"}, "API_TOKEN="+token)
	if err := c.Wait(t, 30*time.Second); err == nil || strings.Contains(c.Logs(), redisPass) || strings.Contains(c.Logs(), token) {
		t.Fatalf("bad config: exit %v, log:\n%s", err, c.Logs())
	}
}

// TestAdminListensOnLoopbackByDefault starts the worker without an admin
// address: it listens on 127.0.0.1:9090, or, where another process has that
// port, on a free loopback port, and says so.
func TestAdminListensOnLoopbackByDefault(t *testing.T) {
	srv := startRedis(t)
	api := &fakeapi.API{}
	apiURL := api.Start(t)
	w := startWorker(t, apiWorkerConfig("  url: redis://"+srv.addr()+"/0", "admin", apiURL), nil)
	wait.Until(t, 30*time.Second, "the admin server's address in the log", func() bool {
		return strings.Contains(w.Logs(), `msg="admin server listening" addr=http://127.0.0.1:`)
	})
	if !strings.Contains(w.Logs(), "addr=http://127.0.0.1:9090 ") && !strings.Contains(w.Logs(), "taken=127.0.0.1:9090") {
		t.Fatalf("the admin server is neither on 127.0.0.1:9090 nor says that it was taken:\n%s", w.Logs())
	}
	for _, l := range strings.Split(w.Logs(), "\n") {
		if strings.Contains(l, "admin server") && (strings.Contains(l, "0.0.0.0") || strings.Contains(l, "[::]")) {
			t.Fatalf("the admin server is not on loopback: %s", l)
		}
	}
}
