package handlers

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// HTTP calls an API with the task's payload as its JSON body.
type HTTP struct {
	Method  string
	URL     *Template
	Headers http.Header // values already expanded; never logged
	Timeout time.Duration
	// Client makes the call. Default: one that follows no redirect, so that
	// neither the headers (an API key) nor the body go to another address.
	// A Client given here follows its own CheckRedirect.
	Client *http.Client
	Log    *slog.Logger
}

// noRedirects is the default client: a redirect response is the outcome.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// ExpandEnv replaces ${VAR} in s from getenv. It reports the variables that
// are unset, so that a missing secret is a configuration error, not an empty
// header.
func ExpandEnv(s string, getenv func(string) string) (string, []string) {
	var missing []string
	out := os.Expand(s, func(k string) string {
		v := getenv(k)
		if v == "" {
			missing = append(missing, k)
		}
		return v
	})
	return out, missing
}

// ProcessTask makes the call. A 2xx response is success; 429 and 503 are a
// [*BusyError] carrying Retry-After; a redirect (3xx), which is not
// followed, and any other 4xx fail without retry ([asynq.SkipRetry]); a 5xx
// or a network error is an error asynq retries.
func (h *HTTP) ProcessTask(ctx context.Context, t *asynq.Task) error {
	u, err := h.URL.Expand(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	if h.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, h.Method, u, bytes.NewReader(t.Payload()))
	if err != nil {
		return fmt.Errorf("handlers: http request: %w: %w", err, asynq.SkipRetry)
	}
	req.Header = h.Headers.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	client := h.Client
	if client == nil {
		client = noRedirects
	}
	start := time.Now()
	resp, err := client.Do(req)
	latency := time.Since(start)
	id, _ := asynq.GetTaskID(ctx)
	if err != nil {
		h.log().WarnContext(ctx, "http call failed", "task_id", id, "type", t.Type(), "method", h.Method, "url", redactURL(u), "latency", latency, "error", err)
		return fmt.Errorf("handlers: %s %s: %w", h.Method, redactURL(u), err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	h.log().InfoContext(ctx, "http call", "task_id", id, "type", t.Type(), "method", h.Method, "url", redactURL(u), "status", resp.StatusCode, "latency", latency)
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
		return &BusyError{Status: code, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	case code >= 300 && code < 400:
		return fmt.Errorf("handlers: %s %s: HTTP %d redirect to %s not followed (set http.url to the final address): %w",
			h.Method, redactURL(u), code, redactURL(resp.Header.Get("Location")), asynq.SkipRetry)
	case code >= 400 && code < 500:
		return fmt.Errorf("handlers: %s %s: HTTP %d: %s: %w", h.Method, redactURL(u), code, strings.TrimSpace(string(body)), asynq.SkipRetry)
	default:
		return fmt.Errorf("handlers: %s %s: HTTP %d: %s", h.Method, redactURL(u), code, strings.TrimSpace(string(body)))
	}
}

func (h *HTTP) log() *slog.Logger {
	if h.Log != nil {
		return h.Log
	}
	return slog.Default()
}

// parseRetryAfter reads seconds or an HTTP date; 0 when absent or invalid.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return max(0, time.Duration(s)*time.Second)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now))
	}
	return 0
}

// redactURL hides user information and the query (which may hold keys).
func redactURL(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i] + "?…"
	}
	if i := strings.Index(s, "://"); i >= 0 {
		if j := strings.IndexByte(s[i+3:], '@'); j >= 0 && !strings.Contains(s[i+3:i+3+j], "/") {
			s = s[:i+3] + "…@" + s[i+3+j+1:]
		}
	}
	return s
}
