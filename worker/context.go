package worker

import "context"

// Fence is the fencing token of one slot a running task holds.
type Fence struct {
	Rule      string // the rule's name
	Semaphore string // the rule's name, or "rule/partition"
	Token     int64  // see [limiter.Permit.Fence]
}

type fencesKey struct{}

func withFences(ctx context.Context, held []*holding) context.Context {
	fs := make([]Fence, len(held))
	for i, h := range held {
		fs[i] = Fence{Rule: h.need.rule.Name, Semaphore: h.need.sem, Token: h.permit.Fence()}
	}
	return context.WithValue(ctx, fencesKey{}, fs)
}

// FencesFromContext returns the fencing tokens of every slot the running
// task holds, in acquisition order (sorted by semaphore name). It returns nil
// outside a guarded handler.
func FencesFromContext(ctx context.Context) []Fence {
	fs, _ := ctx.Value(fencesKey{}).([]Fence)
	return fs
}

// FenceFromContext returns the fencing token of the running task's first
// slot, and false outside a guarded handler. Pass it to a downstream system
// that can reject writes from a holder whose lease was lost; a task guarded
// by several rules should use [FencesFromContext].
func FenceFromContext(ctx context.Context) (int64, bool) {
	fs := FencesFromContext(ctx)
	if len(fs) == 0 {
		return 0, false
	}
	return fs[0].Token, true
}
