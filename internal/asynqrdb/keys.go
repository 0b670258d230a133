package asynqrdb

// The keys of one queue, as asynq v0.26's internal/base names them. Every
// key of a queue shares the hash tag {queue}.

func queuePrefix(queue string) string { return "asynq:{" + queue + "}:" }

// TaskKey is the hash that holds a task's message and state.
func TaskKey(queue, id string) string { return queuePrefix(queue) + "t:" + id }

// TaskKeyPrefix is TaskKey without the ID.
func TaskKeyPrefix(queue string) string { return queuePrefix(queue) + "t:" }

// PendingKey is the list of tasks ready to run; workers pop its right end.
func PendingKey(queue string) string { return queuePrefix(queue) + "pending" }

// ActiveKey is the list of tasks a worker holds.
func ActiveKey(queue string) string { return queuePrefix(queue) + "active" }

// LeaseKey is the sorted set of active tasks by lease expiry (Unix s).
func LeaseKey(queue string) string { return queuePrefix(queue) + "lease" }

// RetryKey is the sorted set of tasks due again, by Unix second.
func RetryKey(queue string) string { return queuePrefix(queue) + "retry" }

// PausedKey exists while the queue is paused.
func PausedKey(queue string) string { return queuePrefix(queue) + "paused" }

// The fields of a task's hash.
const (
	fieldState   = "state"
	fieldMarker  = "slotguard"     // set while parked: the bytes appended to msg
	fieldStarted = "slotguard_run" // the retry count of the run whose handler started
)
