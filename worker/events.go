package worker

import "time"

// EventKind says what an [Event] reports.
type EventKind int

const (
	// EventAcquired: a task got a slot. Waited is the time since the task
	// began waiting for its first slot.
	EventAcquired EventKind = iota + 1
	// EventRequeued: a task went back to its queue without running. Err is
	// the cause ([limiter.ErrTimeout], [ErrWaitCap], [ErrShuttingDown] or a
	// Redis error), Delay the requeue delay and Attempt the task's requeue
	// count.
	EventRequeued
	// EventLeaseLost: a running task's slot lease was lost; its context is
	// cancelled. Held is how long the slot had been held.
	EventLeaseLost
	// EventReleased: a slot was given back. Held is how long it was held;
	// Err is set when Release failed (the lease then frees the slot).
	EventReleased
)

func (k EventKind) String() string {
	switch k {
	case EventAcquired:
		return "acquired"
	case EventRequeued:
		return "requeued"
	case EventLeaseLost:
		return "lease_lost"
	case EventReleased:
		return "released"
	}
	return "unknown"
}

// Event is one thing the guard did for one task and one semaphore. Events
// are plain values, so that a Prometheus adapter is a switch on Kind:
// counters for each kind by Rule, and a histogram of Waited.
type Event struct {
	Kind      EventKind
	Rule      string // the rule's name
	Semaphore string // the semaphore: the rule's name, or "rule/partition"
	Task      TaskRef
	Waited    time.Duration // EventAcquired, EventRequeued
	Held      time.Duration // EventReleased, EventLeaseLost
	Delay     time.Duration // EventRequeued
	Attempt   int           // EventRequeued
	NewTaskID string        // EventRequeued, when the task moved to a new ID
	Err       error
}

// TaskRef names the task an [Event] is about.
type TaskRef struct {
	ID, Type, Queue string
}
