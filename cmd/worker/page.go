package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// A page is the part of the limiters that /api/state and /limits show: the
// top N by use among those whose name holds the filter. Ranking reads no
// Redis: it uses what earlier reads found (held + waiting, all workers
// counted), then how busy this worker keeps each limiter (slots its tasks
// hold, then its acquires and requeues of the last 5 minutes), then the
// name. Unpartitioned rules' limiters come first whatever their use, as they
// are few. Only the N shown are read from Redis, plus sweepPerRead others
// taken in turn, so that a limiter busy on other workers only rises into
// view within a few sweeps. So a page costs N + sweepPerRead round trips
// and a pass over the names in memory, with 10 limiters or 100,000.

const (
	defaultPageSize = 50
	maxPageSize     = 500
	maxFilterBytes  = 200
	sweepPerRead    = 100
	maxCachedPages  = 32
)

// pageQuery selects a page: at most Limit limiters whose name contains
// Filter, case-insensitively.
type pageQuery struct {
	Filter string
	Limit  int
}

// limiterPage is a read page.
type limiterPage struct {
	Limiters []limiterState // pinned rules first, then by use, busiest first
	Total    int            // limiters of this worker's rules known
	Matched  int            // of those, limiters whose name holds the filter
	Err      error          // the first read error; Limiters hold what was read
}

type cachedPage struct {
	limiterPage
	at time.Time
}

// errPageQuery is wrapped by parsePageQuery's errors.
var errPageQuery = errors.New("bad page query")

// ranked is a limiter name with its rank keys.
type ranked struct {
	name        string
	pinned      bool
	used, local int
}

func (a ranked) before(b ranked) bool {
	if a.pinned != b.pinned {
		return a.pinned
	}
	if c := cmp.Compare(b.used, a.used); c != 0 {
		return c < 0
	}
	if c := cmp.Compare(b.local, a.local); c != 0 {
		return c < 0
	}
	return a.name < b.name
}

// page returns the page q selects, shared with other callers for stateTTL.
func (r *stateReader) page(ctx context.Context, q pageQuery) (limiterPage, error) {
	r.readMu.Lock()
	defer r.readMu.Unlock()
	if c, ok := r.pages[q]; ok && time.Since(c.at) < stateTTL {
		return c.limiterPage, c.Err
	}
	if err := r.ensureListed(ctx); err != nil {
		return limiterPage{}, err
	}
	var local map[string]int
	if r.local != nil {
		local = r.local()
	}
	top, sweep, p := r.choose(q, local)
	for _, name := range sweep {
		r.recordUse(name, r.readOne(ctx, name))
	}
	byName := map[string]ranked{}
	for _, c := range top {
		st := r.readOne(ctx, c.name)
		r.recordUse(c.name, st)
		if st.ReadError != "" && p.Err == nil {
			p.Err = errors.New(st.ReadError)
		}
		c.used = st.Held + st.Waiting
		byName[c.name] = c
		p.Limiters = append(p.Limiters, st)
	}
	slices.SortFunc(p.Limiters, func(a, b limiterState) int {
		if byName[a.Name].before(byName[b.Name]) {
			return -1
		}
		return 1
	})
	if len(r.pages) >= maxCachedPages {
		clear(r.pages)
	}
	r.pages[q] = cachedPage{limiterPage: p, at: time.Now()}
	return p, p.Err
}

// choose picks the page's limiters and the sweep's, in memory.
func (r *stateReader) choose(q pageQuery, local map[string]int) (top []ranked, sweep []string, p limiterPage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.addNoticed()
	p.Total = len(r.names)
	filter := strings.ToLower(q.Filter)
	// top is kept sorted, best first, and never longer than q.Limit.
	for name := range r.names {
		if filter != "" && !strings.Contains(strings.ToLower(name), filter) {
			continue
		}
		p.Matched++
		c := ranked{name: name, pinned: !strings.Contains(name, "/"), used: r.used[name], local: local[name]}
		if len(top) == q.Limit && !c.before(top[len(top)-1]) {
			continue
		}
		i, _ := slices.BinarySearchFunc(top, c, func(a, b ranked) int {
			if a.before(b) {
				return -1
			}
			return 1
		})
		top = slices.Insert(top, i, c)
		if len(top) > q.Limit {
			top = top[:q.Limit]
		}
	}
	shown := map[string]bool{}
	for _, c := range top {
		shown[c.name] = true
	}
	for range min(sweepPerRead, len(r.sorted)) {
		r.sweepAt %= len(r.sorted)
		if name := r.sorted[r.sweepAt]; !shown[name] {
			sweep = append(sweep, name)
		}
		r.sweepAt++
	}
	return top, sweep, p
}

// recordUse remembers a limiter's use as read, for ranking; only busy ones
// take memory.
func (r *stateReader) recordUse(name string, st limiterState) {
	if st.ReadError != "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if u := st.Held + st.Waiting; u > 0 {
		r.used[name] = u
	} else {
		delete(r.used, name)
	}
}

// parsePageQuery reads ?filter= and ?limit= (default 50, at most 500).
func parsePageQuery(filter, limit string) (pageQuery, error) {
	q := pageQuery{Filter: filter, Limit: defaultPageSize}
	if len(filter) > maxFilterBytes {
		return q, fmt.Errorf("%w: the filter is longer than %d bytes", errPageQuery, maxFilterBytes)
	}
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 || n > maxPageSize {
			return q, fmt.Errorf("%w: limit must be a whole number from 1 to %d", errPageQuery, maxPageSize)
		}
		q.Limit = n
	}
	return q, nil
}
