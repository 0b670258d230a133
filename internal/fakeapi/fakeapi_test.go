package fakeapi

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/wait"
)

func get(t *testing.T, ctx context.Context, url string) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header.Set("X-Test", "yes")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

func TestAPICountsPeakServedAndDuplicateCalls(t *testing.T) {
	api := &API{Delay: 100 * time.Millisecond}
	url := api.Start(t)
	var wg sync.WaitGroup
	for _, n := range []string{"a", "b", "c", "a"} {
		wg.Go(func() { get(t, t.Context(), url+"/call/"+n) })
	}
	wait.Until(t, 5*time.Second, "4 requests in flight", func() bool { return api.InFlight() == 4 })
	if !api.AnyInCall([]string{"x", "c"}) || len(api.InCall()) != 3 {
		t.Errorf("in call: %v", api.InCall())
	}
	wg.Wait()
	distinct, dups := api.Count("")
	if api.Peak() != 4 || api.Requests() != 4 || distinct != 3 || dups != 1 || api.InFlight() != 0 {
		t.Fatalf("peak %d, requests %d, distinct %d, duplicates %d, in flight %d", api.Peak(), api.Requests(), distinct, dups, api.InFlight())
	}
	if h := api.Headers(); len(h) != 4 || h[0].Get("X-Test") != "yes" {
		t.Fatalf("headers: %v", h)
	}
	api.ResetPeak()
	if api.Peak() != 0 {
		t.Fatalf("peak after reset: %d", api.Peak())
	}
}

func TestAPIRepliesAndCountsOnlyWhatItServed(t *testing.T) {
	api := &API{Reply: func(n string) (int, http.Header) {
		if n == "busy" {
			return http.StatusTooManyRequests, http.Header{"Retry-After": {"1"}}
		}
		return http.StatusOK, nil
	}}
	url := api.Start(t)
	if code, h := get(t, t.Context(), url+"/call/busy"); code != 429 || h.Get("Retry-After") != "1" {
		t.Fatalf("busy call: %d %v", code, h)
	}
	if code, _ := get(t, t.Context(), url+"/call/ok"); code != 200 {
		t.Fatalf("ok call: %d", code)
	}
	if d := api.Distinct(); d != 1 {
		t.Fatalf("served %d calls, want only the one answered 200", d)
	}
}

func TestAPIAbortsOnHangupOnlyWhenAsked(t *testing.T) {
	for _, abort := range []bool{true, false} {
		api := &API{Delay: time.Second, AbortOnHangup: abort}
		url := api.Start(t)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { get(t, ctx, url+"/call/x"); close(done) }()
		wait.Until(t, 5*time.Second, "the request to arrive", func() bool { return api.InFlight() == 1 })
		cancel()
		<-done
		if abort {
			wait.Until(t, 5*time.Second, "the aborted request to end", func() bool { return api.InFlight() == 0 })
			if api.Distinct() != 0 {
				t.Fatal("an aborted call counts as served")
			}
			continue
		}
		if api.InFlight() != 1 {
			t.Fatal("a request ended with its client although AbortOnHangup is off")
		}
		wait.Until(t, 5*time.Second, "the full delay", func() bool { return api.Distinct() == 1 })
	}
}
