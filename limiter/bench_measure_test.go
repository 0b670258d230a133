package limiter

import (
	"cmp"
	"math"
	"slices"
	"sync/atomic"
	"time"
)

// benchEvent is one step of a contended worker, stamped with the wall clock
// (in Unix nanoseconds, so that the events of several processes on one
// machine can be merged).
type benchEvent struct {
	T int64
	K benchKind
	W uint16 // the worker, unique across processes
}

type benchKind uint8

const (
	evAcquireStart benchKind = iota + 1 // the worker calls acquire
	evAcquired                          // acquire returned a slot
	evRelease                           // the worker is about to release
)

// benchLoad is the outcome of a contended window.
type benchLoad struct {
	grants   int             // slots granted inside the window
	handoffs []time.Duration // release-to-next-grant gaps inside the window
	held     time.Duration   // the slot time the holders used inside the window
	byWorker map[uint16]int  // grants inside the window per worker
}

// spread returns the fewest and the most grants a worker got in the window,
// out of workers workers.
func (l benchLoad) spread(workers int) (least, most int) {
	least = l.byWorker[0]
	for w := range uint16(workers) {
		least, most = min(least, l.byWorker[w]), max(most, l.byWorker[w])
	}
	return least, most
}

// analyzeLoad replays the merged events in time order. A release made while
// some worker is inside acquire frees a slot that a waiter wants; it is
// matched, in order, with the next grant, and the gap between them is a
// handoff. At most limit slots can be free at once, so older unmatched
// releases are dropped. Grants and handoffs count when the grant falls
// inside [from, to); held counts each hold's part inside it.
func analyzeLoad(events []benchEvent, limit int, from, to int64) benchLoad {
	slices.SortStableFunc(events, func(a, b benchEvent) int { return cmp.Compare(a.T, b.T) })
	var (
		out     = benchLoad{byWorker: map[uint16]int{}}
		waiting int
		freed   []int64
		since   = map[uint16]int64{} // worker -> when its slot was granted
	)
	for _, e := range events {
		in := e.T >= from && e.T < to
		switch e.K {
		case evAcquireStart:
			waiting++
		case evAcquired:
			since[e.W] = e.T
			waiting--
			if in {
				out.grants++
				out.byWorker[e.W]++
			}
			if len(freed) > 0 {
				if in {
					out.handoffs = append(out.handoffs, time.Duration(e.T-freed[0]))
				}
				freed = freed[1:]
			}
		case evRelease:
			if t0, ok := since[e.W]; ok {
				out.held += time.Duration(max(0, min(e.T, to)-max(t0, from)))
			}
			if waiting > 0 {
				freed = append(freed, e.T)
				if len(freed) > limit {
					freed = freed[1:]
				}
			}
		}
	}
	return out
}

// percentileMs returns the p-th percentile (0 < p <= 100) of ds in
// milliseconds, by the nearest-rank method; NaN when ds is empty.
func percentileMs(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return math.NaN()
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	return float64(s[i]) / float64(time.Millisecond)
}

// meanDuration returns the mean of ds, or 0 when ds is empty.
func meanDuration(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

// holderCount counts the holders that are inside their critical section,
// outside the semaphore under test, and remembers the most at once. Its two
// words may live in memory shared by several processes (see mapHolderCount).
type holderCount struct {
	cur, max *int64
}

func newHolderCount() holderCount {
	w := new([2]int64)
	return holderCount{&w[0], &w[1]}
}

func (c holderCount) enter() {
	n := atomic.AddInt64(c.cur, 1)
	for {
		m := atomic.LoadInt64(c.max)
		if n <= m || atomic.CompareAndSwapInt64(c.max, m, n) {
			return
		}
	}
}

func (c holderCount) leave() { atomic.AddInt64(c.cur, -1) }

func (c holderCount) most() int64 { return atomic.LoadInt64(c.max) }
