package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/worker"
)

// TestMetricsStayBoundedWithHostileInput scrapes /metrics after what task
// producers control has gone wild: a partition limiter whose name is not
// valid UTF-8 (left in Redis by an older version, whose state key never
// expires), 300 partitions in use, and 5,000 task types without a handler.
// The scrape must work, and its series must not grow with any of them.
func TestMetricsStayBoundedWithHostileInput(t *testing.T) {
	b := redistest.Real(t)
	s := setupDashboard(t, b.Client, b.Prefix)
	legacy := "cust/{\"k\":\"\xff\"}"
	s.hold(t, legacy, "task-0 cust:sync old:1", 0) // tells the recorder, as an older guard would
	s.admin.metrics.observe(worker.Event{Kind: worker.EventAcquired, Rule: "cust", Semaphore: legacy})
	usePartitions(t, s, 300)
	for i := range 300 {
		name := fmt.Sprintf("cust/p%03d", i)
		s.admin.metrics.observe(worker.Event{Kind: worker.EventAcquired, Rule: "cust", Semaphore: name})
		s.admin.metrics.observe(worker.Event{Kind: worker.EventReleased, Rule: "cust", Semaphore: name})
	}
	s.hold(t, "api", "task-1 api:call w:1", 0)
	s.admin.metrics.observe(worker.Event{Kind: worker.EventAcquired, Rule: "api", Semaphore: "api"})

	known := taskHandlers{"api:call": asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return nil })}
	h := countOutcomes(s.admin.metrics, known, known)
	for i := range 5000 {
		_ = h.ProcessTask(t.Context(), asynq.NewTask(fmt.Sprintf("junk:%d", i), nil))
	}
	_ = h.ProcessTask(t.Context(), asynq.NewTask("api:call", nil))

	rec := get(s.admin.handler(), "127.0.0.1:9090", "/metrics", "")
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d\n%.2000s", rec.Code, rec.Body)
	}
	var series []string
	for line := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(line, "slotguard_") {
			series = append(series, line)
		}
	}
	t.Logf("%d slotguard series", len(series))
	if len(series) > 80 {
		t.Fatalf("%d slotguard series; want them bounded by the rules, whatever the partitions and types:\n%s", len(series), strings.Join(series[:40], ""))
	}
	body := rec.Body.String()
	for _, want := range []string{
		`slotguard_tasks_total{outcome="failure",type="(unconfigured)"} 5000`,
		`slotguard_tasks_total{outcome="success",type="api:call"} 1`,
		`slotguard_partitions{rule="cust"} 300`,
		`slotguard_worker_held_slots{rule="cust"} 1`,
		`slotguard_held_slots{rule="api"} 1`,
		`slotguard_limit{rule="api"} 2`,
		`slotguard_redis_up 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, bad := range []string{"junk:", "p150", "\ufffd", `limiter="`} {
		if strings.Contains(body, bad) {
			t.Errorf("/metrics has a label from task input: %q", bad)
		}
	}
}

// TestScrapeSurvivesALabelPrometheusRefuses gives the collector a rule name
// that is not valid UTF-8 (which Config.Validate now refuses): the scrape
// leaves that series out instead of answering 500 with a stack trace.
func TestScrapeSurvivesALabelPrometheusRefuses(t *testing.T) {
	m := newMetrics(func(context.Context) ([]ruleState, error) {
		return []ruleState{{Rule: "ok", Read: true, Limit: 3}, {Rule: "bad\xff", Read: true, Limit: 4}}, errors.New("one read failed")
	})
	a := &admin{metrics: m}
	rec := get(a.handler(), "127.0.0.1:9090", "/metrics", "")
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `slotguard_limit{rule="ok"} 3`) || !strings.Contains(rec.Body.String(), "slotguard_redis_up 0") {
		t.Fatalf("GET /metrics: %d\n%.3000s", rec.Code, rec.Body)
	}
}
