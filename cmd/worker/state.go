package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/limiter"
	"github.com/slotguard/slotguard/worker"
)

// stateReader reads limiters' state from Redis for /limits, /metrics and the
// dashboard. It knows every limiter of this worker's rules, from a SCAN
// (every listTTL, in the background once there is a first list) and from
// the guard's events, which name a new limiter at once. Reading a limiter's
// state costs a round trip, so it reads only a page of them at a time (see
// page.go): with a partition per customer there may be 100,000.
type stateReader struct {
	rdb    redis.UniversalClient
	prefix string
	rules  map[string]worker.Rule // by name
	// local, if set, says how busy this worker keeps each limiter (see
	// recorder.activity); it ranks limiters no page has read yet.
	local func() map[string]int

	mu       sync.Mutex // never held across a Redis call
	names    map[string]struct{}
	sorted   []string            // the last listing, sorted: the sweep walks it
	fresh    map[string]struct{} // noticed since the current listing began
	listedAt time.Time
	listing  bool
	used     map[string]int // held + waiting last read, for limiters read busy
	sweepAt  int            // index in sorted where the next sweep starts

	noticedMu sync.Mutex // never held with mu
	noticed   []string   // names seen in events, not yet in names

	readMu sync.Mutex // one page read at a time, so that polls share it
	pages  map[pageQuery]cachedPage
}

const (
	stateTTL = time.Second      // a page read is shared for this long
	listTTL  = 15 * time.Second // the list of limiters is refreshed this often
)

func newStateReader(rdb redis.UniversalClient, cfg worker.Config) *stateReader {
	r := &stateReader{rdb: rdb, prefix: cfg.Prefix, rules: map[string]worker.Rule{},
		names: map[string]struct{}{}, fresh: map[string]struct{}{}, used: map[string]int{}, pages: map[pageQuery]cachedPage{}}
	if r.prefix == "" {
		r.prefix = limiter.DefaultPrefix
	}
	for _, rule := range cfg.Rules {
		r.rules[rule.Name] = rule
	}
	return r
}

// ruleOf returns the rule a limiter name belongs to, if it is one of this
// worker's: the rule's own name, or "rule/partition" for a partitioned rule.
// A name that is not valid UTF-8 was made by a version before partitions
// were normalised; no task of this version uses it, so it is left out.
func (r *stateReader) ruleOf(name string) (worker.Rule, bool) {
	rule, part, partitioned := strings.Cut(name, "/")
	c, ok := r.rules[rule]
	if !ok || partitioned != (c.PartitionBy != "") || !utf8.ValidString(part) {
		return c, false
	}
	return c, true
}

// limiterState is one limiter's state, as /limits and the dashboard show it.
type limiterState struct {
	Rule      string        `json:"rule"`
	Name      string        `json:"name"`
	Limit     int           `json:"limit"`
	Held      int           `json:"held"`
	Free      int           `json:"free"`
	Waiting   int           `json:"waiting"` // parked tasks included
	Parked    int           `json:"parked"`
	Fence     int64         `json:"fence"`
	Holders   []holderState `json:"holders"`
	ReadAt    time.Time     `json:"read_at"`
	ReadError string        `json:"error,omitempty"`
}

type holderState struct {
	Token     string  `json:"token"`
	Label     string  `json:"label"`
	Weight    int     `json:"weight"`
	Fence     int64   `json:"fence"`
	LeaseLeft float64 `json:"lease_left_seconds"`
}

// notice makes the next read know the limiter name, without waiting for the
// next listing. It is cheap and safe to call from the guard's events.
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
		if _, ok := r.ruleOf(name); ok {
			r.names[name] = struct{}{}
			r.fresh[name] = struct{}{}
		}
	}
}

// ensureListed lists the limiters in Redis when that was never done, and
// starts a listing in the background when the last one is older than
// listTTL. It returns the first listing's error.
func (r *stateReader) ensureListed(ctx context.Context) error {
	r.mu.Lock()
	first := r.listedAt.IsZero()
	stale := !first && time.Since(r.listedAt) > listTTL && !r.listing
	if stale {
		r.listing = true
	}
	r.mu.Unlock()
	switch {
	case first:
		return r.list(ctx)
	case stale:
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = r.list(ctx)
		}()
	}
	return nil
}

// list replaces the known names by a SCAN's, keeping those noticed while it
// ran. On error the known names stay as they were.
func (r *stateReader) list(ctx context.Context) error {
	r.mu.Lock()
	r.fresh = map[string]struct{}{}
	r.mu.Unlock()
	all, err := limiter.List(ctx, r.rdb, r.prefix)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.listing = false
	if err != nil {
		return err
	}
	names := make(map[string]struct{}, len(all))
	sorted := make([]string, 0, len(all))
	for _, name := range all {
		if _, ok := r.ruleOf(name); ok {
			names[name] = struct{}{}
			sorted = append(sorted, name)
		}
	}
	for name := range r.fresh {
		names[name] = struct{}{}
	}
	r.names, r.sorted, r.listedAt = names, sorted, time.Now()
	r.sweepAt %= max(1, len(sorted))
	for name := range r.used {
		if _, ok := names[name]; !ok {
			delete(r.used, name)
		}
	}
	return nil
}

// known reports whether name is a limiter of this worker's rules that has
// been used.
func (r *stateReader) known(ctx context.Context, name string) (bool, error) {
	if err := r.ensureListed(ctx); err != nil {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addNoticed()
	_, ok := r.names[name]
	return ok, nil
}

// readOne reads one limiter's state; a failed read is in its ReadError.
func (r *stateReader) readOne(ctx context.Context, name string) limiterState {
	c, _ := r.ruleOf(name)
	st := limiterState{Rule: c.Name, Name: name, ReadAt: time.Now()}
	s, err := limiter.New(r.rdb, name, max(1, c.Limit), &limiter.Options{Prefix: r.prefix})
	if err != nil {
		st.ReadError = err.Error()
		return st
	}
	info, err := s.Info(ctx)
	if err != nil {
		st.ReadError = err.Error()
		return st
	}
	st.Limit, st.Held, st.Free, st.Waiting, st.Parked, st.Fence = info.Limit, info.Held, info.Free, info.Waiting, info.Parked, info.Fence
	for _, h := range info.Holders {
		st.Holders = append(st.Holders, holderState{Token: h.Token, Label: h.Label, Weight: h.Weight, Fence: h.Fence, LeaseLeft: h.LeaseLeft.Seconds()})
	}
	return st
}

// errUnknownLimiter is setLimit's error for a name that is not a used
// limiter of this worker's rules.
var errUnknownLimiter = errors.New("no such limiter on this worker")

// setLimit changes a limiter's stored limit for every worker, as
// `enqueue limits set` does, and returns the limit before. It drops the
// cached pages, but does not list the limiters again.
func (r *stateReader) setLimit(ctx context.Context, name string, limit int) (before int, err error) {
	ok, err := r.known(ctx, name)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 0, errUnknownLimiter
	}
	s, err := limiter.New(r.rdb, name, limit, &limiter.Options{Prefix: r.prefix})
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	if err := s.SetLimit(ctx, limit); err != nil {
		return 0, err
	}
	r.readMu.Lock()
	clear(r.pages)
	r.readMu.Unlock()
	return info.Limit, nil
}

// ruleState is one rule's state for /metrics: an unpartitioned rule's one
// limiter as Redis has it, or a partitioned rule's number of partitions.
type ruleState struct {
	Rule        string
	Partitioned bool
	Partitions  int // partitioned rules: limiters known
	Limit       int // unpartitioned rules: the stored limit, held slots and waiters
	Held        int
	Waiting     int
	Parked      int
	Read        bool // the unpartitioned rule's limiter has been used and was read
}

// ruleStates returns each rule's state: one round trip per unpartitioned
// rule that has been used, none per partition, so that a scrape costs the
// same with 10 or 100,000 partitions. It returns the first error.
func (r *stateReader) ruleStates(ctx context.Context) ([]ruleState, error) {
	firstErr := r.ensureListed(ctx)
	r.mu.Lock()
	r.addNoticed()
	out := make([]ruleState, 0, len(r.rules))
	index := map[string]int{}
	for name, c := range r.rules {
		index[name] = len(out)
		out = append(out, ruleState{Rule: name, Partitioned: c.PartitionBy != ""})
	}
	var single []string
	for name := range r.names {
		rule, _, partitioned := strings.Cut(name, "/")
		if partitioned {
			out[index[rule]].Partitions++
		} else {
			single = append(single, name)
		}
	}
	r.mu.Unlock()
	for _, name := range single {
		st := r.readOne(ctx, name)
		if st.ReadError != "" {
			if firstErr == nil {
				firstErr = errors.New(st.ReadError)
			}
			continue
		}
		rs := &out[index[name]]
		rs.Limit, rs.Held, rs.Waiting, rs.Parked, rs.Read = st.Limit, st.Held, st.Waiting, st.Parked, true
	}
	return out, firstErr
}
