package limiter

import (
	"fmt"
	"time"
)

// Defaults for [Options]. The lease is long enough to ride out a typical
// Sentinel failover or network blip (renewals every 10 s may fail twice
// before the lease is lost), and short enough that a holder killed with
// SIGKILL gives its slot back within half a minute. Renewing every third of
// a lease costs 0.1 commands per second per holder.
const (
	DefaultPrefix     = "slotguard"
	DefaultLease      = 30 * time.Second
	DefaultSleepDelay = 100 * time.Millisecond
	DefaultWaiterTTL  = 3 * time.Second
)

// Options tunes a [Semaphore]. The zero value of every field means its
// documented default.
type Options struct {
	// Prefix starts every Redis key and the grant channel. Default
	// "slotguard". Processes share a semaphore only when they use the same
	// prefix and name.
	Prefix string

	// Lease is how long a granted slot stays held without a renewal. Default
	// 30s. A holder that dies gives its slot back at most one lease after its
	// last renewal.
	Lease time.Duration

	// RenewInterval is how often a held permit renews its lease. Default
	// Lease/3. It must be shorter than Lease.
	RenewInterval time.Duration

	// SleepDelay is the seed's acquire_sleep_delay: how often a process
	// re-checks its waiting acquires in one Redis call, as a safety net for
	// lost wake-ups. Default 100ms. Waiters are woken by Pub/Sub, not by this.
	SleepDelay time.Duration

	// AcquireTimeout is the seed's acquire_timeout: the longest an Acquire
	// waits. Default 0: wait until ctx is done.
	AcquireTimeout time.Duration

	// WaiterTTL is how long a queued waiter stays in the queue without a
	// heartbeat (each safety-net re-check is one). Default 3s, and at least
	// twice SleepDelay. A waiter whose process died blocks the queue no longer
	// than this.
	WaiterTTL time.Duration

	// SyncReplicas, when above 0, makes every grant wait until that many
	// replicas acknowledged it (Redis WAIT), for at most SyncTimeout; a grant
	// they do not acknowledge in time is given back with [ErrNotReplicated].
	// It narrows the window in which a Sentinel failover can lose a grant.
	// Default 0. Not for Cluster clients.
	SyncReplicas int

	// SyncTimeout bounds the wait for SyncReplicas. Default 100ms.
	SyncTimeout time.Duration
}

// DefaultSyncTimeout is [Options.SyncTimeout]'s default.
const DefaultSyncTimeout = 100 * time.Millisecond

func (o Options) withDefaults() Options {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if o.Lease == 0 {
		o.Lease = DefaultLease
	}
	if o.RenewInterval == 0 {
		o.RenewInterval = o.Lease / 3
	}
	if o.SleepDelay == 0 {
		o.SleepDelay = DefaultSleepDelay
	}
	if o.WaiterTTL == 0 {
		o.WaiterTTL = max(DefaultWaiterTTL, 2*o.SleepDelay)
	}
	if o.SyncTimeout == 0 {
		o.SyncTimeout = DefaultSyncTimeout
	}
	return o
}

func (o Options) validate() error {
	switch {
	case o.Lease < 0:
		return invalid("Lease must not be negative, got %v", o.Lease)
	case o.Lease > 0 && o.Lease < time.Millisecond:
		return invalid("Lease must be at least 1ms, got %v", o.Lease)
	case o.RenewInterval < 0:
		return invalid("RenewInterval must not be negative, got %v", o.RenewInterval)
	case o.SleepDelay < 0:
		return invalid("SleepDelay must not be negative, got %v", o.SleepDelay)
	case o.AcquireTimeout < 0:
		return invalid("AcquireTimeout must not be negative, got %v", o.AcquireTimeout)
	case o.WaiterTTL < 0:
		return invalid("WaiterTTL must not be negative, got %v", o.WaiterTTL)
	case o.WaiterTTL > 0 && o.WaiterTTL < time.Millisecond:
		return invalid("WaiterTTL must be at least 1ms, got %v", o.WaiterTTL)
	case o.SyncReplicas < 0:
		return invalid("SyncReplicas must not be negative, got %d", o.SyncReplicas)
	case o.SyncTimeout < 0:
		return invalid("SyncTimeout must not be negative, got %v", o.SyncTimeout)
	}
	d := o.withDefaults()
	switch {
	case d.RenewInterval >= d.Lease:
		return invalid("RenewInterval (%v) must be shorter than Lease (%v)", d.RenewInterval, d.Lease)
	case d.WaiterTTL < 2*d.SleepDelay:
		return invalid("WaiterTTL (%v) must be at least twice SleepDelay (%v)", d.WaiterTTL, d.SleepDelay)
	}
	return nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// AcquireOption changes one call of [Semaphore.Acquire] or
// [Semaphore.TryAcquire].
type AcquireOption func(*acquireConfig)

type acquireConfig struct {
	weight     int
	timeout    time.Duration
	sleepDelay time.Duration
	holder     string
}

// WithWeight acquires n slots at once. Default 1. A weight below 1 is an
// [ErrInvalid] error; one above the stored limit is [ErrWeightAboveLimit].
func WithWeight(n int) AcquireOption { return func(c *acquireConfig) { c.weight = n } }

// WithTimeout overrides [Options.AcquireTimeout] for one call (the seed's
// acquire_timeout argument). Zero waits until ctx is done.
func WithTimeout(d time.Duration) AcquireOption { return func(c *acquireConfig) { c.timeout = d } }

// WithSleepDelay overrides [Options.SleepDelay] for one call (the seed's
// acquire_sleep_delay argument).
func WithSleepDelay(d time.Duration) AcquireOption {
	return func(c *acquireConfig) { c.sleepDelay = d }
}

// WithHolder labels the permit, for example with a task ID and a worker
// name. The label is shown by [Semaphore.Info] and is stored in Redis as is.
func WithHolder(label string) AcquireOption { return func(c *acquireConfig) { c.holder = label } }

func (s *Semaphore) acquireConfig(opts []AcquireOption) (acquireConfig, error) {
	c := acquireConfig{weight: 1, timeout: s.opts.AcquireTimeout, sleepDelay: s.opts.SleepDelay}
	for _, o := range opts {
		o(&c)
	}
	switch {
	case c.weight < 1:
		return c, invalid("weight must be at least 1, got %d", c.weight)
	case c.timeout < 0:
		return c, invalid("timeout must not be negative, got %v", c.timeout)
	case c.sleepDelay < 0:
		return c, invalid("sleep delay must not be negative, got %v", c.sleepDelay)
	case c.sleepDelay == 0:
		c.sleepDelay = s.opts.SleepDelay
	}
	return c, nil
}
