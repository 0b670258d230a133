package handlers

import (
	"fmt"
	"time"
)

// BusyError says the remote side is saturated (HTTP 429 or 503) and the task
// should run again later. It is not a failure.
type BusyError struct {
	Status     int
	RetryAfter time.Duration // 0 when the response named no delay
}

func (e *BusyError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("handlers: remote busy (HTTP %d), retry after %v", e.Status, e.RetryAfter)
	}
	return fmt.Sprintf("handlers: remote busy (HTTP %d)", e.Status)
}
