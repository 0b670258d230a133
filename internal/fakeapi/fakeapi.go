// Package fakeapi is the third-party API that tests put behind a limit: an
// HTTP server that holds each request for a delay, counts the requests in
// flight and their peak, and records which calls it served. A call is named
// by the last part of its path ("/call/{n}" gives n), which the tests fill
// from each task's payload, so that a task served twice shows up as a
// duplicate.
package fakeapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/tally"
)

// API is the fake API. Set its exported fields before [API.Start]; the
// zero value answers every request at once with 200.
type API struct {
	// Delay is how long each request is held before its answer.
	Delay time.Duration
	// AbortOnHangup ends a request early, unserved, when its client goes
	// away, as an API that cancels work would; otherwise the request runs
	// its full delay, and counts as in flight, whatever the client does.
	AbortOnHangup bool
	// Reply, when set, chooses each call's status and headers from its
	// name; otherwise every answer is 200.
	Reply func(n string) (status int, header http.Header)

	// Served counts the calls answered 200 after their full delay.
	tally.Served

	inflight, peak, requests atomic.Int64

	mu        sync.Mutex
	calling   map[string]int // call name -> requests in flight
	peakAt    time.Time      // when the most distinct calls were in flight
	peakCalls []string       // those calls
	headers   []http.Header  // every request's headers, in arrival order
}

// Start serves a on a loopback port until the test ends, and returns its
// URL.
func (a *API) Start(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return srv.URL
}

// ServeHTTP holds the request for Delay, then answers it.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := a.inflight.Add(1)
	defer a.inflight.Add(-1)
	tally.RaiseMax(&a.peak, now)
	a.requests.Add(1)
	n := path.Base(r.URL.Path)
	a.enter(n, r.Header.Clone())
	defer a.leave(n)

	timer := time.NewTimer(a.Delay)
	defer timer.Stop()
	var hangup <-chan struct{}
	if a.AbortOnHangup {
		hangup = r.Context().Done()
	}
	select {
	case <-timer.C:
	case <-hangup:
		return
	}
	status := http.StatusOK
	if a.Reply != nil {
		var h http.Header
		status, h = a.Reply(n)
		for k, v := range h {
			w.Header()[k] = v
		}
	}
	if status == http.StatusOK {
		a.Add(n)
	}
	w.WriteHeader(status)
}

func (a *API) enter(n string, h http.Header) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.headers = append(a.headers, h)
	if a.calling == nil {
		a.calling = map[string]int{}
	}
	a.calling[n]++
	if len(a.calling) > len(a.peakCalls) {
		a.peakAt, a.peakCalls = time.Now(), nil
		for c := range a.calling {
			a.peakCalls = append(a.peakCalls, c)
		}
	}
}

func (a *API) leave(n string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.calling[n]--; a.calling[n] == 0 {
		delete(a.calling, n)
	}
}

// InFlight returns how many requests are being held now.
func (a *API) InFlight() int64 { return a.inflight.Load() }

// Peak returns the most requests held at once since the start or the last
// [API.ResetPeak].
func (a *API) Peak() int64 { return a.peak.Load() }

// Requests returns how many requests arrived, served or not.
func (a *API) Requests() int64 { return a.requests.Load() }

// Headers returns the headers of every request so far, in arrival order.
func (a *API) Headers() []http.Header {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]http.Header(nil), a.headers...)
}

// InCall returns the name of every call in flight.
func (a *API) InCall() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for n := range a.calling {
		out = append(out, n)
	}
	return out
}

// AnyInCall reports whether a call named in ns is in flight.
func (a *API) AnyInCall(ns []string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, n := range ns {
		if a.calling[n] > 0 {
			return true
		}
	}
	return false
}

// ResetPeak starts a new peak measurement from the requests in flight now.
func (a *API) ResetPeak() {
	a.peak.Store(a.inflight.Load())
	a.mu.Lock()
	a.peakAt, a.peakCalls = time.Time{}, nil
	a.mu.Unlock()
}

// PeakReport says when the most distinct calls were in flight, and which.
func (a *API) PeakReport() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return fmt.Sprintf("peak of %d distinct calls at %s: %v", len(a.peakCalls), a.peakAt.UTC().Format("15:04:05.000"), a.peakCalls)
}
