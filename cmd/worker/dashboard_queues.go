package main

import (
	"cmp"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// queueReader reads the asynq queues this worker serves for the dashboard.
// Like [stateReader], a read is shared by every caller for a second.
type queueReader struct {
	in     *asynq.Inspector
	queues []string

	mu       sync.Mutex
	cached   []queueState
	cachedAt time.Time
	err      error
}

// queueState is one queue's task counts, from asynq's Inspector.
type queueState struct {
	Queue     string `json:"queue"`
	Pending   int    `json:"pending"`
	Active    int    `json:"active"`
	Scheduled int    `json:"scheduled"`
	Retry     int    `json:"retry"`
	Archived  int    `json:"archived"`
	Paused    bool   `json:"paused"`
}

func newQueueReader(rdb redis.UniversalClient, queues map[string]int) *queueReader {
	q := &queueReader{in: asynq.NewInspectorFromRedisClient(rdb)}
	for name := range queues {
		q.queues = append(q.queues, name)
	}
	sort.Strings(q.queues)
	return q
}

// read returns each served queue's counts, at most stateTTL old. A queue
// that asynq has not created yet (nothing was ever enqueued to it) counts
// zero tasks.
func (q *queueReader) read() ([]queueState, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if time.Since(q.cachedAt) < stateTTL {
		return q.cached, q.err
	}
	known, err := q.in.Queues()
	if err != nil {
		q.cached, q.cachedAt, q.err = nil, time.Now(), err
		return nil, err
	}
	out := make([]queueState, 0, len(q.queues))
	var firstErr error
	for _, name := range q.queues {
		st := queueState{Queue: name}
		if slices.Contains(known, name) {
			info, err := q.in.GetQueueInfo(name)
			if err != nil {
				firstErr = cmp.Or(firstErr, err)
			} else {
				st.Pending, st.Active, st.Scheduled, st.Retry, st.Archived, st.Paused =
					info.Pending, info.Active, info.Scheduled, info.Retry, info.Archived, info.Paused
			}
		}
		out = append(out, st)
	}
	q.cached, q.cachedAt, q.err = out, time.Now(), firstErr
	return out, firstErr
}
