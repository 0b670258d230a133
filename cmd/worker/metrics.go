package main

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slotguard/slotguard/internal/handlers"
	"github.com/slotguard/slotguard/worker"
)

// metrics turns the guard's events and task outcomes into Prometheus series,
// and reads the rules' state from Redis at scrape time. No label takes a
// value from a task: series are by rule (from the configuration), by
// outcome and reason (fixed sets), and by task type only for the types that
// have a handler, so that neither partitions nor unknown task types can
// grow the number of series.
type metrics struct {
	reg       *prometheus.Registry
	waited    *prometheus.HistogramVec
	acquired  *prometheus.CounterVec
	parks     *prometheus.CounterVec
	wakes     *prometheus.CounterVec
	redisErrs *prometheus.CounterVec
	requeues  *prometheus.CounterVec
	leaseLost *prometheus.CounterVec
	released  *prometheus.CounterVec
	holding   *prometheus.GaugeVec
	tasks     *prometheus.CounterVec
	state     *stateCollector
}

// unconfiguredType is the type label of every task whose type has no
// handler.
const unconfiguredType = "(unconfigured)"

func newMetrics(states func(context.Context) ([]ruleState, error)) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		waited: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "slotguard_acquire_wait_seconds", Help: "Time tasks waited for a slot, by rule: in their handler until they got one, and parked until they were woken.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"rule"}),
		acquired:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slotguard_acquired_total", Help: "Slots acquired, by rule."}, []string{"rule"}),
		parks:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slotguard_parks_total", Help: "Tasks parked in Redis to wait for a slot, by rule."}, []string{"rule"}),
		wakes:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slotguard_wakes_total", Help: "Parked tasks this worker woke when their slot was granted, by rule."}, []string{"rule"}),
		redisErrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slotguard_redis_errors_total", Help: "Redis errors met while tasks waited for a slot or were woken (each is retried), by rule."}, []string{"rule"}),
		requeues:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slotguard_requeues_total", Help: "Tasks set to run again later, by reason: busy (an HTTP 429 or 503), handler (RequeueAfter), redis_error (the limiter's Redis calls kept failing)."}, []string{"rule", "reason"}),
		leaseLost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slotguard_lease_lost_total", Help: "Slot leases lost while their task ran, by rule."}, []string{"rule"}),
		released:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slotguard_released_total", Help: "Slots given back, by rule."}, []string{"rule"}),
		holding: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "slotguard_worker_held_slots",
			Help: "Slots this worker's tasks hold now, by rule, partitions included; sum over workers for the whole deployment."}, []string{"rule"}),
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slotguard_tasks_total",
			Help: "Tasks handled by this worker, by type and outcome (success, failure, requeued, busy); types without a handler count as " + unconfiguredType + "."}, []string{"type", "outcome"}),
		state: &stateCollector{read: states},
	}
	m.reg.MustRegister(m.waited, m.acquired, m.parks, m.wakes, m.redisErrs, m.requeues, m.leaseLost, m.released, m.holding, m.tasks, m.state,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// observe is the guard's OnEvent hook.
func (m *metrics) observe(e worker.Event) {
	switch e.Kind {
	case worker.EventAcquired:
		m.acquired.WithLabelValues(e.Rule).Inc()
		m.holding.WithLabelValues(e.Rule).Inc()
		m.waited.WithLabelValues(e.Rule).Observe(e.Waited.Seconds())
	case worker.EventParked:
		m.parks.WithLabelValues(e.Rule).Inc()
	case worker.EventWoken:
		m.wakes.WithLabelValues(e.Rule).Inc()
		m.waited.WithLabelValues(e.Rule).Observe(e.Waited.Seconds())
	case worker.EventRedisError:
		m.redisErrs.WithLabelValues(e.Rule).Inc()
	case worker.EventRequeued:
		m.requeues.WithLabelValues(e.Rule, requeueReason(e.Err)).Inc()
	case worker.EventLeaseLost:
		m.leaseLost.WithLabelValues(e.Rule).Inc()
	case worker.EventReleased:
		m.released.WithLabelValues(e.Rule).Inc()
		m.holding.WithLabelValues(e.Rule).Dec()
	}
}

// requeueReason is why a task was set to run again later: its handler
// found the API busy or asked for it, or the limiter's Redis calls kept
// failing.
func requeueReason(err error) string {
	if errors.Is(err, worker.ErrLimiterUnreachable) {
		return "redis_error"
	}
	if _, ok := errors.AsType[*handlers.BusyError](err); ok {
		return "busy"
	}
	return "handler"
}

// stateCollector reads the rules' state from Redis at scrape time: one
// round trip per unpartitioned rule, none per partition.
type stateCollector struct {
	read func(context.Context) ([]ruleState, error)
}

var (
	descLimit      = prometheus.NewDesc("slotguard_limit", "The stored limit of each unpartitioned rule.", []string{"rule"}, nil)
	descHeld       = prometheus.NewDesc("slotguard_held_slots", "Slots of each unpartitioned rule held by live leases, in every worker.", []string{"rule"}, nil)
	descWaiting    = prometheus.NewDesc("slotguard_waiting", "Tasks queued for a slot of each unpartitioned rule, in every worker, parked ones included.", []string{"rule"}, nil)
	descParked     = prometheus.NewDesc("slotguard_parked", "Tasks parked in Redis waiting for a slot of each unpartitioned rule.", []string{"rule"}, nil)
	descPartitions = prometheus.NewDesc("slotguard_partitions", "Partition limiters of each partitioned rule found in Redis.", []string{"rule"}, nil)
	descUp         = prometheus.NewDesc("slotguard_redis_up", "1 when the last read of the rules' state from Redis worked.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLimit
	ch <- descHeld
	ch <- descWaiting
	ch <- descParked
	ch <- descPartitions
	ch <- descUp
}

// Collect sends what it could read; a value Prometheus refuses is left out
// rather than failing the whole scrape.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	states, err := c.read(ctx)
	up := 1.0
	if err != nil {
		up = 0
	}
	send := func(d *prometheus.Desc, v float64, labels ...string) {
		if m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...); err == nil {
			ch <- m
		}
	}
	send(descUp, up)
	for _, s := range states {
		switch {
		case s.Partitioned:
			send(descPartitions, float64(s.Partitions), s.Rule)
		case s.Read:
			send(descLimit, float64(s.Limit), s.Rule)
			send(descHeld, float64(s.Held), s.Rule)
			send(descWaiting, float64(s.Waiting), s.Rule)
			send(descParked, float64(s.Parked), s.Rule)
		}
	}
}
