package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/limiter"
)

// usePartitions makes n partition limiters of rule cust in Redis, named
// cust/p000, cust/p001..., as tasks of other workers would: each is acquired
// and released once.
func usePartitions(t *testing.T, s *dashSetup, n int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			l, err := limiter.New(s.rdb, fmt.Sprintf("cust/p%03d", i), 1, &limiter.Options{Prefix: s.prefix})
			if err == nil {
				var p *limiter.Permit
				if p, err = l.TryAcquire(t.Context()); err == nil {
					err = p.Release(t.Context())
				}
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func names(ls []limiterView) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Name)
	}
	return out
}

// TestDashboardPagesThroughManyLimiters checks the page of limiters: the
// unpartitioned rule first, then the busiest partitions, then names in
// order; the filter; the counts; and that a limiter kept busy only by other
// workers rises into view once a sweep has read it.
func TestDashboardPagesThroughManyLimiters(t *testing.T) {
	b := redistest.Real(t)
	s := setupDashboard(t, b.Client, b.Prefix)
	usePartitions(t, s, 300)
	s.hold(t, "api", "task-1 api:call w:1", 0)
	s.hold(t, "cust/p150", "task-2 cust:sync w:1", 0) // this worker's: the recorder knows
	h := s.admin.handler()

	st, _ := getStatePath(t, h, "127.0.0.1:9090", "/api/state?limit=5", "")
	if got, want := names(st.Limiters), []string{"api", "cust/p150", "cust/p000", "cust/p001", "cust/p002"}; !slices.Equal(got, want) {
		t.Fatalf("page of 5 = %q, want %q", got, want)
	}
	if st.LimitersTotal != 301 || st.LimitersMatched != 301 || st.PageLimit != 5 {
		t.Fatalf("total %d, matched %d, page limit %d; want 301, 301, 5", st.LimitersTotal, st.LimitersMatched, st.PageLimit)
	}

	st, _ = getStatePath(t, h, "127.0.0.1:9090", "/api/state?filter=P29&limit=500", "")
	if got := names(st.Limiters); len(got) != 10 || got[0] != "cust/p290" || got[9] != "cust/p299" || st.LimitersMatched != 10 || st.Filter != "P29" {
		t.Fatalf("filter P29: %q, matched %d", got, st.LimitersMatched)
	}
	st, _ = getStatePath(t, h, "127.0.0.1:9090", "/api/state", "")
	if len(st.Limiters) != defaultPageSize || st.PageLimit != defaultPageSize {
		t.Fatalf("default page: %d limiters, page limit %d; want %d", len(st.Limiters), st.PageLimit, defaultPageSize)
	}

	// Another worker's task holds cust/p250: no event tells this worker.
	other, err := limiter.New(s.rdb, "cust/p250", 1, &limiter.Options{Prefix: s.prefix})
	if err != nil {
		t.Fatal(err)
	}
	p, err := other.TryAcquire(t.Context(), limiter.WithHolder("task-3 cust:sync elsewhere:2"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release(t.Context())
	for i := range 301/sweepPerRead + 1 { // a new query each time: no cached page
		getStatePath(t, h, "127.0.0.1:9090", "/api/state?limit="+strconv.Itoa(6+i), "")
	}
	st, _ = getStatePath(t, h, "127.0.0.1:9090", "/api/state?limit=3", "")
	if got, want := names(st.Limiters), []string{"api", "cust/p150", "cust/p250"}; !slices.Equal(got, want) {
		t.Fatalf("after the sweeps, page of 3 = %q, want %q", got, want)
	}

	for _, q := range []string{"limit=0", "limit=501", "limit=x", "filter=" + strings.Repeat("a", 201)} {
		if rec := get(h, "127.0.0.1:9090", "/api/state?"+q, ""); rec.Code != http.StatusBadRequest {
			t.Errorf("GET /api/state?%.30s: %d, want 400", q, rec.Code)
		}
	}
	var lim struct {
		Limiters []limiterState `json:"limiters"`
		Total    int            `json:"limiters_total"`
	}
	rec := get(h, "127.0.0.1:9090", "/limits?limit=2", "")
	if err := json.Unmarshal(rec.Body.Bytes(), &lim); err != nil || rec.Code != 200 || len(lim.Limiters) != 2 || lim.Total != 301 {
		t.Fatalf("GET /limits?limit=2: %d %s", rec.Code, rec.Body)
	}
}

// TestReadEndpointsNeedTheSameAccessAsWrites reads /api/state and /limits
// as a DNS-rebinding page (its own host name) and as remote clients: what
// may not change a limit gets no holder label, partition or queue either.
func TestReadEndpointsNeedTheSameAccessAsWrites(t *testing.T) {
	b := redistest.Any(t)
	s := setupDashboard(t, b.Client, b.Prefix)
	s.hold(t, "cust/secret-customer", "task-1 cust:sync w:1", 0)
	const token = "t0ken"
	for _, c := range []struct {
		name     string
		loopback bool
		token    string // configured
		host     string
		given    string
		want     int
	}{
		{"loopback server, loopback host", true, "", "127.0.0.1:9090", "", 200},
		{"loopback server, localhost", true, "", "localhost:9090", "", 200},
		{"loopback server, DNS-rebound host", true, "", "attacker.example:9090", "", 403},
		{"loopback server, DNS-rebound host, token configured", true, token, "attacker.example:9090", "", 401},
		{"loopback server, other host with the token", true, token, "attacker.example:9090", token, 200},
		{"remote server without a token configured", false, "", "10.0.0.5:9090", "", 403},
		{"remote server, no token given", false, token, "10.0.0.5:9090", "", 401},
		{"remote server, wrong token", false, token, "10.0.0.5:9090", "nope", 401},
		{"remote server, right token", false, token, "10.0.0.5:9090", token, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			s.admin.loopback, s.admin.token = c.loopback, c.token
			for _, path := range []string{"/api/state", "/limits"} {
				rec := get(s.admin.handler(), c.host, path, c.given)
				if rec.Code != c.want {
					t.Fatalf("GET %s: %d %s, want %d", path, rec.Code, rec.Body, c.want)
				}
				if c.want != 200 && (strings.Contains(rec.Body.String(), "secret-customer") || strings.Contains(rec.Body.String(), "task-1")) {
					t.Fatalf("GET %s refused, but shows state: %s", path, rec.Body)
				}
				if c.want == 200 && !strings.Contains(rec.Body.String(), "secret-customer") {
					t.Fatalf("GET %s allowed, but lacks the limiter: %s", path, rec.Body)
				}
			}
			for _, path := range []string{"/", "/dashboard.js", "/metrics", "/healthz"} {
				if rec := get(s.admin.handler(), c.host, path, ""); rec.Code != 200 {
					t.Fatalf("GET %s: %d, want the page and the probes open to all", path, rec.Code)
				}
			}
		})
	}
}

// TestSetLimitOfAnUnusedOrForeignNameIs404 checks that the dashboard
// changes only limiters of this worker's rules that have been used.
func TestSetLimitOfAnUnusedOrForeignNameIs404(t *testing.T) {
	b := redistest.Any(t)
	s := setupDashboard(t, b.Client, b.Prefix)
	s.hold(t, "cust/acme", "task-1 cust:sync w:1", 0)
	if _, err := s.admin.states.setLimit(t.Context(), "cust/acme", 3); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cust/never-used", "other", "api/x", "cust"} {
		if _, err := s.admin.states.setLimit(t.Context(), name, 3); err != errUnknownLimiter {
			t.Errorf("setLimit(%q) = %v, want errUnknownLimiter", name, err)
		}
	}
	if got := s.storedLimit(t, "cust/acme"); got != 3 {
		t.Fatalf("stored limit %d, want 3", got)
	}
}
