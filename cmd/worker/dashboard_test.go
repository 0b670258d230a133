package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/asynqtest"
	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/limiter"
	"github.com/slotguard/slotguard/worker"
)

// dashSetup is an admin server's dashboard in process, on a fresh key
// prefix: rule "api" (limit 2) and rule "cust" (limit 1 per customer).
type dashSetup struct {
	rdb    redis.UniversalClient
	prefix string
	admin  *admin
	events *recorder
}

func setupDashboard(t *testing.T, rdb redis.UniversalClient, prefix string) *dashSetup {
	t.Helper()
	cfg := worker.Config{Prefix: prefix, Rules: []worker.Rule{
		{Name: "api", TaskTypes: []string{"api:*"}, Limit: 2},
		{Name: "cust", TaskTypes: []string{"cust:*"}, PartitionBy: "customer", Limit: 1},
	}}
	states := newStateReader(rdb, cfg)
	events := newRecorder()
	events.onNew = states.notice
	states.local = events.activity
	a := &admin{rdb: rdb, states: states, metrics: newMetrics(states.ruleStates), events: events, loopback: true}
	return &dashSetup{rdb: rdb, prefix: prefix, admin: a, events: events}
}

// hold takes a slot of the limiter name with the holder label, released
// when the test ends, and tells the recorder, as the guard's events would.
func (s *dashSetup) hold(t *testing.T, name, label string, waited time.Duration) *limiter.Permit {
	t.Helper()
	rule, _, _ := strings.Cut(name, "/")
	sem, err := limiter.New(s.rdb, name, s.admin.states.rules[rule].Limit, &limiter.Options{Prefix: s.prefix})
	if err != nil {
		t.Fatal(err)
	}
	p, err := sem.TryAcquire(t.Context(), limiter.WithHolder(label))
	if err != nil {
		t.Fatalf("acquire %q: %v", name, err)
	}
	t.Cleanup(func() { _ = p.Release(t.Context()) })
	s.events.record(worker.Event{Kind: worker.EventAcquired, Rule: rule, Semaphore: name, Waited: waited})
	return p
}

func (s *dashSetup) storedLimit(t *testing.T, name string) int {
	t.Helper()
	sem, err := limiter.New(s.rdb, name, 1, &limiter.Options{Prefix: s.prefix})
	if err != nil {
		t.Fatal(err)
	}
	info, err := sem.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.Limit
}

// get serves GET path on h with the Host host and, if given, the token.
func get(h http.Handler, host, path, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", "http://"+host+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func getState(t *testing.T, h http.Handler, host, token string) (dashboardState, string) {
	t.Helper()
	return getStatePath(t, h, host, "/api/state", token)
}

func getStatePath(t *testing.T, h http.Handler, host, path, token string) (dashboardState, string) {
	t.Helper()
	rec := get(h, host, path, token)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
	}
	raw := rec.Body.String()
	var st dashboardState
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("GET /api/state: %v in %s", err, raw)
	}
	return st, raw
}

func findLimiter(st dashboardState, name string) *limiterView {
	for i := range st.Limiters {
		if st.Limiters[i].Name == name {
			return &st.Limiters[i]
		}
	}
	return nil
}

func TestDashboardStateShowsLimitsHoldersWaitsAndQueues(t *testing.T) {
	const queue = "w-dash-state"
	asynqtest.CleanQueue(t, queue)
	rdb := asynqtest.Client(t)
	prefix := redistest.NewPrefix()
	t.Cleanup(func() { redistest.DeletePrefix(rdb, prefix) })
	s := setupDashboard(t, rdb, prefix)
	s.admin.queues = newQueueReader(rdb, map[string]int{queue: 1, "w-dash-never-used": 1})

	c := asynq.NewClientFromRedisClient(rdb)
	for _, opt := range []asynq.Option{nil, nil, asynq.ProcessIn(time.Hour)} {
		opts := []asynq.Option{asynq.Queue(queue)}
		if opt != nil {
			opts = append(opts, opt)
		}
		if _, err := c.Enqueue(asynq.NewTask("api:call", nil), opts...); err != nil {
			t.Fatal(err)
		}
	}
	p1 := s.hold(t, "api", "task-1 api:call host-a:10", 40*time.Millisecond)
	s.hold(t, "api", "task-2 api:call host-b:20", 200*time.Millisecond)
	s.hold(t, "cust/acme", "task-3 cust:sync host-a:10", 0)
	s.events.record(worker.Event{Kind: worker.EventParked, Rule: "api", Semaphore: "api"})
	s.events.record(worker.Event{Kind: worker.EventLeaseLost, Rule: "api", Semaphore: "api"})

	st, _ := getState(t, s.admin.handler(), "127.0.0.1:9090", "")
	api, acme := findLimiter(st, "api"), findLimiter(st, "cust/acme")
	if api == nil || acme == nil {
		t.Fatalf("limiters shown: %+v; want api and cust/acme (noticed from events, before any listing)", st.Limiters)
	}
	if api.Limit != 2 || api.Held != 2 || api.Free != 0 || api.Partitioned {
		t.Fatalf("api: %+v", api.limiterState)
	}
	if acme.Rule != "cust" || acme.Partition != "acme" || !acme.Partitioned || acme.Limit != 1 || acme.Held != 1 {
		t.Fatalf("cust/acme: rule %q partition %q %+v", acme.Rule, acme.Partition, acme.limiterState)
	}
	if len(api.Holders) != 2 {
		t.Fatalf("api holders %+v", api.Holders)
	}
	h := api.Holders[slices.IndexFunc(api.Holders, func(h holderView) bool { return h.TaskID == "task-1" })]
	if h.TaskType != "api:call" || h.Worker != "host-a:10" || h.Weight != 1 || h.Fence != p1.Fence() || h.LeaseLeft <= 0 {
		t.Fatalf("holder of task-1: %+v (fence want %d)", h, p1.Fence())
	}
	ev := api.Events
	if ev.Acquired != 2 || ev.WaitP50 != 40 || ev.WaitP99 != 200 || ev.ParkedPerMin != 1 || ev.LeaseLost != 1 || len(ev.Series) != bucketCount {
		t.Fatalf("api events: %+v", ev)
	}
	wantQueues := []queueState{{Queue: "w-dash-never-used"}, {Queue: queue, Pending: 2, Scheduled: 1}} // sorted
	if !slices.Equal(st.Queues, wantQueues) || st.QueuesError != "" {
		t.Fatalf("queues %+v (%s), want %+v", st.Queues, st.QueuesError, wantQueues)
	}
	if !st.Edit.Allowed || st.Edit.By != "loopback" {
		t.Fatalf("edit access on a loopback server: %+v", st.Edit)
	}
}

func TestDashboardLimitChangeNeedsLoopbackOrToken(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s := setupDashboard(t, b.Client, b.Prefix)
		s.hold(t, "api", "task-1 api:call w:1", 0)
		const token = "s3cret-token"
		cases := []struct {
			name     string
			loopback bool
			token    string // configured
			host     string
			header   http.Header
			want     int
		}{
			{"loopback server, loopback host", true, "", "127.0.0.1:9090", nil, 200},
			{"loopback server, localhost", true, "", "localhost:9090", nil, 200},
			{"loopback server, DNS-rebound host", true, "", "attacker.example:9090", nil, 403},
			{"loopback server, DNS-rebound host with token", true, token, "attacker.example:9090", http.Header{"Authorization": {"Bearer " + token}}, 200},
			{"no token configured", false, "", "10.0.0.5:9090", http.Header{"Authorization": {"Bearer anything"}}, 403},
			{"token configured, none given", false, token, "10.0.0.5:9090", nil, 401},
			{"wrong token", false, token, "10.0.0.5:9090", http.Header{"Authorization": {"Bearer nope"}}, 401},
			{"token as a non-bearer scheme", false, token, "10.0.0.5:9090", http.Header{"Authorization": {"Basic " + token}}, 401},
			{"right token", false, token, "10.0.0.5:9090", http.Header{"Authorization": {"Bearer " + token}}, 200},
			{"cross-site request, loopback", true, "", "127.0.0.1:9090", http.Header{"Sec-Fetch-Site": {"cross-site"}}, 403},
			{"cross-site request with token", false, token, "10.0.0.5:9090", http.Header{"Sec-Fetch-Site": {"cross-site"}, "Authorization": {"Bearer " + token}}, 403},
			{"other origin without fetch metadata", true, "", "127.0.0.1:9090", http.Header{"Origin": {"http://attacker.example"}}, 403},
			{"same origin", true, "", "127.0.0.1:9090", http.Header{"Origin": {"http://127.0.0.1:9090"}, "Sec-Fetch-Site": {"same-origin"}}, 200},
			{"form post (no JSON)", true, "", "127.0.0.1:9090", http.Header{"Content-Type": {"text/plain"}}, 415},
		}
		limit := 2
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				s.admin.loopback, s.admin.token = c.loopback, c.token
				next := limit + 1
				req := httptest.NewRequest("POST", "http://"+c.host+"/api/limit",
					strings.NewReader(`{"name":"api","limit":`+strconv.Itoa(next)+`}`))
				req.Header.Set("Content-Type", "application/json")
				for k, v := range c.header {
					req.Header[k] = v
				}
				rec := httptest.NewRecorder()
				s.admin.handler().ServeHTTP(rec, req)
				if rec.Code != c.want {
					t.Fatalf("POST /api/limit: %d %s, want %d", rec.Code, rec.Body, c.want)
				}
				if c.want == 200 {
					limit = next
				}
				if got := s.storedLimit(t, "api"); got != limit {
					t.Fatalf("stored limit %d, want %d", got, limit)
				}
				// The page's read of the same request agrees with the POST:
				// what may not change limits may not read them either.
				if c.header.Get("Sec-Fetch-Site") == "" && c.header.Get("Origin") == "" && c.want != 415 {
					rec := get(s.admin.handler(), c.host, "/api/state", strings.TrimPrefix(c.header.Get("Authorization"), "Bearer "))
					var body struct {
						Edit     editAccess `json:"edit"`
						Limiters []any      `json:"limiters"`
					}
					if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
						t.Fatalf("GET /api/state: %d %s", rec.Code, rec.Body)
					}
					if rec.Code != c.want || body.Edit.Allowed != (c.want == 200) || (!body.Edit.Allowed && (body.Edit.Reason == "" || body.Limiters != nil)) {
						t.Fatalf("GET /api/state answers %d %s for a request whose POST got %d", rec.Code, rec.Body, c.want)
					}
					if body.Edit.TokenRequired != (c.want == 401) {
						t.Fatalf("token_required %v for a request whose POST got %d", body.Edit.TokenRequired, c.want)
					}
				}
			})
		}
		t.Run("the page shows the new limit", func(t *testing.T) {
			s.admin.loopback, s.admin.token = true, ""
			st, _ := getState(t, s.admin.handler(), "127.0.0.1:9090", "")
			if api := findLimiter(st, "api"); api == nil || api.Limit != limit {
				t.Fatalf("api shown as %+v, want limit %d", api, limit)
			}
		})
	})
}

func TestDashboardLimitChangeRejectsBadRequests(t *testing.T) {
	b := redistest.Any(t)
	s := setupDashboard(t, b.Client, b.Prefix)
	s.hold(t, "api", "task-1 api:call w:1", 0)
	for _, c := range []struct {
		body string
		want int
	}{
		{`{"name":"api","limit":0}`, 400},
		{`{"name":"api","limit":-3}`, 400},
		{`{"name":"api","limit":2000000000}`, 400},
		{`{"name":"api","limit":"7"}`, 400},
		{`{"name":"api","limit":7,"extra":1}`, 400},
		{`{"name":"api","limit":7} {"name":"api","limit":9}`, 400},
		{`{"name":"api","limit":7}garbage`, 400},
		{`{"name":"api","limit":7}]`, 400},
		{`{"name":"api","limit":1073741825}`, 400},
		{`{"name":"api","limit":9223372036854775807}`, 400},
		{`{"name":"api","limit":1e3}`, 400},
		{`not json`, 400},
		{`{"name":"other-tool-semaphore","limit":7}`, 404},
		{`{"name":"cust/never-seen","limit":7}`, 404},
	} {
		req := httptest.NewRequest("POST", "http://127.0.0.1:9090/api/limit", strings.NewReader(c.body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		s.admin.handler().ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s: %d %s, want %d", c.body, rec.Code, rec.Body, c.want)
		}
	}
	if got := s.storedLimit(t, "api"); got != 2 {
		t.Fatalf("stored limit %d after bad requests, want 2", got)
	}
}

// TestDashboardEscapesHostileNames checks every layer a hostile partition
// name or task ID passes: the JSON (no raw markup, exact round trip), the
// page (a CSP without inline script) and the script (no API that parses
// markup). The browser test checks the rendered page.
func TestDashboardEscapesHostileNames(t *testing.T) {
	b := redistest.Any(t)
	s := setupDashboard(t, b.Client, b.Prefix)
	hostile := []string{`<img src=x onerror=alert(1)>`, `"><script>alert(1)</script>`, `' onmouseover='alert(1)`, `&lt;b&gt;`}
	for i, name := range hostile {
		s.hold(t, "cust/"+name, `<svg/onload=alert(1)>`+strconv.Itoa(i)+` cust:sync "><b>:1`, 0)
	}
	st, raw := getState(t, s.admin.handler(), "127.0.0.1:9090", "")
	for _, bad := range []string{"<img", "<script", "<svg", "<b>", "&lt;b&gt;"} {
		if strings.Contains(raw, bad) {
			t.Errorf("the JSON holds %q unescaped: %s", bad, raw)
		}
	}
	for i, name := range hostile {
		l := findLimiter(st, "cust/"+name)
		if l == nil || l.Partition != name || len(l.Holders) != 1 || l.Holders[0].TaskID != `<svg/onload=alert(1)>`+strconv.Itoa(i) || l.Holders[0].Worker != `"><b>:1` {
			t.Fatalf("partition %q shown as %+v", name, l)
		}
	}

	srv := httptest.NewServer(s.admin.handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != 200 || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("GET /: %d, CSP %q", resp.StatusCode, csp)
	}
	js := dashboardFile(t, srv.URL+"/dashboard.js")
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "DOMParser", "createContextualFragment"} {
		if strings.Contains(js, sink) {
			t.Errorf("dashboard.js uses %s: data could become markup", sink)
		}
	}
	if !strings.Contains(js, "textContent") {
		t.Error("dashboard.js sets no textContent: is it the dashboard script?")
	}
}

func dashboardFile(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	return string(b)
}

func TestHolderLabelsAreTakenApart(t *testing.T) {
	for _, c := range []struct{ label, id, typ, worker string }{
		{"abc api:call host:1", "abc", "api:call", "host:1"},
		{"abc odd type host:1", "abc", "odd type", "host:1"},
		{"another-tool-label", "", "", ""},
		{"", "", "", ""},
	} {
		v := parseLabel(holderState{Label: c.label})
		if v.TaskID != c.id || v.TaskType != c.typ || v.Worker != c.worker {
			t.Errorf("parseLabel(%q) = %q %q %q", c.label, v.TaskID, v.TaskType, v.Worker)
		}
	}
}
