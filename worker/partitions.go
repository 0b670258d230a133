package worker

import (
	"context"
	"time"
)

// partitionIdle is how long a partition's semaphore stays in a guard's
// memory after its last use, once nothing of this process holds, waits
// for or catches one of its slots. Its keys leave Redis after the
// limiter's own IdleTimeout.
const partitionIdle = 10 * time.Minute

// partitions remembers when each partition semaphore was last used, so
// that a producer that gives every task its own partition value does not
// grow the guard without bound.
type partitions struct {
	used      map[string]time.Time // by semaphore name
	idleAfter time.Duration
	swept     time.Time
}

// dropIdleLocked forgets the partition semaphores unused for idleAfter
// that are idle in this process (see limiter.Semaphore.Idle), at most once
// per tenth of idleAfter. g.mu must be held.
func (g *Guard) dropIdleLocked(now time.Time) {
	p := &g.parts
	if now.Sub(p.swept) < p.idleAfter/10 {
		return
	}
	p.swept = now
	for name, last := range p.used {
		if now.Sub(last) < p.idleAfter {
			continue
		}
		if s := g.sems[name]; s != nil && !s.Idle() {
			continue
		}
		delete(g.sems, name)
		delete(p.used, name)
	}
}

// sweepIdle drops idle partition semaphores every tenth of idleAfter until
// ctx ends, so that a worker lets go of partitions it no longer sees even
// when no task comes.
func (g *Guard) sweepIdle(ctx context.Context) {
	g.mu.Lock()
	every := g.parts.idleAfter / 10
	g.mu.Unlock()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			g.mu.Lock()
			g.dropIdleLocked(now)
			g.mu.Unlock()
		}
	}
}
