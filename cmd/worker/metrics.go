package main

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slotguard/slotguard/limiter"
	"github.com/slotguard/slotguard/worker"
)

// metrics turns the guard's events and task outcomes into Prometheus series,
// and reads each limiter's state from Redis at scrape time.
type metrics struct {
	reg       *prometheus.Registry
	waited    *prometheus.HistogramVec
	acquired  *prometheus.CounterVec
	requeues  *prometheus.CounterVec
	leaseLost *prometheus.CounterVec
	released  *prometheus.CounterVec
	tasks     *prometheus.CounterVec
	state     *stateCollector
}

func newMetrics(states func(context.Context) ([]limiterState, error)) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		waited: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "slotguard_acquire_wait_seconds", Help: "Time tasks waited for a slot, by rule, counting only tasks that got one.",
			Buckets: []float64{.001, .005, .01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"rule"}),
		acquired:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slotguard_acquired_total", Help: "Slots acquired, by rule."}, []string{"rule"}),
		requeues:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slotguard_requeues_total", Help: "Tasks sent back to their queue without running, by rule and reason."}, []string{"rule", "reason"}),
		leaseLost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slotguard_lease_lost_total", Help: "Slot leases lost while their task ran, by rule."}, []string{"rule"}),
		released:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slotguard_released_total", Help: "Slots given back, by rule."}, []string{"rule"}),
		tasks:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "slotguard_tasks_total", Help: "Tasks handled by this worker, by type and outcome (success, failure, requeued, busy)."}, []string{"type", "outcome"}),
		state:     &stateCollector{read: states},
	}
	m.reg.MustRegister(m.waited, m.acquired, m.requeues, m.leaseLost, m.released, m.tasks, m.state,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return m
}

// observe is the guard's OnEvent hook.
func (m *metrics) observe(e worker.Event) {
	switch e.Kind {
	case worker.EventAcquired:
		m.acquired.WithLabelValues(e.Rule).Inc()
		m.waited.WithLabelValues(e.Rule).Observe(e.Waited.Seconds())
	case worker.EventRequeued:
		m.requeues.WithLabelValues(e.Rule, requeueReason(e.Err)).Inc()
	case worker.EventLeaseLost:
		m.leaseLost.WithLabelValues(e.Rule).Inc()
	case worker.EventReleased:
		m.released.WithLabelValues(e.Rule).Inc()
	}
}

func requeueReason(err error) string {
	switch {
	case errors.Is(err, worker.ErrRequeueRequested):
		return "busy"
	case errors.Is(err, limiter.ErrTimeout):
		return "timeout"
	case errors.Is(err, worker.ErrWaitCap):
		return "wait_cap"
	case errors.Is(err, worker.ErrShuttingDown):
		return "shutdown"
	case err == nil:
		return "unknown"
	}
	return "redis_error"
}

// limiterState is one limiter's state, as /limits and /metrics show it.
type limiterState struct {
	Rule      string        `json:"rule"`
	Name      string        `json:"name"`
	Limit     int           `json:"limit"`
	Held      int           `json:"held"`
	Free      int           `json:"free"`
	Waiting   int           `json:"waiting"`
	Fence     int64         `json:"fence"`
	Holders   []holderState `json:"holders"`
	ReadAt    time.Time     `json:"read_at"`
	ReadError string        `json:"error,omitempty"`
}

type holderState struct {
	Token     string  `json:"token"`
	Label     string  `json:"label"`
	Weight    int     `json:"weight"`
	Fence     int64   `json:"fence"`
	LeaseLeft float64 `json:"lease_left_seconds"`
}

// stateCollector reads the limiters' state from Redis at scrape time: one
// round trip per limiter.
type stateCollector struct {
	read func(context.Context) ([]limiterState, error)
}

var (
	descLimit   = prometheus.NewDesc("slotguard_limit", "The stored limit of each limiter.", []string{"rule", "limiter"}, nil)
	descHeld    = prometheus.NewDesc("slotguard_held_slots", "Slots held by live leases.", []string{"rule", "limiter"}, nil)
	descWaiting = prometheus.NewDesc("slotguard_waiting", "Tasks queued for a slot, in every process.", []string{"rule", "limiter"}, nil)
	descUp      = prometheus.NewDesc("slotguard_redis_up", "1 when the last read of the limiters' state from Redis worked.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLimit
	ch <- descHeld
	ch <- descWaiting
	ch <- descUp
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	states, err := c.read(ctx)
	up := 1.0
	if err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, up)
	for _, s := range states {
		if s.ReadError != "" {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descLimit, prometheus.GaugeValue, float64(s.Limit), s.Rule, s.Name)
		ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(s.Held), s.Rule, s.Name)
		ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(s.Waiting), s.Rule, s.Name)
	}
}
