package main

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/limiter"
	"github.com/slotguard/slotguard/worker"
)

// stateReader reads every limiter's state for /limits, /metrics and the
// dashboard. A read costs one round trip per limiter and is shared by every
// caller for a second; the list of limiters (a SCAN) is refreshed every 15 s.
type stateReader struct {
	rdb    redis.UniversalClient
	prefix string
	rules  map[string]int // rule name -> configured limit

	mu       sync.Mutex
	sems     map[string]*limiter.Semaphore
	names    []string
	listedAt time.Time
	cached   []limiterState
	cachedAt time.Time
	err      error

	noticedMu sync.Mutex // never held across a Redis call
	noticed   []string   // limiters seen in events but maybe not yet listed
}

const (
	stateTTL = time.Second
	listTTL  = 15 * time.Second
)

func newStateReader(rdb redis.UniversalClient, cfg worker.Config) *stateReader {
	r := &stateReader{rdb: rdb, prefix: cfg.Prefix, rules: map[string]int{}, sems: map[string]*limiter.Semaphore{}}
	if r.prefix == "" {
		r.prefix = limiter.DefaultPrefix
	}
	for _, rule := range cfg.Rules {
		r.rules[rule.Name] = rule.Limit
	}
	return r
}

// read returns every known limiter's state, at most stateTTL old.
func (r *stateReader) read(ctx context.Context) ([]limiterState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.cachedAt) < stateTTL {
		return r.cached, r.err
	}
	if time.Since(r.listedAt) > listTTL {
		names, err := limiter.List(ctx, r.rdb, r.prefix)
		if err != nil {
			r.cached, r.cachedAt, r.err = nil, time.Now(), err
			return nil, err
		}
		r.names, r.listedAt = names, time.Now()
	}
	r.addNoticed()
	var out []limiterState
	var firstErr error
	for _, name := range r.names {
		rule, _, _ := strings.Cut(name, "/")
		limit, ok := r.rules[rule]
		if !ok {
			continue // another worker's rule or another tool's semaphore
		}
		s := r.sems[name]
		if s == nil {
			var err error
			if s, err = limiter.New(r.rdb, name, limit, &limiter.Options{Prefix: r.prefix}); err != nil {
				continue
			}
			r.sems[name] = s
		}
		st := limiterState{Rule: rule, Name: name, ReadAt: time.Now()}
		info, err := s.Info(ctx)
		if err != nil {
			st.ReadError = err.Error()
			firstErr = err
		} else {
			st.Limit, st.Held, st.Free, st.Waiting, st.Fence = info.Limit, info.Held, info.Free, info.Waiting, info.Fence
			for _, h := range info.Holders {
				st.Holders = append(st.Holders, holderState{Token: h.Token, Label: h.Label, Weight: h.Weight, Fence: h.Fence, LeaseLeft: h.LeaseLeft.Seconds()})
			}
		}
		out = append(out, st)
	}
	r.cached, r.cachedAt, r.err = out, time.Now(), firstErr
	return out, firstErr
}

// setLimit changes a limiter's stored limit for every worker, as
// `enqueue limits set` does, and drops the cached state.
func (r *stateReader) setLimit(ctx context.Context, name string, limit int) error {
	s, err := limiter.New(r.rdb, name, limit, &limiter.Options{Prefix: r.prefix})
	if err != nil {
		return err
	}
	if err := s.SetLimit(ctx, limit); err != nil {
		return err
	}
	r.mu.Lock()
	r.cachedAt, r.listedAt = time.Time{}, time.Time{}
	r.mu.Unlock()
	return nil
}

// notice makes the next read include the limiter name, without waiting for
// the next listing. It is cheap and safe to call from the guard's events.
func (r *stateReader) notice(name string) {
	r.noticedMu.Lock()
	r.noticed = append(r.noticed, name)
	r.noticedMu.Unlock()
}

// addNoticed moves the noticed names into r.names; r.mu is held.
func (r *stateReader) addNoticed() {
	r.noticedMu.Lock()
	noticed := r.noticed
	r.noticed = nil
	r.noticedMu.Unlock()
	for _, name := range noticed {
		if !slices.Contains(r.names, name) {
			r.names = append(r.names, name)
		}
	}
	if len(noticed) > 0 {
		slices.Sort(r.names)
	}
}
