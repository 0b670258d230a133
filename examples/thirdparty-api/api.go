package main

import (
	"net/http"
	"sync/atomic"
	"time"
)

// fakeAPI is a stand-in for a third-party API with a concurrency cap: it
// answers 429 Too Many Requests to any request that arrives while limit
// others are in flight, and 200 after work otherwise. It counts what it saw.
type fakeAPI struct {
	limit int64
	work  time.Duration

	inFlight atomic.Int64
	peak     atomic.Int64
	ok       atomic.Int64
	rejected atomic.Int64
}

func (a *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := a.inFlight.Add(1)
	defer a.inFlight.Add(-1)
	for p := a.peak.Load(); n > p && !a.peak.CompareAndSwap(p, n); p = a.peak.Load() {
	}
	if n > a.limit {
		a.rejected.Add(1)
		http.Error(w, "too many concurrent requests", http.StatusTooManyRequests)
		return
	}
	time.Sleep(a.work)
	a.ok.Add(1)
	w.WriteHeader(http.StatusOK)
}
