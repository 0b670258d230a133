package main

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/slotguard/slotguard/worker"
)

// The dashboard is one static page whose script polls /api/state every
// second and builds the DOM with textContent only: task IDs and partition
// names are user input and never reach the page as markup.
//
//go:embed dashboard/index.html dashboard/dashboard.js dashboard/dashboard.css
var dashboardFiles embed.FS

// dashboardCSP forbids inline script, so that markup slipped into the page
// could not run even if it were inserted.
const dashboardCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (a *admin) dashboardRoutes(mux *http.ServeMux) {
	mux.Handle("GET /{$}", staticFile("dashboard/index.html", "text/html; charset=utf-8"))
	mux.Handle("GET /dashboard.js", staticFile("dashboard/dashboard.js", "text/javascript; charset=utf-8"))
	mux.Handle("GET /dashboard.css", staticFile("dashboard/dashboard.css", "text/css; charset=utf-8"))
	mux.HandleFunc("GET /api/state", a.apiState)
	// CrossOriginProtection rejects a POST that the browser marks as coming
	// from another site (Sec-Fetch-Site, or Origin against Host).
	mux.Handle("POST /api/limit", http.NewCrossOriginProtection().Handler(http.HandlerFunc(a.apiSetLimit)))
}

func staticFile(name, contentType string) http.Handler {
	body, err := dashboardFiles.ReadFile(name)
	if err != nil {
		panic(err) // the file is embedded: a missing one is a build mistake
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Content-Security-Policy", dashboardCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(body)
	})
}

// dashboardState is the body of GET /api/state.
type dashboardState struct {
	Now               time.Time     `json:"now"`
	Limiters          []limiterView `json:"limiters"` // a page: see page.go
	LimitersTotal     int           `json:"limiters_total"`
	LimitersMatched   int           `json:"limiters_matched"` // whose name holds the filter
	Filter            string        `json:"filter"`
	PageLimit         int           `json:"page_limit"`
	Error             string        `json:"error,omitempty"`
	Queues            []queueState  `json:"queues"`
	QueuesError       string        `json:"queues_error,omitempty"`
	UnguardedRequeues int64         `json:"unguarded_requeues"` // handler requeues of tasks holding no slot
	Edit              editAccess    `json:"edit"`
}

// limiterView is a limiter's state from Redis with this worker's recent
// events for it.
type limiterView struct {
	limiterState
	Partition   string       `json:"partition"`
	Partitioned bool         `json:"partitioned"`
	Holders     []holderView `json:"holders"`
	Events      eventStats   `json:"events"`
}

// holderView is a holder with its label, "taskID taskType workerName",
// taken apart. A label of another shape leaves the three fields empty.
type holderView struct {
	holderState
	TaskID   string `json:"task_id"`
	TaskType string `json:"task_type"`
	Worker   string `json:"worker"`
}

func parseLabel(h holderState) holderView {
	v := holderView{holderState: h}
	f := strings.Split(h.Label, " ")
	if len(f) >= 3 {
		// A worker name (host:pid) holds no space; an ID is taken to hold none.
		v.TaskID, v.TaskType, v.Worker = f[0], strings.Join(f[1:len(f)-1], " "), f[len(f)-1]
	}
	return v
}

// apiState is GET /api/state?filter=&limit=: the page of limiters the
// dashboard shows, with this worker's recent events for each, and the
// queues.
func (a *admin) apiState(w http.ResponseWriter, r *http.Request) {
	q, ok := a.readAccess(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	body := dashboardState{Now: time.Now(), Limiters: []limiterView{}, Queues: []queueState{}, Edit: a.access(r), Filter: q.Filter, PageLimit: q.Limit}
	p, err := a.states.page(ctx, q)
	if err != nil {
		body.Error = "reading limiter state from Redis failed"
	}
	body.LimitersTotal, body.LimitersMatched = p.Total, p.Matched
	for _, s := range p.Limiters {
		rule, part, partitioned := strings.Cut(s.Name, "/")
		v := limiterView{limiterState: s, Partition: part, Partitioned: partitioned, Holders: []holderView{}}
		v.Rule = rule
		for _, h := range s.Holders {
			v.Holders = append(v.Holders, parseLabel(h))
		}
		if a.events != nil {
			v.Events = a.events.stats(s.Name)
		}
		body.Limiters = append(body.Limiters, v)
	}
	if a.queues != nil {
		qs, err := a.queues.read()
		if qs != nil {
			body.Queues = qs
		}
		if err != nil {
			body.QueuesError = "reading the queues from Redis failed"
		}
	}
	if a.events != nil {
		body.UnguardedRequeues = a.events.unguardedRequeues()
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, body)
}

// editAccess says whether a request may change limits, and if not, why.
type editAccess struct {
	Allowed bool   `json:"allowed"`
	By      string `json:"by,omitempty"` // "loopback" or "token"
	// TokenRequired is true when presenting admin.token would allow it.
	TokenRequired bool   `json:"token_required"`
	Reason        string `json:"reason,omitempty"`
}

// access decides whether r may see and change limits. A loopback admin
// server allows any request that names a loopback host: a page of another
// site that reached the server by DNS rebinding names its own host, and is
// refused. Otherwise the request must present admin.token as
// "Authorization: Bearer <token>".
func (a *admin) access(r *http.Request) editAccess {
	if a.loopback && loopbackHost(r.Host) {
		return editAccess{Allowed: true, By: "loopback"}
	}
	if a.token == "" {
		if a.loopback {
			return editAccess{Reason: "This page was not loaded through a loopback address: open it through 127.0.0.1 or localhost, or set admin.token."}
		}
		return editAccess{Reason: "The admin server is not on loopback and no admin.token is configured: set admin.token to see and change limits here."}
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case !ok || got == "":
		return editAccess{TokenRequired: true, Reason: "Enter the admin token to see and change limits."}
	case subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1:
		return editAccess{TokenRequired: true, Reason: "The admin token is wrong."}
	}
	return editAccess{Allowed: true, By: "token"}
}

// loopbackHost reports whether host (a Host header, or a listener's
// host:port) names localhost or a loopback address.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// apiSetLimit is POST /api/limit with a JSON body {"name": ..., "limit": N}:
// the same change as `enqueue limits set NAME N`, for a limiter the
// dashboard shows.
func (a *admin) apiSetLimit(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "the body must be JSON (Content-Type: application/json)")
		return
	}
	acc := a.access(r)
	if !acc.Allowed {
		status := http.StatusForbidden
		if acc.TokenRequired {
			status = http.StatusUnauthorized
		}
		writeError(w, status, acc.Reason)
		return
	}
	var req struct {
		Name  string `json:"name"`
		Limit int    `json:"limit"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "the body must be {\"name\": \"...\", \"limit\": N}")
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "the body must be one JSON object, with nothing after it")
		return
	}
	if req.Limit < 1 || req.Limit > worker.MaxLimit {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("the limit must be a whole number from 1 to %d", worker.MaxLimit))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	before, err := a.states.setLimit(ctx, req.Name, req.Limit)
	switch {
	case errors.Is(err, errUnknownLimiter):
		writeError(w, http.StatusNotFound, "no such limiter on this worker")
		return
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, "storing the limit in Redis failed")
		return
	}
	if a.log != nil {
		a.log.Info("limit changed from the dashboard", "limiter", req.Name, "from", before, "to", req.Limit,
			"by", acc.By, "remote", r.RemoteAddr)
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": req.Name, "limit": req.Limit, "before": before})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
