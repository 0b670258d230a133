package main

import (
	"sync"
	"time"
)

// tally records, per tenant, the tasks that ran: how many ran at once at
// most, how many finished, and how long after the tenant's first enqueue
// the last one finished.
type tally struct {
	mu sync.Mutex
	t  map[string]*tenantStats
}

type tenantStats struct {
	running, peak, done int
	enqueued, last      time.Time // the first enqueue, the last finish
}

func newTally(tenants []string) *tally {
	t := &tally{t: map[string]*tenantStats{}}
	for _, name := range tenants {
		t.t[name] = &tenantStats{}
	}
	return t
}

// enqueuing notes that tenant's first task is being enqueued now.
func (t *tally) enqueuing(tenant string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.t[tenant]; s != nil && s.enqueued.IsZero() {
		s.enqueued = time.Now()
	}
}

// begin counts a task of tenant as running; the returned func ends it.
func (t *tally) begin(tenant string) func() {
	t.mu.Lock()
	s := t.t[tenant]
	if s == nil {
		s = &tenantStats{}
		t.t[tenant] = s
	}
	s.running++
	s.peak = max(s.peak, s.running)
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		s.running--
		s.done++
		s.last = time.Now()
		t.mu.Unlock()
	}
}

func (t *tally) get(tenant string) tenantStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.t[tenant]; s != nil {
		return *s
	}
	return tenantStats{}
}

func (t *tally) total() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, s := range t.t {
		n += s.done
	}
	return n
}
