package limiter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
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

	// proc names this Semaphore value in Redis: it prefixes every token it
	// issues, and its poller heartbeats it while it has queued waiters.
	proc string

	mu      sync.Mutex
	waiters map[string]*waiter // this value's queued acquires
	permits map[string]*Permit // this value's held permits
	polling bool               // pollLoop is running
	since   int64              // the latest known incarnation of proc in Redis
	kick    chan struct{}      // wakes the poller early
}

// New returns the semaphore name on rdb. limit is the seed's value: the
// number of slots. It is written to Redis only when no limit is stored there
// yet; after that the stored limit wins, and only [Semaphore.SetLimit]
// changes it, for every process at once. opts may be nil for the defaults.
//
// New does not talk to Redis. It returns an [ErrInvalid] error, and writes
// nothing, when name is empty, limit is below 1 or opts has a negative or
// inconsistent duration.
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
	if err := o.validate(); err != nil {
		return nil, err
	}
	if _, ok := rdb.(*redis.ClusterClient); ok && o.SyncReplicas > 0 {
		return nil, invalid("SyncReplicas does not work with a Cluster client")
	}
	o = o.withDefaults()
	keys := newKeySet(o.Prefix, name)
	return &Semaphore{
		rdb:     rdb,
		name:    name,
		limit:   limit,
		opts:    o,
		keys:    keys,
		hub:     hubFor(rdb, keys.channel),
		proc:    randomID(8),
		waiters: map[string]*waiter{},
		permits: map[string]*Permit{},
		kick:    make(chan struct{}, 1),
	}, nil
}

// Name returns the semaphore's name.
func (s *Semaphore) Name() string { return s.name }

// Acquire blocks until a slot is granted, ctx is done or the acquire timeout
// ([Options.AcquireTimeout], or [WithTimeout]) passes. Waiters are served in
// arrival order across all processes.
//
// On success it returns a [Permit] whose lease is renewed until it is
// released. On failure it returns a nil permit and leaves no slot held and no
// waiter queued (a grant that raced with the failure is given back):
//   - [ErrTimeout] when the acquire timeout passed, joined with
//     ctx.Err() when ctx's deadline passed;
//   - ctx.Err() when ctx was cancelled;
//   - [ErrWeightAboveLimit] when the weight can never fit;
//   - a wrapped Redis error when the first call to Redis failed.
func (s *Semaphore) Acquire(ctx context.Context, opts ...AcquireOption) (*Permit, error) {
	cfg, err := s.acquireConfig(opts)
	if err != nil {
		return nil, s.wrap("acquire", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, ctxErr(err)
	}
	if cfg.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, cfg.timeout, ErrTimeout)
		defer cancel()
	}
	w := newWaiter(s.newToken(), cfg)
	ready := s.hub.register(w.token, w.ch)
	defer s.hub.unregister(w.token)
	select {
	case <-ready:
		ready = nil // live before the call: no grant can have been missed
	default:
	}
	// Known to the poll before the first call: a grant that call's reply
	// has not yet told of is this Acquire's, not an orphan to give on.
	s.track(w)
	defer s.removeWaiter(w)
	queued := false
ask:
	for {
		// Ask for a slot, or join (or stay in) the queue.
		var retry <-chan time.Time
		sent := time.Now()
		r, err := s.callAcquire(ctx, w.token, cfg, "wait")
		switch {
		case err != nil && (!queued || ctx.Err() != nil):
			s.abandon(ctx, w.token)
			if ctx.Err() != nil {
				return nil, s.doneErr(ctx, err)
			}
			return nil, s.wrap("acquire", err)
		case err != nil:
			// Queued before, but maybe not now (after a grant that expired):
			// wait, and ask again after a sleep delay.
			w.setErr(err)
			retry = time.After(cfg.sleepDelay)
		case r.rejected:
			if queued {
				s.leave(ctx, w) // it may still be queued from before
			}
			return nil, s.wrap("acquire", fmt.Errorf("%w: weight %d, limit %d", ErrWeightAboveLimit, cfg.weight, r.limit))
		case r.granted:
			p, err := s.hand(ctx, "acquire", w.token, cfg, r.fence, sent, r.lease)
			if !errors.Is(err, errExpired) {
				return p, s.acquireErr(ctx, err)
			}
			drain(w.ch)
			continue // it expired before this process saw it: ask again
		case !queued:
			w.queued(sent, r.fence, r.since)
			s.startPolling(r.nextExpiry)
			queued = true
		default:
			w.queued(sent, r.fence, r.since)
		}
		if err == nil {
			s.noteIncarnation(r.since)
		}
		// Wait for a grant from Pub/Sub or from the poll.
		var g grant
	wait:
		for {
			select {
			case g = <-w.ch:
				break wait
			case <-ready:
				ready = nil
				s.poke() // grants published before the subscription was live
			case <-retry:
				continue ask
			case <-w.rejoin:
				continue ask // dropped from the queue while this value was gone
			case <-ctx.Done():
				s.leave(ctx, w)
				return nil, s.doneErr(ctx, w.lastErr())
			}
		}
		if g.fence == 0 {
			s.leave(ctx, w) // clears the rejection's record
			return nil, s.wrap("acquire", fmt.Errorf("%w: weight %d", ErrWeightAboveLimit, cfg.weight))
		}
		// A handed-over grant's lease runs to this value's proc expiry. A
		// grant with a fence above the one the last queueing call saw was
		// made after that call ran, so its lease lasts at least WaiterTTL
		// past that call's send time (its message may have been delayed, so
		// its own lease figure is not to be trusted). While that bound
		// leaves at least half a WaiterTTL, hand the permit over now and
		// take it up (renew it) at once in the background; otherwise (an
		// older grant, a long wait, a stalled connection) take it up first.
		if until, ok := s.grantLiveUntil(w, g.fence); ok && time.Until(until) > s.opts.WaiterTTL/2 {
			return s.confirm(ctx, "acquire", s.newPermit(w.token, cfg, g.fence, until.Add(-s.opts.WaiterTTL), s.opts.WaiterTTL, 0))
		}
		p, err := s.hand(ctx, "acquire", w.token, cfg, g.fence, time.Time{}, g.lease)
		if !errors.Is(err, errExpired) {
			return p, s.acquireErr(ctx, err)
		}
		// The grant expired before it was taken up: ask again, dropping any
		// copy of it that came by the other route.
		drain(w.ch)
	}
}

// acquireErr is Acquire's error for a failed hand-over (already wrapped),
// or ctx's when ctx ended meanwhile.
func (s *Semaphore) acquireErr(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return s.doneErr(ctx, err)
	}
	return err
}

// errExpired says a grant expired before this process could use it.
var errExpired = errors.New("limiter: grant expired before it was taken up")

// hand turns a grant into a Permit, making sure the grant is still live: a
// grant whose reply or message came so late that less than half its lease is
// left by this process's clock (or whose sent time is zero) is first renewed,
// so that no caller starts work on a grant that has already expired and gone
// to someone else. A renewal also tells the fence of the grant token holds
// now, which the permit carries (a late duplicate message may have named an
// older one). It returns errExpired, having given the slot back, when the
// grant had expired, and a wrapped Redis error (likewise) when a renewal
// failed.
func (s *Semaphore) hand(ctx context.Context, op, token string, cfg acquireConfig, fence int64, sent time.Time, lease time.Duration) (*Permit, error) {
	for try := 0; time.Since(sent) > lease/2; try++ {
		if try == 3 {
			s.abandon(ctx, token)
			return nil, errExpired
		}
		sent = time.Now()
		var err error
		lease, fence, err = s.renewLease(ctx, token)
		if err != nil {
			s.abandon(ctx, token)
			return nil, s.wrap(op, err)
		}
		if lease == 0 {
			return nil, errExpired
		}
	}
	first := s.opts.RenewInterval
	if lease < s.opts.Lease {
		// A hand-over's lease, which runs only to the process's heartbeat
		// expiry: take it up (renew it to a full lease) at once.
		first = 0
	}
	return s.confirm(ctx, op, s.newPermit(token, cfg, fence, sent, lease, first))
}

// TryAcquire takes a slot only if one is free now and nobody is queued for
// it; it never waits and never queues. It returns [ErrNoSlot] when it could
// not, [ErrWeightAboveLimit] when the weight can never fit, and a wrapped
// Redis error when Redis failed (after giving back a slot the failed call may
// have taken).
func (s *Semaphore) TryAcquire(ctx context.Context, opts ...AcquireOption) (*Permit, error) {
	cfg, err := s.acquireConfig(opts)
	if err != nil {
		return nil, s.wrap("try-acquire", err)
	}
	token := s.newToken()
	sent := time.Now()
	r, err := s.callAcquire(ctx, token, cfg, "try")
	switch {
	case err != nil:
		s.abandon(ctx, token)
		return nil, s.wrap("try-acquire", err)
	case r.rejected:
		return nil, s.wrap("try-acquire", fmt.Errorf("%w: weight %d, limit %d", ErrWeightAboveLimit, cfg.weight, r.limit))
	case !r.granted:
		return nil, s.wrap("try-acquire", ErrNoSlot)
	}
	p, err := s.hand(ctx, "try-acquire", token, cfg, r.fence, sent, r.lease)
	if errors.Is(err, errExpired) {
		return nil, s.wrap("try-acquire", ErrNoSlot) // granted, but gone before the reply came
	}
	return p, err
}

// Locked reports whether no slot is free, so that a TryAcquire of weight 1
// would fail: every slot is held, or callers are queued. It changes nothing.
func (s *Semaphore) Locked(ctx context.Context) (bool, error) {
	info, err := s.Info(ctx)
	if err != nil {
		return false, err
	}
	return info.Free < 1 || info.Waiting > 0, nil
}

// SetLimit stores a new limit for every process at once. Raising it wakes
// waiters that now fit. Lowering it revokes no held permit: new grants wait
// until usage falls below the new limit. It returns an [ErrInvalid] error for
// a limit below 1 and writes nothing then.
func (s *Semaphore) SetLimit(ctx context.Context, limit int) error {
	if limit < 1 {
		return s.wrap("set-limit", invalid("limit must be at least 1, got %d", limit))
	}
	err := scriptSetLimit.Run(ctx, s.rdb, s.keys.keys, s.keys.channel, s.limit, limit).Err()
	return s.wrap("set-limit", err)
}

// renewLease extends token's lease to a full Lease and returns it with the
// grant's fence, or a zero lease when token no longer holds a slot (its
// lease had expired).
func (s *Semaphore) renewLease(ctx context.Context, token string) (time.Duration, int64, error) {
	res, err := scriptRenew.Run(ctx, s.rdb, s.keys.keys, s.keys.channel, s.limit, token, s.opts.Lease.Milliseconds()).Int64Slice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("limiter: unexpected renew reply %v", res)
	}
	if err != nil {
		return 0, 0, err
	}
	return ms(res[0]), res[1], nil
}

// leave stops polling for w and gives back whatever its token may hold or
// be queued for, when its Acquire gives up.
func (s *Semaphore) leave(ctx context.Context, w *waiter) {
	s.removeWaiter(w)
	s.abandon(ctx, w.token)
}

// abandon gives back whatever token may hold or be queued for: the call that
// failed may have succeeded on the server and lost its reply. It runs even
// when ctx is done; if Redis is unreachable, the lease or the waiter TTL
// frees the slot instead.
func (s *Semaphore) abandon(ctx context.Context, token string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abandonTimeout)
	defer cancel()
	_ = scriptRelease.Run(ctx, s.rdb, s.keys.keys, s.keys.channel, s.limit, token).Err()
}

const abandonTimeout = 2 * time.Second

type acquireReply struct {
	granted, rejected bool
	since             int64 // the incarnation of the process it queued under
	fence             int64
	lease             time.Duration
	nextExpiry        time.Duration // < 0: no holder
	// fence is the granted permit's fencing token, or, when not granted, the
	// last one issued so far.
	limit int64
}

func (s *Semaphore) callAcquire(ctx context.Context, token string, cfg acquireConfig, mode string) (acquireReply, error) {
	res, err := scriptAcquire.Run(ctx, s.rdb, s.keys.keys, s.keys.channel, s.limit,
		token, cfg.weight, s.opts.Lease.Milliseconds(), mode, s.opts.WaiterTTL.Milliseconds(), cfg.holder).Int64Slice()
	if err != nil {
		return acquireReply{}, err
	}
	if len(res) < 2 {
		return acquireReply{}, fmt.Errorf("limiter: unexpected acquire reply %v", res)
	}
	switch res[0] {
	case 1:
		return acquireReply{granted: true, fence: res[1], lease: ms(res[2])}, nil
	case -1:
		return acquireReply{rejected: true, limit: res[1]}, nil
	}
	r := acquireReply{nextExpiry: ms(res[1])}
	if len(res) > 3 {
		r.fence, r.since = res[2], res[3]
	}
	return r, nil
}

func (s *Semaphore) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("limiter: %s %q: %w", op, s.name, err)
}

// doneErr is Acquire's error once ctx is done: ErrTimeout for its own
// timeout (joined with the last Redis error, if the wait saw one), else ctx's.
func (s *Semaphore) doneErr(ctx context.Context, redisErr error) error {
	if context.Cause(ctx) != ErrTimeout {
		return ctxErr(ctx.Err())
	}
	if redisErr != nil && !errors.Is(redisErr, context.DeadlineExceeded) {
		return s.wrap("acquire", errors.Join(ErrTimeout, redisErr))
	}
	return s.wrap("acquire", ErrTimeout)
}

// ctxErr returns ctx's error, joined with ErrTimeout when its deadline passed.
func ctxErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.Join(ErrTimeout, err)
	}
	return err
}

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

// newToken returns a unique holder ID: this value's proc, a dot, and a
// random part.
func (s *Semaphore) newToken() string { return s.proc + "." + randomID(12) }

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
