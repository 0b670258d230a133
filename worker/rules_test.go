package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/slotguard/slotguard/internal/wait"
)

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"email:send", "email:send", true},
		{"email:send", "email:sent", false},
		{"email:*", "email:send", true},
		{"email:*", "email:", true},
		{"email:*", "emails:send", false},
		{"*:bulk", "email:bulk", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxcyyb", false},
		{"*", "", true},
	}
	for _, tt := range tests {
		if got := compilePattern(tt.pattern).match(tt.name); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.pattern, tt.name, got, tt.want)
		}
	}
}

func TestNeedsAreSortedAndPartitioned(t *testing.T) {
	var rules []*rule
	for _, r := range []Rule{
		{Name: "zeta-queue", Queues: []string{"default"}, Limit: 9},
		{Name: "export", TaskTypes: []string{"export:*"}, PartitionBy: "tenant_id", Limit: 2},
		{Name: "both", TaskTypes: []string{"export:run"}, Queues: []string{"low"}, Limit: 1},
	} {
		rules = append(rules, compileRule(r))
	}
	got := func(typ, queue, payload string) []string {
		var out []string
		for _, n := range needs(rules, typ, queue, []byte(payload)) {
			out = append(out, n.sem)
		}
		return out
	}
	for _, tt := range []struct {
		typ, queue, payload string
		want                []string
	}{
		{"export:run", "default", `{"tenant_id":"acme"}`, []string{"export/acme", "zeta-queue"}},
		{"export:run", "low", `{"tenant_id":42}`, []string{"both", "export/42"}},
		{"export:run", "high", `not json`, []string{"export/"}},
		{"email:send", "high", `{}`, nil},
	} {
		if g := got(tt.typ, tt.queue, tt.payload); fmt.Sprint(g) != fmt.Sprint(tt.want) {
			t.Errorf("needs(%s, %s, %s) = %v, want %v", tt.typ, tt.queue, tt.payload, g, tt.want)
		}
	}
}

func TestPartitionsAreLimitedSeparately(t *testing.T) {
	b := setup(t)
	g := b.guard(t, Config{Rules: []Rule{
		{Name: "export", TaskTypes: []string{"export:run"}, PartitionBy: "tenant_id", Limit: 2}}})
	var (
		mu     sync.Mutex
		gauges = map[string]*gauge{}
		all    gauge
		done   atomic.Int32
	)
	b.start(t, g, b.fastConfig(12), func(ctx context.Context, task *asynq.Task) error {
		var p struct {
			TenantID string `json:"tenant_id"`
		}
		_ = json.Unmarshal(task.Payload(), &p)
		mu.Lock()
		gg := gauges[p.TenantID]
		mu.Unlock()
		gg.enter()
		all.enter()
		time.Sleep(50 * time.Millisecond)
		all.leave()
		gg.leave()
		done.Add(1)
		return nil
	})
	tenants := []string{"a", "b", "c"}
	for _, tn := range tenants {
		gauges[tn] = &gauge{}
	}
	const perTenant = 10
	for i := range perTenant * len(tenants) {
		b.enqueue(t, "export:run", fmt.Appendf(nil, `{"tenant_id":%q}`, tenants[i%len(tenants)]))
	}
	wait.Until(t, 30*time.Second, "every task", func() bool { return done.Load() == perTenant*int32(len(tenants)) })
	for tn, gg := range gauges {
		if p := gg.peak.Load(); p > 2 {
			t.Errorf("tenant %s: %d ran at once, limit 2", tn, p)
		}
	}
	if p := all.peak.Load(); p <= 2 {
		t.Errorf("at most %d ran at once over all tenants; partitions should run side by side", p)
	}
	if n := len(g.Semaphores()); n != len(tenants) {
		t.Errorf("%d semaphores, want one per tenant", n)
	}
}

// TestMultiRuleTasksHoldEverySlot mixes tasks that need a type rule and a
// queue rule with tasks that need only the queue rule.
func TestMultiRuleTasksHoldEverySlot(t *testing.T) {
	b := setup(t)
	cfg := Config{Rules: []Rule{
		{Name: "queue", Queues: []string{b.queue}, Limit: 3},
		{Name: "api", TaskTypes: []string{"api:*"}, Limit: 2},
	}}
	g := b.guard(t, cfg)
	var api, queue gauge
	var done atomic.Int32
	b.start(t, g, b.fastConfig(10), func(ctx context.Context, task *asynq.Task) error {
		if len(FencesFromContext(ctx)) != map[bool]int{true: 2, false: 1}[task.Type() == "api:call"] {
			t.Errorf("%s holds %d fences", task.Type(), len(FencesFromContext(ctx)))
		}
		if task.Type() == "api:call" {
			api.enter()
			defer api.leave()
		}
		queue.enter()
		time.Sleep(30 * time.Millisecond)
		queue.leave()
		done.Add(1)
		return nil
	})
	const n = 40
	for i := range n {
		b.enqueue(t, map[bool]string{true: "api:call", false: "other:job"}[i%2 == 0], nil)
	}
	wait.Until(t, 30*time.Second, "every task", func() bool { return done.Load() == n })
	if p := api.peak.Load(); p > 2 {
		t.Errorf("api: %d at once, limit 2", p)
	}
	if p := queue.peak.Load(); p > 3 {
		t.Errorf("queue: %d at once, limit 3", p)
	}
	for _, name := range []string{"api", "queue"} {
		wait.Until(t, 5*time.Second, name+" to be idle", semIdle(t, b.sem(t, name, 1)))
	}
}

// TestSaturatedRuleDoesNotStarveOtherTypes mixes a saturated type A with a
// free type B on one worker and one queue, A enqueued first: A's tasks
// park, so B finishes within twice its time alone. (Before parking, A's
// waits held every goroutine and B took several times longer.)
func TestSaturatedRuleDoesNotStarveOtherTypes(t *testing.T) {
	const (
		conc  = 10
		nB    = 150
		nA    = 40
		sleep = 20 * time.Millisecond
	)
	measure := func(withA bool) time.Duration {
		b := setup(t)
		g := b.guard(t, Config{RequeueMinDelay: 200 * time.Millisecond, RequeueMaxDelay: time.Second,
			Rules: []Rule{{Name: "a", TaskTypes: []string{"a"}, Limit: 1}}})
		var doneB atomic.Int32
		if withA {
			for range nA {
				b.enqueue(t, "a", nil)
			}
		}
		for range nB {
			b.enqueue(t, "b", nil)
		}
		start := time.Now()
		b.start(t, g, b.fastConfig(conc), func(_ context.Context, task *asynq.Task) error {
			if task.Type() == "a" {
				time.Sleep(time.Second) // saturates: limit 1
				return nil
			}
			time.Sleep(sleep)
			doneB.Add(1)
			return nil
		})
		wait.Until(t, 30*time.Second, "every B task", func() bool { return doneB.Load() == nB })
		return time.Since(start)
	}
	alone := measure(false)
	mixed := measure(true)
	t.Logf("B alone %v, B mixed with saturated A %v (ratio %.2f)", alone, mixed, float64(alone)/float64(mixed))
	if mixed > 2*alone {
		t.Errorf("B took %v with A saturated, %v alone; want at most twice", mixed, alone)
	}
}

// TestWaitCapCountsEachPartitionOnItsOwn fills the wait cap of a noisy
// tenant's partition: its goroutines that hold waiting tasks are capped,
// so a quiet tenant's task still finds a goroutine and runs.
func TestWaitCapCountsEachPartitionOnItsOwn(t *testing.T) {
	b := setup(t)
	g := b.guard(t, Config{ParkAfter: time.Minute, // held until shutdown, unless capped
		Rules: []Rule{{Name: "t", TaskTypes: []string{"job"}, PartitionBy: "tenant", Limit: 1, MaxWaiting: 2}}})
	release := holdSlot(t, b.sem(t, "t/noisy", 1)) // the noisy partition is full
	defer release()
	var quietDone atomic.Bool
	b.start(t, g, b.fastConfig(3), func(_ context.Context, task *asynq.Task) error {
		if strings.Contains(string(task.Payload()), "quiet") {
			quietDone.Store(true)
		}
		return nil
	})
	for range 4 {
		b.enqueue(t, "job", []byte(`{"tenant":"noisy"}`))
	}
	// Two goroutines hold noisy tasks; the other two tasks gave theirs back.
	wait.Until(t, 10*time.Second, "the noisy tasks to be parked", func() bool { return b.events.count(EventParked) == 4 })
	b.enqueue(t, "job", []byte(`{"tenant":"quiet"}`))
	wait.Until(t, 10*time.Second, "the quiet tenant's task to run", quietDone.Load)
}
