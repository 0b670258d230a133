package tally

import (
	"sync"
	"sync/atomic"
	"testing"
)

func TestServedCountsDistinctAndDuplicates(t *testing.T) {
	var s Served
	var wg sync.WaitGroup
	for _, id := range []string{"a1", "a2", "a1", "b1", "a1"} {
		wg.Go(func() { s.Add(id) })
	}
	wg.Wait()
	if d, dup := s.Distinct(), s.Duplicates(); d != 3 || dup != 2 {
		t.Fatalf("distinct %d, duplicates %d; want 3, 2", d, dup)
	}
	if d, dup := s.Count("a"); d != 2 || dup != 2 {
		t.Fatalf("prefix a: distinct %d, duplicates %d; want 2, 2", d, dup)
	}
}

func TestRaiseMaxKeepsTheGreatest(t *testing.T) {
	var max atomic.Int64
	var wg sync.WaitGroup
	for i := range int64(100) {
		wg.Go(func() { RaiseMax(&max, i) })
	}
	wg.Wait()
	RaiseMax(&max, 5)
	if got := max.Load(); got != 99 {
		t.Fatalf("max %d, want 99", got)
	}
}
