package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/slotguard/slotguard/internal/wait"
	"github.com/slotguard/slotguard/limiter"
)

// TestRequeueNeverArchivesNorSpendsARetry drives one task through a script
// of steps: R is a requeue after a limit timeout (another holder has the
// only slot), F a run that fails, S a run that succeeds. It checks that only
// F spends a retry and counts as a failure, that nothing is archived, and
// when the task keeps its ID.
func TestRequeueNeverArchivesNorSpendsARetry(t *testing.T) {
	tests := []struct {
		name     string
		maxRetry int
		steps    string
	}{
		{"retries left", 3, "RRS"},
		{"MaxRetry(0)", 0, "RRS"},
		{"retries used up", 1, "FRRS"},
		{"failure interleaved with timeouts", 5, "RFRFRS"},
		{"last retry interleaved", 2, "RFRFRS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			t.Run("redis", func(t *testing.T) { runRequeueScript(t, setup(t), tt.maxRetry, tt.steps) })
			t.Run("miniredis", func(t *testing.T) { runRequeueScript(t, setupMini(t), tt.maxRetry, tt.steps) })
		})
	}
}

type run struct {
	id, original string
	retried      int
}

func runRequeueScript(t *testing.T, b *bundle, maxRetry int, steps string) {
	g := b.guard(t, Config{AcquireTimeout: 300 * time.Millisecond,
		Rules: []Rule{{Name: "api", TaskTypes: []string{"api:*"}, Limit: 1}}})
	other := b.sem(t, "api", 1)

	var (
		mu   sync.Mutex
		runs []run
	)
	proceed := make(chan struct{})
	running := make(chan int)
	h := func(ctx context.Context, task *asynq.Task) error {
		id, _ := asynq.GetTaskID(ctx)
		n, _ := asynq.GetRetryCount(ctx)
		mu.Lock()
		runs = append(runs, run{id: id, original: task.Headers()[OriginalIDHeader], retried: n})
		k := len(runs)
		mu.Unlock()
		running <- k
		<-proceed
		if k == strings.Count(steps, "F")+1 {
			return nil
		}
		return errors.New("boom")
	}
	b.start(t, g, b.fastConfig(4), h)

	var release func()
	if steps[0] == 'R' {
		release = holdSlot(t, other)
	}
	first := b.enqueue(t, "api:call", []byte(`{}`), asynq.MaxRetry(maxRetry))
	requeues, fails := 0, 0
	for i, step := range steps {
		switch step {
		case 'R':
			requeues++
			wait.Until(t, 10*time.Second, fmt.Sprintf("requeue %d", requeues), func() bool { return b.events.count(EventRequeued) >= requeues })
			if i+1 < len(steps) && steps[i+1] != 'R' {
				release()
			}
		case 'F', 'S':
			select {
			case <-running:
			case <-time.After(10 * time.Second):
				t.Fatalf("step %d: the task did not run", i)
			}
			if i+1 < len(steps) && steps[i+1] == 'R' {
				// Queue for the slot now, so that we get it before the
				// task's next run.
				got := make(chan func())
				go func() {
					p, err := other.Acquire(context.Background())
					if err != nil {
						t.Error(err)
					}
					got <- func() { _ = p.Release(context.Background()) }
				}()
				wait.Until(t, 5*time.Second, "our waiter", func() bool {
					info, err := other.Info(context.Background())
					return err == nil && info.Waiting == 1
				})
				proceed <- struct{}{}
				release = <-got
			} else {
				proceed <- struct{}{}
			}
			if step == 'F' {
				fails++
			}
		}
	}

	wait.Until(t, 10*time.Second, "the queue to drain", func() bool {
		qi := b.queueInfo(t)
		return qi.Size == 0 && qi.Active == 0
	})
	qi := b.queueInfo(t)
	if qi.Archived != 0 {
		t.Errorf("archived = %d, want 0", qi.Archived)
	}
	if qi.FailedTotal != fails {
		t.Errorf("failed total = %d, want %d (requeues must not count)", qi.FailedTotal, fails)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, r := range runs {
		if r.retried != i {
			t.Errorf("run %d saw retry count %d, want %d", i+1, r.retried, i)
		}
	}
	// The ID is kept while the task has retries left; otherwise the task
	// gets a new ID and names its first one in a header.
	newID := false
	for _, e := range b.events.all(EventRequeued) {
		if !errors.Is(e.Err, limiter.ErrTimeout) {
			t.Errorf("requeue cause = %v, want ErrTimeout", e.Err)
		}
		newID = newID || e.NewTaskID != ""
	}
	last := runs[len(runs)-1]
	switch {
	case !newID && last.id != first.ID:
		t.Errorf("task ID changed from %s to %s without a move", first.ID, last.id)
	case newID && (last.id == first.ID || last.original != first.ID):
		t.Errorf("moved task: ID %s, original-ID header %q; want a new ID and header %s", last.id, last.original, first.ID)
	}
	wantMove := maxRetry <= strings.Count(steps, "F")
	if newID != wantMove {
		t.Errorf("moved to a new ID = %v, want %v", newID, wantMove)
	}
	info, err := other.Info(context.Background())
	if err != nil || info.Held != 0 || info.Waiting != 0 {
		t.Errorf("semaphore after the run: %+v, %v; want nothing held or waiting", info, err)
	}
}

// TestRequeueDelayGrowsPerTask checks that the requeue count is kept per
// task, across runs, so that the backoff grows although asynq passes n = 0.
func TestRequeueDelayGrowsPerTask(t *testing.T) {
	b := setup(t)
	g := b.guard(t, Config{AcquireTimeout: 50 * time.Millisecond,
		Rules: []Rule{{Name: "api", TaskTypes: []string{"api:*"}, Limit: 1}}})
	defer holdSlot(t, b.sem(t, "api", 1))()
	b.start(t, g, b.fastConfig(2), func(context.Context, *asynq.Task) error { return nil })
	b.enqueue(t, "api:call", nil)
	wait.Until(t, 10*time.Second, "three requeues", func() bool { return b.events.count(EventRequeued) >= 3 })
	for i, e := range b.events.all(EventRequeued)[:3] {
		if e.Attempt != i+1 {
			t.Errorf("requeue %d has attempt %d", i+1, e.Attempt)
		}
	}
}

func TestExponentialBackoffStaysInItsBounds(t *testing.T) {
	f := ExponentialBackoff(100*time.Millisecond, time.Second)
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 50: time.Second} {
		for range 100 {
			if d := f(attempt); d < want/2 || d > want {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, want/2, want)
			}
		}
	}
}
