package main

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

// admin serves /metrics, /healthz, /readyz, /limits and the dashboard (/,
// /api/state, /api/limit). It shows no secret: no Redis URL, no header, no
// payload. /limits and /api/state, which show holder labels, partitions and
// queues, answer only the requests that may change limits (see
// admin.access): a page that reached a loopback server by DNS rebinding
// reads nothing.
type admin struct {
	rdb      redis.UniversalClient
	states   *stateReader
	metrics  *metrics
	events   *recorder    // the dashboard's recent events; may be nil
	queues   *queueReader // the dashboard's queue summary; may be nil
	log      *slog.Logger // logs limit changes; may be nil
	running  *atomic.Bool // the asynq server is processing
	token    string       // admin.token: lets a client change limits
	loopback bool         // the server listens on loopback only
}

func (a *admin) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", a.ready)
	mux.HandleFunc("GET /limits", a.limits)
	a.dashboardRoutes(mux)
	return mux
}

func (a *admin) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.rdb.Ping(ctx).Err(); err != nil {
		http.Error(w, "redis unreachable", http.StatusServiceUnavailable)
		return
	}
	if !a.running.Load() {
		http.Error(w, "worker not running", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ready\n"))
}

// limits is GET /limits: a page of limiters as JSON, the top ?limit= (50)
// by use among those whose name holds ?filter=. Like the dashboard's data,
// it answers only a request that may change limits (see admin.access).
func (a *admin) limits(w http.ResponseWriter, r *http.Request) {
	q, ok := a.readAccess(w, r)
	if !ok {
		return
	}
	p, err := a.states.page(r.Context(), q)
	body := struct {
		Limiters []limiterState `json:"limiters"`
		Total    int            `json:"limiters_total"`
		Matched  int            `json:"limiters_matched"`
		Error    string         `json:"error,omitempty"`
	}{Limiters: p.Limiters, Total: p.Total, Matched: p.Matched}
	if body.Limiters == nil {
		body.Limiters = []limiterState{}
	}
	status := http.StatusOK
	if err != nil {
		body.Error = "reading limiter state from Redis failed"
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, body)
}

// readAccess answers a refused request itself, with the reason and what
// would allow it, and reads the page query of an allowed one (answering a
// bad one with 400).
func (a *admin) readAccess(w http.ResponseWriter, r *http.Request) (pageQuery, bool) {
	if acc := a.access(r); !acc.Allowed {
		status := http.StatusForbidden
		if acc.TokenRequired {
			status = http.StatusUnauthorized
		}
		writeJSON(w, status, map[string]any{"error": acc.Reason, "edit": acc})
		return pageQuery{}, false
	}
	q, err := parsePageQuery(r.URL.Query().Get("filter"), r.URL.Query().Get("limit"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return q, false
	}
	return q, true
}
