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
	DefaultPrefix      = "slotguard"
	DefaultLease       = 30 * time.Second
	DefaultSleepDelay  = 100 * time.Millisecond
	DefaultWaiterTTL   = 3 * time.Second
	DefaultIdleTimeout = 10 * time.Minute
	DefaultTicketLease = 10 * time.Second
	DefaultSyncTimeout = 100 * time.Millisecond
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

	// SleepDelay is how often a process re-checks its waiting acquires, in
	// one Redis call for all of them, as a safety net for lost wake-ups;
	// waiters are woken by the releasing call, not by this. Default 100ms.
	SleepDelay time.Duration

	// AcquireTimeout is the longest an Acquire waits. Default 0: until ctx
	// is done.
	AcquireTimeout time.Duration

	// WaiterTTL is how long a queued waiter stays in the queue without a
	// heartbeat (each safety-net re-check is one). Default 3s, and at least
	// twice SleepDelay. A waiter whose process died blocks the queue no longer
	// than this.
	WaiterTTL time.Duration

	// IdleTimeout is how long the keys of a semaphore that nobody holds or
	// waits for stay in Redis. After it they are gone, except a limit stored
	// by [Semaphore.SetLimit]; the next use starts afresh. Default 10m.
	IdleTimeout time.Duration

	// TicketLease is how long a slot granted to a ticket stays reserved for
	// it (see [Semaphore.AcquireTicket]) before, unless the ticket was
	// redeemed, it goes to the next waiter. Default 10s.
	TicketLease time.Duration

	// OnReservation, when set, is called for every grant to a ticket that
	// this value's Redis calls made or took on and that no AcquireTicket of
	// this process is catching, so that the ticket's owner can be woken. It
	// runs on the goroutine of the call whose reply carried the grant (a
	// Release, say, returns after it), or on its own for a grant that came
	// by Pub/Sub. A value without it leaves such grants to the next value
	// that has one.
	OnReservation func(Reservation)

	// SyncReplicas, when above 0, makes every grant wait until that many
	// replicas acknowledged it (Redis WAIT), for at most SyncTimeout; a grant
	// they do not acknowledge in time is given back with [ErrNotReplicated].
	// It narrows the window in which a Sentinel failover can lose a grant.
	// Default 0. Not for Cluster clients.
	SyncReplicas int

	// SyncTimeout bounds the wait for SyncReplicas. Default 100ms.
	SyncTimeout time.Duration
}

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
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.TicketLease == 0 {
		o.TicketLease = DefaultTicketLease
	}
	if o.SyncTimeout == 0 {
		o.SyncTimeout = DefaultSyncTimeout
	}
	return o
}

// Validate reports the first problem with o as an [ErrInvalid] error: a
// negative duration or count, a duration Redis cannot count (below 1ms), or
// an inconsistent pair. It returns nil for valid options; [New] calls it.
func (o Options) Validate() error {
	for _, d := range []struct {
		name      string
		v         time.Duration
		atLeastMs bool
	}{
		{"Lease", o.Lease, true},
		{"RenewInterval", o.RenewInterval, false},
		{"SleepDelay", o.SleepDelay, false},
		{"AcquireTimeout", o.AcquireTimeout, false},
		{"WaiterTTL", o.WaiterTTL, true},
		{"IdleTimeout", o.IdleTimeout, true},
		{"TicketLease", o.TicketLease, true},
		{"SyncTimeout", o.SyncTimeout, false},
	} {
		switch {
		case d.v < 0:
			return invalid("%s must not be negative, got %v", d.name, d.v)
		case d.atLeastMs && d.v > 0 && d.v < time.Millisecond:
			return invalid("%s must be at least 1ms, got %v", d.name, d.v)
		}
	}
	if o.SyncReplicas < 0 {
		return invalid("SyncReplicas must not be negative, got %d", o.SyncReplicas)
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

// AcquireOption changes one call of [Semaphore.Acquire],
// [Semaphore.TryAcquire] or [Semaphore.AcquireTicket].
type AcquireOption func(*acquireConfig)

type acquireConfig struct {
	weight     int
	timeout    time.Duration
	sleepDelay time.Duration
	holder     string
	token      string // CancelTicket: the ticket's token, when known
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
