package limiter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Semaphore is a distributed counting semaphore with a limit stored in
// Redis. Every process that creates a Semaphore with the same client
// deployment, [Options.Prefix] and name shares its slots. A Semaphore is safe
// for concurrent use; create one per name and reuse it.
type Semaphore struct {
	rdb   redis.UniversalClient
	name  string
	limit int
	opts  Options
	keys  keySet
	hub   *hub

	// proc names this Semaphore value in Redis: it prefixes the tokens of
	// its live waiters and holders, and its poller heartbeats it while it
	// has live waiters queued.
	proc string

	mu       sync.Mutex
	waiters  map[string]*waiter // this value's live acquires, by token
	permits  map[string]*Permit // this value's held permits
	catching map[string]*Ticket // tickets this value catches, by token
	polling  bool               // pollLoop is running
	kick     chan struct{}      // wakes the poller early
	beat     beat               // the latest heartbeat that Redis ran
	born     int64              // the fence floor of the state last seen
	tickets  ticketWatch        // what the last reply said about tickets
	// ticketQueued is when this value last learnt that a ticket it asked
	// for is queued.
	ticketQueued time.Time
}

// beat is a call that heartbeated this value's process: when it was sent,
// and the last fence issued when it ran. A grant to one of this value's
// waiters with a greater fence was made after that call, so it lasts at
// least WaiterTTL past sent.
type beat struct {
	sent  time.Time
	fence int64
}

// New returns the semaphore name on rdb. limit is the seed's value: the
// number of slots. It is used while no limit is stored in Redis; once
// [Semaphore.SetLimit] stores one, the stored limit wins, for every
// process at once. opts may be nil for the defaults.
//
// New does not talk to Redis. It returns an [ErrInvalid] error, and writes
// nothing, when rdb is nil, name is empty, limit is below 1 or opts fails
// [Options.Validate].
func New(rdb redis.UniversalClient, name string, limit int, opts *Options) (*Semaphore, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	switch {
	case rdb == nil:
		return nil, invalid("nil Redis client")
	case name == "":
		return nil, invalid("empty semaphore name")
	case limit < 1:
		return nil, invalid("limit must be at least 1, got %d", limit)
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if _, ok := rdb.(*redis.ClusterClient); ok && o.SyncReplicas > 0 {
		return nil, invalid("SyncReplicas does not work with a Cluster client")
	}
	o = o.withDefaults()
	keys := newKeySet(o.Prefix, name)
	return &Semaphore{
		rdb:      rdb,
		name:     name,
		limit:    limit,
		opts:     o,
		keys:     keys,
		hub:      hubFor(rdb, keys.channel),
		proc:     randomID(8),
		waiters:  map[string]*waiter{},
		permits:  map[string]*Permit{},
		catching: map[string]*Ticket{},
		kick:     make(chan struct{}, 1),
	}, nil
}

// Name returns the semaphore's name.
func (s *Semaphore) Name() string { return s.name }

// Idle reports whether this value has nothing in flight: no Acquire or
// AcquireTicket waiting, no held permit, no ticket it catches, and no
// safety-net poll running. An idle value holds nothing that the semaphore
// in Redis depends on, so a caller that keeps one value per name (one per
// tenant, say) may drop it and make a new one with [New] when the name is
// used again.
func (s *Semaphore) Idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waiters) == 0 && len(s.permits) == 0 && len(s.catching) == 0 && !s.polling
}

// TryAcquire takes a slot only if one is free now and nobody is queued for
// it; it never waits and never queues. Waiters of processes that stopped
// heartbeating do not count. It returns [ErrNoSlot] when it could not,
// [ErrWeightAboveLimit] when the weight can never fit, and a wrapped Redis
// error when Redis failed (after giving back a slot the failed call may
// have taken).
func (s *Semaphore) TryAcquire(ctx context.Context, opts ...AcquireOption) (*Permit, error) {
	cfg, err := s.acquireConfig(opts)
	if err != nil {
		return nil, s.wrap("try-acquire", err)
	}
	token := s.newToken(cfg.weight)
	sent := time.Now()
	r, err := s.callAcquire(ctx, token, cfg, acquireCall{mode: modeTry})
	switch {
	case err != nil:
		s.abandon(ctx, token)
		return nil, s.wrap("try-acquire", err)
	case r.status == statusRejected:
		return nil, s.wrap("try-acquire", fmt.Errorf("%w: weight %d, limit %d", ErrWeightAboveLimit, cfg.weight, r.limit))
	case r.status != statusGranted:
		return nil, s.wrap("try-acquire", ErrNoSlot)
	}
	p, err := s.hand(ctx, "try-acquire", token, cfg, r.fence, sent, r.lease, r.taken)
	if errors.Is(err, errExpired) {
		return nil, s.wrap("try-acquire", ErrNoSlot) // granted, but gone before the reply came
	}
	return p, err
}

// Locked reports whether a TryAcquire of weight 1 would fail now: every
// slot is held, or live callers are queued. Waiters of processes that
// stopped heartbeating do not count; Locked drops them from the queue, and
// changes nothing else.
func (s *Semaphore) Locked(ctx context.Context) (bool, error) {
	cfg := acquireConfig{weight: 1}
	r, err := s.callAcquire(ctx, s.proc+".check.1", cfg, acquireCall{mode: modeCheck})
	if err != nil {
		return false, s.wrap("locked", err)
	}
	return r.status != statusCheckFree, nil
}

// SetLimit stores a new limit for every process at once, and keeps it in
// Redis for good (it outlives [Options.IdleTimeout]). Raising it wakes
// waiters that now fit. Lowering it revokes no held permit: new grants wait
// until usage falls below the new limit, and a waiter whose weight is now
// above it gets [ErrWeightAboveLimit]. It returns an [ErrInvalid] error for
// a limit below 1 and writes nothing then.
func (s *Semaphore) SetLimit(ctx context.Context, limit int) error {
	if limit < 1 {
		return s.wrap("set-limit", invalid("limit must be at least 1, got %d", limit))
	}
	res, err := scriptSetLimit.Run(ctx, s.rdb, s.keys.keys, s.args(limit)...).Slice()
	if err == nil {
		var grants []delivery
		if _, grants, err = parseReply(res, 4); err == nil {
			s.deliver(grants)
		}
	}
	return s.wrap("set-limit", err)
}

// args returns a script's arguments: the six every script takes (see
// lua/common.lua), then extra.
func (s *Semaphore) args(extra ...any) []any {
	claim := int64(0)
	if s.opts.OnReservation != nil {
		claim = s.claimFor().Milliseconds()
	}
	return append([]any{s.keys.channel, s.limit, s.opts.IdleTimeout.Milliseconds(),
		s.opts.TicketLease.Milliseconds(), claim, s.proc}, extra...)
}

// claimFor is how long a process has to act on a ticket's grant before
// another process's poll takes it on.
func (s *Semaphore) claimFor() time.Duration {
	return min(2*time.Second, max(100*time.Millisecond, s.opts.TicketLease/4))
}

// renewLease extends token's lease to a full Lease and returns it with the
// grant's fence, or a zero lease when token no longer holds a slot (its
// lease had expired).
func (s *Semaphore) renewLease(ctx context.Context, token string) (time.Duration, int64, error) {
	res, err := scriptRenew.Run(ctx, s.rdb, s.keys.keys, s.args(token, s.opts.Lease.Milliseconds())...).Int64Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("limiter: unexpected renew reply %v", res)
	}
	if err != nil {
		return 0, 0, err
	}
	return ms(res[0]), res[1], nil
}

// abandon gives back whatever token may hold, be queued for or have a
// notice of: the call that failed may have succeeded on the server and
// lost its reply. It runs even when ctx is done; if Redis is unreachable,
// the lease or the waiter TTL frees the slot instead.
func (s *Semaphore) abandon(ctx context.Context, token string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abandonTimeout)
	defer cancel()
	_, _, _ = s.callRelease(ctx, token, false)
}

const abandonTimeout = 2 * time.Second

// callRelease runs release.lua for token and delivers the grants it made.
// It returns the script's status and the state's fence floor.
func (s *Semaphore) callRelease(ctx context.Context, token string, taken bool) (status, born int64, err error) {
	flag := "0"
	if taken {
		flag = "1"
	}
	sent := time.Now()
	res, err := scriptRelease.Run(ctx, s.rdb, s.keys.keys, s.args(token, flag)...).Slice()
	if err != nil {
		return 0, 0, err
	}
	head, grants, err := parseReply(res, 4)
	if err != nil {
		return 0, 0, err
	}
	s.watchTickets(sent, head[2], head[3])
	s.deliver(grants)
	return head[0], head[1], nil
}

func (s *Semaphore) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("limiter: %s %q: %w", op, s.name, err)
}

// ctxErr returns ctx's error, joined with ErrTimeout when its deadline passed.
func ctxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.Join(ErrTimeout, err)
	}
	return err
}

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

// newToken returns a unique holder ID for a live acquire of weight w:
// this value's proc, a random part and the weight, joined by dots (the
// scripts read the process and the weight from it).
func (s *Semaphore) newToken(w int) string {
	return s.proc + "." + randomID(12) + "." + strconv.Itoa(w)
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
