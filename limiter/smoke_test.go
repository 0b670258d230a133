package limiter

import (
	"testing"
	"time"

	"github.com/slotguard/slotguard/internal/redistest"
)

func TestSmoke(t *testing.T) {
	redistest.Each(t, func(t *testing.T, b redistest.Backend) {
		s, err := New(b.Client, "smoke", 1, &Options{Prefix: b.Prefix})
		if err != nil {
			t.Fatal(err)
		}
		p, err := s.Acquire(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan *Permit)
		go func() {
			p2, err := s.Acquire(t.Context(), WithTimeout(5*time.Second))
			if err != nil {
				t.Error(err)
			}
			done <- p2
		}()
		time.Sleep(200 * time.Millisecond)
		info, _ := s.Info(t.Context())
		t.Logf("%+v", info)
		start := time.Now()
		if err := p.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		p2 := <-done
		t.Logf("handoff %v fence %d->%d", time.Since(start), p.Fence(), p2.Fence())
		p2.Release(t.Context())
	})
}
