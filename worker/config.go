package worker

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slotguard/slotguard/internal/yamlx"
)

// Defaults for [Config]. The zero value of every field means its default.
const (
	DefaultParkRecheck     = 5 * time.Minute
	DefaultRequeueMinDelay = time.Second
	DefaultRequeueMaxDelay = time.Minute
)

// MaxLimit is the largest limit slotguard stores. Every way of setting a
// limit (a rule's limit, `enqueue limits set`, the dashboard) refuses a
// larger one, so that a typo cannot store a number that Redis's Lua, whose
// numbers are doubles, does not hold exactly.
const MaxLimit = 1 << 30

// Config is the limits section of a worker's configuration: the rules that
// decide which slots a task needs, and how a task waits for them. The zero
// value of every field means its documented default. Its YAML keys are
// those of the `limits:` section of cmd/worker's file; see [ParseConfig].
type Config struct {
	// ParkAfter is how long a task that found no free slot keeps its worker
	// goroutine, ready to run the moment its slot comes. The task is parked
	// in Redis from its first moment of waiting either way, so a worker that
	// dies meanwhile loses nothing; once the goroutine has gone back to
	// asynq, the task is woken (put back at the head of its queue) when its
	// slot is granted. Default 0: the goroutine goes back at once, so a
	// saturated limit never holds a goroutine. A short ParkAfter (tens of
	// milliseconds) saves the trip through the queue when slots free
	// quickly, at the price of holding goroutines that long.
	ParkAfter time.Duration `yaml:"park_after"`

	// ParkRecheck is how long a parked task stays parked before, if its slot
	// has not come, it goes back to its queue to ask again, as a safety net
	// for a slot that could not be handed to it (its place in the queue is
	// kept). Default 5m.
	ParkRecheck time.Duration `yaml:"park_recheck"`

	// AcquireTimeout is retired: a task waits for its slot parked in Redis,
	// not in a goroutine, so it no longer gives up after a while. Setting it
	// is a config error that says so; see ParkAfter.
	//
	// Deprecated: use ParkAfter.
	AcquireTimeout time.Duration `yaml:"acquire_timeout"`

	// AcquireSleepDelay is the seed's acquire_sleep_delay: how often waiting
	// acquires are re-checked as a safety net for lost wake-ups. Default
	// 100ms ([limiter.DefaultSleepDelay]). Waiters are woken by Pub/Sub, not
	// by this.
	AcquireSleepDelay time.Duration `yaml:"acquire_sleep_delay"`

	// Lease is how long a slot stays held without a renewal; a worker that
	// dies gives its slots back at most one lease later. Default 30s
	// ([limiter.DefaultLease]). Leases are renewed every Lease/3.
	Lease time.Duration `yaml:"lease"`

	// RequeueMinDelay and RequeueMaxDelay bound the exponential backoff of
	// [RequeueAfter] with a zero delay: attempt n of one task waits about
	// min(RequeueMinDelay·2^(n-1), RequeueMaxDelay), with jitter. Defaults
	// 1s and 1m. asynq's forwarder adds up to its DelayedTaskCheckInterval.
	RequeueMinDelay time.Duration `yaml:"requeue_min_delay"`
	RequeueMaxDelay time.Duration `yaml:"requeue_max_delay"`

	// SyncReplicas, when above 0, makes each grant wait until that many
	// Redis replicas acknowledged it, for at most SyncTimeout (default
	// 100ms); a grant they do not acknowledge is given back and the task
	// waits again. It narrows the limit overshoot a Sentinel failover can cause
	// (see docs/reliability.md). Default 0. Not for Redis Cluster.
	SyncReplicas int           `yaml:"sync_replicas"`
	SyncTimeout  time.Duration `yaml:"sync_timeout"`

	// Prefix starts every Redis key of the guard's semaphores and requeue
	// counters. Default "slotguard" ([limiter.DefaultPrefix]).
	Prefix string `yaml:"prefix"`

	// Rules select the semaphores each task needs. A task matched by no rule
	// runs unguarded, at no cost.
	Rules []Rule `yaml:"rules"`
}

// Rule is one limit. A task matches a rule when its type matches one of
// TaskTypes (if any are given) and its queue matches one of Queues (if any
// are given); a rule must give at least one of the two.
type Rule struct {
	// Name names the rule, and the semaphore in Redis. Required and unique.
	Name string `yaml:"name"`

	// TaskTypes are exact task types or patterns in which "*" matches any
	// run of characters, such as "email:*".
	TaskTypes []string `yaml:"task_types"`

	// Queues are exact queue names or patterns, as for TaskTypes.
	Queues []string `yaml:"queues"`

	// PartitionBy names a top-level field of the task's JSON payload. When
	// set, each value of the field gets its own semaphore of Limit slots,
	// named "Name/partition". The partition is a string's value, or any
	// other value's canonical JSON text, so that one value spelled in
	// several ways (1, 1.0, 1e0) has one semaphore; the empty string is the
	// partition `""`. Tasks whose payload lacks the field, holds null there,
	// or is not a JSON object share the no-value partition, "Name/". A
	// partition longer than [MaxPartitionBytes] keeps its first 64 bytes and
	// a hash of the whole value. Partitions are always valid UTF-8.
	PartitionBy string `yaml:"partition_by"`

	// Limit is the number of slots, from 1 to [MaxLimit]. It is written to Redis only
	// when the semaphore has no stored limit; after that the stored limit
	// wins (see [limiter.New] and [Guard.SyncLimits]).
	Limit int `yaml:"limit"`

	// MaxWaiting caps how many goroutines of this process may hold a task
	// for park_after while it waits for one of this rule's semaphores (for a
	// partitioned rule, each partition has its own cap); a task over the cap
	// gives its goroutine back at once. Default 0: no cap.
	MaxWaiting int `yaml:"max_waiting"`
}

func (c Config) withDefaults() Config {
	if c.ParkRecheck == 0 {
		c.ParkRecheck = DefaultParkRecheck
	}
	if c.RequeueMinDelay == 0 {
		c.RequeueMinDelay = DefaultRequeueMinDelay
	}
	if c.RequeueMaxDelay == 0 {
		c.RequeueMaxDelay = max(DefaultRequeueMaxDelay, c.RequeueMinDelay)
	}
	return c
}

// Validate reports every problem in c, joined, each as a [*ConfigError]
// naming the field. It returns nil for a valid config.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	nonNegative := func(field string, d time.Duration) {
		if d < 0 {
			add(field, "must not be negative, got %v", d)
		}
	}
	if c.AcquireTimeout != 0 {
		add("acquire_timeout", "is retired: a task that finds no free slot waits parked in Redis, without a goroutine and without a time limit; park_after sets how long it keeps its goroutine first (see CHANGELOG.md)")
	}
	nonNegative("park_after", c.ParkAfter)
	nonNegative("park_recheck", c.ParkRecheck)
	if c.ParkRecheck > 0 && c.ParkRecheck < time.Second {
		add("park_recheck", "must be at least 1s, got %v", c.ParkRecheck)
	}
	nonNegative("acquire_sleep_delay", c.AcquireSleepDelay)
	nonNegative("lease", c.Lease)
	nonNegative("requeue_min_delay", c.RequeueMinDelay)
	nonNegative("requeue_max_delay", c.RequeueMaxDelay)
	nonNegative("sync_timeout", c.SyncTimeout)
	if c.SyncReplicas < 0 {
		add("sync_replicas", "must not be negative, got %d", c.SyncReplicas)
	}
	if c.Lease > 0 && c.Lease < 3*time.Millisecond {
		add("lease", "must be at least 3ms, got %v", c.Lease)
	}
	if c.RequeueMaxDelay > 0 && c.RequeueMaxDelay < c.RequeueMinDelay {
		add("requeue_max_delay", "must not be shorter than requeue_min_delay (%v), got %v", c.RequeueMinDelay, c.RequeueMaxDelay)
	}
	if strings.ContainsAny(c.Prefix, "{}") {
		add("prefix", "must not contain braces, got %q", c.Prefix)
	}
	seen := map[string]int{}
	for i, r := range c.Rules {
		f := fmt.Sprintf("rules[%d]", i)
		switch {
		case r.Name == "":
			add(f+".name", "is required")
		case seen[r.Name] > 0:
			add(f+".name", "duplicates rules[%d].name %q", seen[r.Name]-1, r.Name)
		default:
			seen[r.Name] = i + 1
		}
		if strings.Contains(r.Name, "/") {
			add(f+".name", "must not contain '/', got %q", r.Name)
		}
		if !utf8.ValidString(r.Name) {
			add(f+".name", "must be valid UTF-8, got %q", r.Name)
		}
		if len(r.TaskTypes) == 0 && len(r.Queues) == 0 {
			add(f, "needs task_types or queues")
		}
		for j, p := range r.TaskTypes {
			if p == "" {
				add(fmt.Sprintf("%s.task_types[%d]", f, j), "must not be empty")
			}
		}
		for j, p := range r.Queues {
			if p == "" {
				add(fmt.Sprintf("%s.queues[%d]", f, j), "must not be empty")
			}
		}
		if r.Limit < 1 {
			add(f+".limit", "must be at least 1, got %d", r.Limit)
		}
		if r.Limit > MaxLimit {
			add(f+".limit", "must be at most %d, got %d", MaxLimit, r.Limit)
		}
		if r.MaxWaiting < 0 {
			add(f+".max_waiting", "must not be negative, got %d", r.MaxWaiting)
		}
	}
	return errors.Join(errs...)
}

// ConfigError is one problem in a [Config]: the field's path, such as
// "rules[1].limit", the YAML line when the config came from YAML (0
// otherwise), and the cause (Err, which Unwrap returns). It prints as
// `rules[1].limit (line 6): must be at least 1, got 0`. It is the error type
// of every slotguard configuration file, so that a program that embeds the
// limits section in its own file reports all its problems alike.
type ConfigError = yamlx.FieldError
