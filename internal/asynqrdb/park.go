package asynqrdb

import (
	"context"
	_ "embed"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/encoding/protowire"
)

var (
	//go:embed lua/park.lua
	parkSource string
	//go:embed lua/unpark.lua
	unparkSource string
	//go:embed lua/wake.lua
	wakeSource string
	//go:embed lua/recover.lua
	recoverSource string

	parkScript    = redis.NewScript(parkSource)
	unparkScript  = redis.NewScript(unparkSource)
	wakeScript    = redis.NewScript(wakeSource)
	recoverScript = redis.NewScript(recoverSource)
)

// Task names one task of asynq.
type Task struct {
	Queue, ID string
}

func (t Task) String() string { return strconv.Quote(t.Queue) + "/" + t.ID }

// Park moves t, which the calling worker holds, to the retry set, due at
// due or at t's own deadline when that comes first, showing reason as its last error in asynq's Inspector. Its ID,
// payload, options, retry count and uniqueness lock stay as they are. It
// reports false, having changed nothing, when t is not active (it was
// deleted, or another worker's lease on it expired); a call that Redis ran
// twice reports true. It returns a wrapped Redis error on failure.
func Park(ctx context.Context, rdb redis.Scripter, t Task, due time.Time, reason string) (bool, error) {
	field := protowire.AppendTag(nil, msgFieldErrorMsg, protowire.BytesType)
	field = protowire.AppendString(field, reason)
	n, err := parkScript.Run(ctx, rdb, []string{TaskKey(t.Queue, t.ID), ActiveKey(t.Queue), LeaseKey(t.Queue), RetryKey(t.Queue)},
		t.ID, due.Unix(), field).Int64()
	if err != nil {
		return false, fmt.Errorf("asynqrdb: park task %s: %w", t, err)
	}
	return n > 0, nil
}

// Unpark gives t, which the calling worker parked and still runs, back to
// it: from the retry set to active, with an asynq lease until leaseUntil,
// and its message as it was. It reports false, having changed nothing, when
// t is not parked any more (it was woken, run from the Inspector, or
// deleted).
func Unpark(ctx context.Context, rdb redis.Scripter, t Task, leaseUntil time.Time) (bool, error) {
	n, err := unparkScript.Run(ctx, rdb, []string{TaskKey(t.Queue, t.ID), ActiveKey(t.Queue), LeaseKey(t.Queue), RetryKey(t.Queue)},
		t.ID, leaseUntil.Unix()).Int64()
	if err != nil {
		return false, fmt.Errorf("asynqrdb: unpark task %s: %w", t, err)
	}
	return n == 1, nil
}

// MarkStarted records that t's handler starts now, in its retry-th run: a
// worker that dies from now on leaves t to asynq's rules for a dead worker
// (see [Client]), and before now, to be put back at the head of its queue.
func MarkStarted(ctx context.Context, rdb redis.Cmdable, t Task, retried int) error {
	if err := rdb.HSet(ctx, TaskKey(t.Queue, t.ID), fieldStarted, retried).Err(); err != nil {
		return fmt.Errorf("asynqrdb: mark task %s started: %w", t, err)
	}
	return nil
}

// WakeResult says what Wake found.
type WakeResult int

const (
	// Gone: the task does not exist, or is neither parked, pending nor
	// active (archived, completed, scheduled or retried by asynq itself).
	Gone WakeResult = iota
	// Woken: the parked task is now at the head of its queue.
	Woken
	// Running: the task is pending or active already.
	Running
)

// Wake moves parked t to the head of its queue, with its message as it was,
// and publishes the queue's name on channel for idle workers. It returns a
// wrapped Redis error on failure.
func Wake(ctx context.Context, rdb redis.Scripter, t Task, channel string) (WakeResult, error) {
	n, err := wakeScript.Run(ctx, rdb, []string{TaskKey(t.Queue, t.ID), RetryKey(t.Queue), PendingKey(t.Queue)},
		t.ID, time.Now().UnixNano(), channel, t.Queue).Int64()
	if err != nil {
		return Gone, fmt.Errorf("asynqrdb: wake task %s: %w", t, err)
	}
	switch n {
	case 1:
		return Woken, nil
	case 2:
		return Running, nil
	}
	return Gone, nil
}
