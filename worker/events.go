package worker

import "time"

// EventKind says what an [Event] reports.
type EventKind int

const (
	// EventAcquired: a task got a slot, at once, while its goroutine held
	// it for park_after, or by redeeming the slot reserved for it when it
	// was woken. Waited is the time since its handler started.
	EventAcquired EventKind = iota + 1
	// EventParked: a task found no free slot and was parked in Redis; its
	// goroutine went back to asynq (after park_after, if it did not get the
	// slot meanwhile).
	EventParked
	// EventWoken: this process woke a parked task whose slot was granted:
	// the task is back at the head of its queue, and the slot is reserved
	// for it. Waited is the time since it was parked.
	EventWoken
	// EventRequeued: a handler returned [RequeueAfter]; the task runs again
	// after Delay. Attempt is the task's requeue count; Err the handler's
	// cause.
	EventRequeued
	// EventLeaseLost: a running task's slot lease was lost; its context is
	// cancelled. Held is how long the slot had been held.
	EventLeaseLost
	// EventReleased: a slot was given back. Held is how long it was held;
	// Err is set when Release failed (the lease then frees the slot).
	EventReleased
	// EventRedisError: a Redis call failed while a task waited for its
	// slot, or while a parked task was being woken; the guard tries again.
	// Err is the error.
	EventRedisError
)

func (k EventKind) String() string {
	switch k {
	case EventAcquired:
		return "acquired"
	case EventParked:
		return "parked"
	case EventWoken:
		return "woken"
	case EventRequeued:
		return "requeued"
	case EventLeaseLost:
		return "lease_lost"
	case EventReleased:
		return "released"
	case EventRedisError:
		return "redis_error"
	}
	return "unknown"
}

// Event is one thing the guard did for one task and one semaphore. Events
// are plain values, so that a Prometheus adapter is a switch on Kind:
// counters for each kind by Rule, and histograms of Waited.
type Event struct {
	Kind      EventKind
	Rule      string // the rule's name ("" for a handler's RequeueAfter)
	Semaphore string // the semaphore: the rule's name, or "rule/partition"
	Task      TaskRef
	Waited    time.Duration // EventAcquired, EventWoken
	Held      time.Duration // EventReleased, EventLeaseLost
	Delay     time.Duration // EventRequeued
	Attempt   int           // EventRequeued
	Err       error
}

// TaskRef names the task an [Event] is about.
type TaskRef struct {
	ID, Type, Queue string
}
