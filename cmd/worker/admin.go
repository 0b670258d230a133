package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

// admin serves /metrics, /healthz, /readyz, /limits and the dashboard (/,
// /api/state, /api/limit). It shows no secret: no Redis URL, no header, no
// payload.
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

func (a *admin) limits(w http.ResponseWriter, r *http.Request) {
	states, err := a.states.read(r.Context())
	w.Header().Set("Content-Type", "application/json")
	body := struct {
		Limiters []limiterState `json:"limiters"`
		Error    string         `json:"error,omitempty"`
	}{Limiters: states}
	if body.Limiters == nil {
		body.Limiters = []limiterState{}
	}
	if err != nil {
		body.Error = "reading limiter state from Redis failed"
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(body)
}
