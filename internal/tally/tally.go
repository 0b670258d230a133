// Package tally counts what tests watch from outside the code under test:
// how many times each task was served, and the most callers inside a
// section at once.
package tally

import (
	"strings"
	"sync"
	"sync/atomic"
)

// Served counts how many times each ID was served. The zero value is
// ready to use, and it is safe for concurrent use.
type Served struct {
	mu sync.Mutex
	n  map[string]int
}

// Add counts one serving of id.
func (s *Served) Add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[id]++
}

// Distinct returns how many different IDs were served.
func (s *Served) Distinct() int {
	d, _ := s.Count("")
	return d
}

// Duplicates returns how many servings repeated an ID served before.
func (s *Served) Duplicates() int {
	_, dup := s.Count("")
	return dup
}

// Count returns Distinct and Duplicates for the IDs that start with
// prefix.
func (s *Served) Count(prefix string) (distinct, duplicates int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range s.n {
		if strings.HasPrefix(id, prefix) {
			distinct++
			duplicates += c - 1
		}
	}
	return distinct, duplicates
}

// RaiseMax stores n in max if it is greater than the value there.
func RaiseMax(max *atomic.Int64, n int64) {
	for p := max.Load(); n > p && !max.CompareAndSwap(p, n); p = max.Load() {
	}
}
