package main

import (
	"testing"
	"time"

	"github.com/slotguard/slotguard/worker"
)

// fakeClock is a settable time for the recorder.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestRecorder() (*recorder, *fakeClock) {
	c := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	r := newRecorder()
	r.now = c.now
	return r, c
}

func acquired(sem string, waited time.Duration) worker.Event {
	return worker.Event{Kind: worker.EventAcquired, Rule: sem, Semaphore: sem, Waited: waited}
}

func TestRecorderWaitPercentiles(t *testing.T) {
	r, _ := newTestRecorder()
	for i := 1; i <= 100; i++ {
		r.record(acquired("api", time.Duration(i)*time.Millisecond))
	}
	st := r.stats("api")
	if st.Acquired != 100 || st.WaitP50 != 50 || st.WaitP99 != 99 {
		t.Fatalf("100 waits of 1..100 ms: acquired %d p50 %v p99 %v", st.Acquired, st.WaitP50, st.WaitP99)
	}
	last := st.Series[len(st.Series)-1]
	if last.N != 100 || last.P50 != 50 || last.P99 != 99 {
		t.Fatalf("current bucket %+v", last)
	}
	if first := st.Series[0]; first.N != 0 || first.P50 != -1 {
		t.Fatalf("an empty bucket shows %+v", first)
	}
	if none := r.stats("never-used"); none.Acquired != 0 || none.WaitP50 != -1 || len(none.Series) != bucketCount {
		t.Fatalf("a semaphore with no events: %+v", none)
	}
}

// More acquires than a bucket keeps: the sample still stands for them all,
// and a quiet bucket's few waits do not outweigh a busy one's many.
func TestRecorderSamplesBusyBucketsByWeight(t *testing.T) {
	r, clock := newTestRecorder()
	for range 10 * samplesPerBucket {
		r.record(acquired("api", time.Second))
	}
	clock.t = clock.t.Add(bucketWidth)
	for range 10 {
		r.record(acquired("api", time.Millisecond))
	}
	st := r.stats("api")
	if st.Acquired != 10*samplesPerBucket+10 || st.WaitP50 != 1000 || st.WaitP99 != 1000 {
		t.Fatalf("acquired %d p50 %v p99 %v; want the busy bucket's 1 s to dominate", st.Acquired, st.WaitP50, st.WaitP99)
	}
}

func TestRecorderForgetsEventsOutsideItsWindow(t *testing.T) {
	r, clock := newTestRecorder()
	r.record(acquired("api", time.Second))
	r.record(worker.Event{Kind: worker.EventParked, Rule: "api", Semaphore: "api"})
	r.record(worker.Event{Kind: worker.EventLeaseLost, Rule: "api", Semaphore: "api"})
	if st := r.stats("api"); st.ParkedPerMin != 1 || st.LeaseLost != 1 {
		t.Fatalf("now: %+v", st)
	}
	clock.t = clock.t.Add(time.Minute + bucketWidth)
	if st := r.stats("api"); st.ParkedPerMin != 0 || st.LeaseLost != 1 || st.Acquired != 1 {
		t.Fatalf("a minute later: parked/min %d, lease lost %d, acquired %d", st.ParkedPerMin, st.LeaseLost, st.Acquired)
	}
	clock.t = clock.t.Add(window)
	r.record(acquired("api", time.Millisecond)) // reuses a stale bucket
	st := r.stats("api")
	if st.Acquired != 1 || st.WaitP99 != 1 || st.LeaseLost != 0 || st.LeaseLostTotal != 1 || st.ParkedTotal != 1 {
		t.Fatalf("after the window: %+v", st)
	}
}

func TestRecorderNoticesEachSemaphoreOnceAndStaysBounded(t *testing.T) {
	r, clock := newTestRecorder()
	var noticed []string
	r.onNew = func(name string) { noticed = append(noticed, name) }
	r.record(acquired("api", 0))
	r.record(acquired("api", 0))
	r.record(worker.Event{Kind: worker.EventReleased, Rule: "other", Semaphore: "other"})
	r.record(worker.Event{Kind: worker.EventRequeued}) // a handler's requeue, no slot
	if len(noticed) != 1 || noticed[0] != "api" || r.unguardedRequeues() != 1 {
		t.Fatalf("noticed %v, unguarded %d", noticed, r.unguardedRequeues())
	}
	for i := range maxRecorded + 10 {
		clock.t = clock.t.Add(time.Millisecond)
		r.record(acquired("cust/"+string(rune('a'+i%26))+time.Duration(i).String(), 0))
	}
	if n := len(r.sems); n != maxRecorded {
		t.Fatalf("%d semaphores recorded, want the cap %d", n, maxRecorded)
	}
	if _, ok := r.sems["api"]; ok {
		t.Fatal("the least recently active semaphore was kept")
	}
}
