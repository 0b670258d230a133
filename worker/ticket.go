package worker

import (
	"encoding/json"
	"time"
)

// ticketKey names a task's ticket in every semaphore: its queue and ID,
// which asynq keeps unique together.
func ticketKey(t TaskRef) string { return t.Queue + "\x00" + t.ID }

// parkedTask is what a ticket carries, so that whichever process gets its
// grant can wake the task.
type parkedTask struct {
	Queue  string `json:"q"`
	ID     string `json:"id"`
	Type   string `json:"t"`
	Parked int64  `json:"at"` // Unix ms
}

func encodeParked(t TaskRef, at time.Time) string {
	b, _ := json.Marshal(parkedTask{Queue: t.Queue, ID: t.ID, Type: t.Type, Parked: at.UnixMilli()})
	return string(b)
}

func decodeParked(payload string) (TaskRef, time.Time, bool) {
	var p parkedTask
	if err := json.Unmarshal([]byte(payload), &p); err != nil || p.ID == "" {
		return TaskRef{}, time.Time{}, false
	}
	return TaskRef{ID: p.ID, Type: p.Type, Queue: p.Queue}, time.UnixMilli(p.Parked), true
}
