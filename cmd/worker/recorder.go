package main

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/slotguard/slotguard/worker"
)

// recorder keeps the last few minutes of this worker's guard events for the
// dashboard, per semaphore, in fixed time buckets: a sample of acquire waits,
// and counts of acquires, parks and lease losses. It is fed from the
// guard's OnEvent hook, so record takes one short lock and touches no Redis.
type recorder struct {
	now   func() time.Time
	onNew func(name string) // called, outside the lock, for a semaphore seen first

	mu        sync.Mutex
	sems      map[string]*semEvents
	unguarded int64 // requeues asked for by handlers of tasks that hold no slot
}

const (
	bucketWidth      = 10 * time.Second
	bucketCount      = 30 // 5 minutes of history
	samplesPerBucket = 256
	maxRecorded      = 1000 // semaphores; the least recently active is forgotten first
)

// window is how far back the recorder's figures reach.
const window = bucketWidth * bucketCount

type bucket struct {
	slot                        int64 // start time / bucketWidth: which window this bucket holds
	acquired, parked, leaseLost int
	waits                       []time.Duration // a uniform sample of the acquires' waits
}

type semEvents struct {
	buckets        [bucketCount]bucket
	leaseLostTotal int64
	parkedTotal    int64
	holding        int // slots this worker's tasks hold now: acquired minus released
	last           time.Time
}

func newRecorder() *recorder {
	return &recorder{now: time.Now, sems: map[string]*semEvents{}}
}

// record is the guard's OnEvent hook.
func (r *recorder) record(e worker.Event) {
	switch e.Kind {
	case worker.EventAcquired, worker.EventParked, worker.EventRequeued, worker.EventLeaseLost:
	case worker.EventReleased:
		r.mu.Lock()
		if s := r.sems[e.Semaphore]; s != nil && s.holding > 0 {
			s.holding--
		}
		r.mu.Unlock()
		return
	default:
		return
	}
	now := r.now()
	r.mu.Lock()
	if e.Semaphore == "" {
		if e.Kind == worker.EventRequeued {
			r.unguarded++
		}
		r.mu.Unlock()
		return
	}
	s, seen := r.sems[e.Semaphore]
	if !seen {
		r.evict()
		s = &semEvents{}
		r.sems[e.Semaphore] = s
	}
	s.last = now
	b := s.bucket(now)
	switch e.Kind {
	case worker.EventAcquired:
		s.holding++
		b.acquired++
		// Reservoir sampling: every acquire of the bucket is equally likely
		// to be among the kept waits.
		if len(b.waits) < samplesPerBucket {
			b.waits = append(b.waits, e.Waited)
		} else if i := rand.IntN(b.acquired); i < samplesPerBucket {
			b.waits[i] = e.Waited
		}
	case worker.EventParked:
		b.parked++
		s.parkedTotal++
	case worker.EventLeaseLost:
		b.leaseLost++
		s.leaseLostTotal++
	}
	r.mu.Unlock()
	if !seen && r.onNew != nil {
		r.onNew(e.Semaphore)
	}
}

// evict forgets the least recently active semaphore when the recorder is
// full, so that a partition per customer cannot grow it without bound.
func (r *recorder) evict() {
	if len(r.sems) < maxRecorded {
		return
	}
	var oldest string
	var at time.Time
	for name, s := range r.sems {
		if oldest == "" || s.last.Before(at) {
			oldest, at = name, s.last
		}
	}
	delete(r.sems, oldest)
}

func slotOf(t time.Time) int64 { return t.UnixNano() / int64(bucketWidth) }

// bucket returns the bucket for t, emptied first if it held an older window.
func (s *semEvents) bucket(t time.Time) *bucket {
	slot := slotOf(t)
	b := &s.buckets[slot%bucketCount]
	if b.slot != slot {
		*b = bucket{slot: slot, waits: b.waits[:0]}
	}
	return b
}

// eventStats is what the dashboard shows of one semaphore's recent events.
type eventStats struct {
	WaitP50        float64     `json:"wait_p50_ms"` // over the window
	WaitP99        float64     `json:"wait_p99_ms"`
	Acquired       int         `json:"acquired"`          // in the window
	ParkedPerMin   int         `json:"parked_per_minute"` // in the last minute
	LeaseLost      int         `json:"lease_lost"`        // in the window
	LeaseLostTotal int64       `json:"lease_lost_total"`  // since this worker started
	ParkedTotal    int64       `json:"parked_total"`
	WindowSeconds  int         `json:"window_seconds"`
	Series         []waitPoint `json:"series"` // one per bucket, oldest first
	BucketSeconds  int         `json:"bucket_seconds"`
}

// waitPoint is one bucket of the wait chart; P50 and P99 are -1 when no
// task got a slot in it.
type waitPoint struct {
	T   int64   `json:"t"` // the bucket's start, Unix seconds
	N   int     `json:"n"`
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
}

// stats summarises the recorded events of the semaphore name. A semaphore
// with no events gets zero counts and an empty chart.
func (r *recorder) stats(name string) eventStats {
	now := r.now()
	cur := slotOf(now)
	st := eventStats{WindowSeconds: int(window / time.Second), BucketSeconds: int(bucketWidth / time.Second)}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.sems[name]
	var all []weighted
	for slot := cur - bucketCount + 1; slot <= cur; slot++ {
		p := waitPoint{T: slot * int64(bucketWidth) / int64(time.Second), P50: -1, P99: -1}
		if s != nil {
			if b := &s.buckets[slot%bucketCount]; b.slot == slot {
				p.N = b.acquired
				st.Acquired += b.acquired
				st.LeaseLost += b.leaseLost
				if slot > cur-int64(time.Minute/bucketWidth) {
					st.ParkedPerMin += b.parked
				}
				if len(b.waits) > 0 {
					w := float64(b.acquired) / float64(len(b.waits))
					var one []weighted
					for _, d := range b.waits {
						one = append(one, weighted{d, w})
					}
					p.P50, p.P99 = quantile(one, .5), quantile(one, .99)
					all = append(all, one...)
				}
			}
		}
		st.Series = append(st.Series, p)
	}
	if s != nil {
		st.LeaseLostTotal, st.ParkedTotal = s.leaseLostTotal, s.parkedTotal
	}
	st.WaitP50, st.WaitP99 = -1, -1
	if len(all) > 0 {
		st.WaitP50, st.WaitP99 = quantile(all, .5), quantile(all, .99)
	}
	return st
}

// activity returns, for each semaphore with recent events, how busy this
// worker keeps it: the slots its tasks hold now first, then its acquires
// and parks in the window. The dashboard ranks limiters by it without a
// Redis round trip.
func (r *recorder) activity() map[string]int {
	cur := slotOf(r.now())
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.sems))
	for name, s := range r.sems {
		n := 0
		for i := range s.buckets {
			if b := &s.buckets[i]; b.slot > cur-bucketCount {
				n += b.acquired + b.parked
			}
		}
		if score := s.holding<<20 + min(n, 1<<20-1); score > 0 {
			out[name] = score
		}
	}
	return out
}

// unguardedRequeues returns how many tasks holding no slot asked for a
// requeue since this worker started.
func (r *recorder) unguardedRequeues() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.unguarded
}

// weighted is a sampled wait standing for w acquires.
type weighted struct {
	d time.Duration
	w float64
}

// quantile returns the q-quantile of the weighted samples in milliseconds;
// it sorts xs.
func quantile(xs []weighted, q float64) float64 {
	slices.SortFunc(xs, func(a, b weighted) int { return cmp.Compare(a.d, b.d) })
	var total float64
	for _, x := range xs {
		total += x.w
	}
	target, sum := q*total, 0.0
	for _, x := range xs {
		sum += x.w
		if sum >= target {
			return ms(x.d)
		}
	}
	return ms(xs[len(xs)-1].d)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
