package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"
)

func isDuplicate(err error) bool {
	return errors.Is(err, asynq.ErrDuplicateTask) || errors.Is(err, asynq.ErrTaskIDConflict)
}

type taskJSON struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Queue     string    `json:"queue"`
	State     string    `json:"state"`
	ProcessAt time.Time `json:"process_at"`
	MaxRetry  int       `json:"max_retry"`
}

func enqueueOne(ctx context.Context, c *asynq.Client, t task, jsonOut bool, stdout io.Writer) error {
	info, err := c.EnqueueContext(ctx, asynq.NewTask(t.typ, t.payload), t.opts...)
	if err != nil {
		if isDuplicate(err) {
			return fmt.Errorf("not enqueued: %w", err)
		}
		return err
	}
	if jsonOut {
		return json.NewEncoder(stdout).Encode(taskJSON{ID: info.ID, Type: info.Type, Queue: info.Queue,
			State: info.State.String(), ProcessAt: info.NextProcessAt, MaxRetry: info.MaxRetry})
	}
	fmt.Fprintln(stdout, info.ID)
	return nil
}

// enqueueMany enqueues tasks over several connections at once, shows a
// progress bar when stdout is a terminal, and ends with a summary. It
// fails (exit 1) when any task failed; duplicates are reported, not failed.
func enqueueMany(ctx context.Context, c *asynq.Client, tasks []task, o options, stdout, stderr io.Writer) error {
	var enqueued, dups, failed atomic.Int64
	var outMu sync.Mutex
	next := make(chan task)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range min(o.concurrency, len(tasks)) {
		wg.Go(func() {
			for t := range next {
				info, err := c.EnqueueContext(ctx, asynq.NewTask(t.typ, t.payload), t.opts...)
				switch {
				case err == nil:
					enqueued.Add(1)
					if o.jsonOut {
						outMu.Lock()
						_ = json.NewEncoder(stdout).Encode(taskJSON{ID: info.ID, Type: info.Type, Queue: info.Queue,
							State: info.State.String(), ProcessAt: info.NextProcessAt, MaxRetry: info.MaxRetry})
						outMu.Unlock()
					}
				case isDuplicate(err):
					dups.Add(1)
				default:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		})
	}
	bar := newProgress(stdout, stderr, len(tasks))
	start := time.Now()
feed:
	for i, t := range tasks {
		select {
		case next <- t:
		case <-ctx.Done():
			failed.Add(int64(len(tasks) - i))
			break feed
		}
		bar.update(i+1, start)
	}
	close(next)
	wg.Wait()
	bar.done()
	elapsed := time.Since(start)
	fmt.Fprintf(stderr, "enqueued %d, duplicates %d, failed %d in %v (%.0f tasks/s)\n",
		enqueued.Load(), dups.Load(), failed.Load(), elapsed.Round(time.Millisecond), float64(len(tasks))/elapsed.Seconds())
	if n := failed.Load(); n > 0 {
		if err, ok := firstErr.Load().(error); ok {
			return fmt.Errorf("%d task(s) failed; the first: %w", n, err)
		}
		return fmt.Errorf("%d task(s) not enqueued: %w", n, ctx.Err())
	}
	return nil
}

// progress draws a bar with rate and ETA on stderr, only when stdout is a
// terminal.
type progress struct {
	w     io.Writer
	total int
	on    bool
	last  time.Time
}

func newProgress(stdout, stderr io.Writer, total int) *progress {
	f, ok := stdout.(*os.File)
	on := false
	if ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			on = total > 1
		}
	}
	return &progress{w: stderr, total: total, on: on}
}

func (p *progress) update(n int, start time.Time) {
	if !p.on || (time.Since(p.last) < 100*time.Millisecond && n < p.total) {
		return
	}
	p.last = time.Now()
	el := time.Since(start).Seconds()
	rate := float64(n) / max(el, 1e-9)
	eta := time.Duration(float64(p.total-n)/max(rate, 1e-9)) * time.Second
	const width = 30
	fill := width * n / p.total
	fmt.Fprintf(p.w, "\r[%-*s] %d/%d  %.0f/s  ETA %v   ", width, string(repeatRune('#', fill)), n, p.total, rate, eta.Round(time.Second))
}

func (p *progress) done() {
	if p.on {
		fmt.Fprintln(p.w)
	}
}

func repeatRune(r rune, n int) []rune {
	out := make([]rune, n)
	for i := range out {
		out[i] = r
	}
	return out
}
