package handlers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hibiken/asynq"
)

// Sleep waits for the payload's "ms" milliseconds (default 200), for demos
// and tests. A payload with "fail": true fails after the wait.
type Sleep struct{}

// MaxSleep caps the wait a payload may ask for.
const MaxSleep = time.Hour

// ProcessTask waits, or returns ctx's error if ctx ends first. A payload that
// is not a JSON object with a non-negative "ms" fails without retry.
func (Sleep) ProcessTask(ctx context.Context, t *asynq.Task) error {
	p := struct {
		MS   *float64 `json:"ms"`
		Fail bool     `json:"fail"`
	}{}
	if len(t.Payload()) > 0 {
		if err := json.Unmarshal(t.Payload(), &p); err != nil {
			return fmt.Errorf("handlers: sleep payload must be like {\"ms\": 200}: %v: %w", err, asynq.SkipRetry)
		}
	}
	d := 200 * time.Millisecond
	if p.MS != nil {
		if *p.MS < 0 || time.Duration(*p.MS)*time.Millisecond > MaxSleep {
			return fmt.Errorf("handlers: sleep ms must be between 0 and %d, got %v: %w", MaxSleep.Milliseconds(), *p.MS, asynq.SkipRetry)
		}
		d = time.Duration(*p.MS * float64(time.Millisecond))
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return ctx.Err()
	}
	if p.Fail {
		return fmt.Errorf("handlers: sleep asked to fail")
	}
	return nil
}
