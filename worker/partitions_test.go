package worker

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/slotguard/slotguard/internal/wait"
)

func TestIdlePartitionSemaphoresLeaveTheGuardsMemory(t *testing.T) {
	const tenants = 50
	b := setup(t)
	g := b.guard(t, Config{Rules: []Rule{{Name: "t", TaskTypes: []string{"job"}, PartitionBy: "tenant", Limit: 1}}})
	g.mu.Lock()
	g.parts.idleAfter = 300 * time.Millisecond
	g.mu.Unlock()
	var ran atomic.Int32
	busy := make(chan struct{})
	b.start(t, g, b.fastConfig(10), func(_ context.Context, task *asynq.Task) error {
		if string(task.Payload()) == `{"tenant":"busy"}` {
			<-busy
		}
		ran.Add(1)
		return nil
	})
	b.enqueue(t, "job", []byte(`{"tenant":"busy"}`))
	for i := range tenants {
		b.enqueue(t, "job", fmt.Appendf(nil, `{"tenant":%d}`, i))
	}
	wait.Until(t, 10*time.Second, "every other tenant's task", func() bool { return ran.Load() == tenants })
	// The busy tenant's semaphore holds a slot: it stays, the others go.
	// The server's sweeper drops them; nothing else touches the guard.
	wait.Until(t, 10*time.Second, "the idle partitions to be dropped", func() bool {
		g.mu.Lock()
		defer g.mu.Unlock()
		return len(g.sems) == 1 && g.sems["t/busy"] != nil
	})
	close(busy)
	wait.Until(t, 10*time.Second, "the busy task", func() bool { return ran.Load() == tenants+1 })
	// A dropped partition is made again when it is used again.
	b.enqueue(t, "job", []byte(`{"tenant":7}`))
	wait.Until(t, 10*time.Second, "a task of a dropped partition", func() bool { return ran.Load() == tenants+2 })
}
