package limiter

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// benchLock is one algorithm under benchmark: acquire blocks until one slot
// is held or ctx is done, and returns the function that gives it back.
type benchLock interface {
	acquire(ctx context.Context) (release func(context.Context) error, err error)
}

// benchVariant names an algorithm and how to open it.
type benchVariant struct {
	name string
	// extra are the commands the variant sends outside scripts, counted as
	// client round trips in cmds/grant (see cmdStats.delta).
	extra []string
	open  func(ctx context.Context, rdb *redis.Client, prefix, name string, limit int) (benchLock, error)
}

var benchVariants = map[string]benchVariant{
	"slotguard": {name: "slotguard", open: openSlotguard},
	"seed":      {name: "seed", extra: []string{"incr"}, open: openSeed},
	"xrate":     {name: "xrate", extra: []string{"zrem"}, open: openXrate},
	"floor":     {name: "floor", open: openFloor},
}

// benchRetry is the fixed delay after which the seed and xrate retry.
const benchRetry = 100 * time.Millisecond

// slotguard: this package, with its defaults.

type slotguardLock struct{ s *Semaphore }

func openSlotguard(_ context.Context, rdb *redis.Client, prefix, name string, limit int) (benchLock, error) {
	s, err := New(rdb, name, limit, &Options{Prefix: prefix})
	return slotguardLock{s}, err
}

func (l slotguardLock) acquire(ctx context.Context) (func(context.Context) error, error) {
	p, err := l.s.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	return p.Release, nil
}

// seed: the seed's algorithm as its spec describes it. One key counts the
// free slots; a script takes one when the count is above 0; release is a
// blind INCR; a caller that got none retries every 100 ms.

var benchSeedAcquire = redis.NewScript(`
-- seed acquire: take one free slot.
-- KEYS[1] the count of free slots. Returns 1 when a slot was taken, else 0.
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then
  redis.call('SET', KEYS[1], n - 1)
  return 1
end
return 0
`)

type seedLock struct {
	rdb *redis.Client
	key string
}

func openSeed(ctx context.Context, rdb *redis.Client, prefix, name string, limit int) (benchLock, error) {
	l := seedLock{rdb: rdb, key: prefix + ":seed:{" + name + "}"}
	return l, rdb.SetNX(ctx, l.key, limit, 0).Err()
}

func (l seedLock) acquire(ctx context.Context) (func(context.Context) error, error) {
	for {
		n, err := benchSeedAcquire.Run(ctx, l.rdb, []string{l.key}).Int()
		if err != nil {
			return nil, err
		}
		if n == 1 {
			return func(ctx context.Context) error { return l.rdb.Incr(ctx, l.key).Err() }, nil
		}
		if err := benchSleep(ctx, benchRetry); err != nil {
			return nil, err
		}
	}
}

// xrate: asynq x/rate's semaphore as its documentation describes it. One
// ZSET holds the holders, scored by their deadline; one script drops the
// expired ones, counts the rest and adds the caller when below the limit; a
// caller that failed retries after a fixed 100 ms; release is a ZREM. Like
// the original it takes the time from the client (in milliseconds here).

var benchXrateAcquire = redis.NewScript(`
-- xrate acquire: join the holders when fewer than the limit are live.
-- KEYS[1] ZSET holder ID -> deadline (ms).
-- ARGV[1] limit, ARGV[2] holder ID, ARGV[3] now (ms), ARGV[4] deadline (ms).
-- Returns 1 when the caller became a holder, else 0.
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
  return 1
end
return 0
`)

// benchXrateLease is the deadline xrate gives each holder.
const benchXrateLease = 30 * time.Second

type xrateLock struct {
	rdb   *redis.Client
	key   string
	limit int
}

func openXrate(_ context.Context, rdb *redis.Client, prefix, name string, limit int) (benchLock, error) {
	return xrateLock{rdb: rdb, key: prefix + ":xrate:{" + name + "}", limit: limit}, nil
}

func (l xrateLock) acquire(ctx context.Context) (func(context.Context) error, error) {
	id := randomID(16)
	for {
		now := time.Now()
		n, err := benchXrateAcquire.Run(ctx, l.rdb, []string{l.key},
			l.limit, id, now.UnixMilli(), now.Add(benchXrateLease).UnixMilli()).Int()
		if err != nil {
			return nil, err
		}
		if n == 1 {
			return func(ctx context.Context) error { return l.rdb.ZRem(ctx, l.key, id).Err() }, nil
		}
		if err := benchSleep(ctx, benchRetry); err != nil {
			return nil, err
		}
	}
}

// floor: one bare script round trip to acquire and one to release, the
// least any Redis semaphore can cost.

var benchFloorScript = redis.NewScript(`return 1`)

type floorLock struct{ rdb *redis.Client }

func openFloor(_ context.Context, rdb *redis.Client, _, _ string, _ int) (benchLock, error) {
	return floorLock{rdb}, nil
}

func (l floorLock) acquire(ctx context.Context) (func(context.Context) error, error) {
	if err := benchFloorScript.Run(ctx, l.rdb, nil).Err(); err != nil {
		return nil, err
	}
	return func(ctx context.Context) error { return benchFloorScript.Run(ctx, l.rdb, nil).Err() }, nil
}

// benchDialPool dials every connection of rdb's pool, by holding that many
// at once, and puts them back idle.
func benchDialPool(ctx context.Context, rdb *redis.Client) error {
	conns := make([]*redis.Conn, rdb.Options().PoolSize)
	defer func() {
		for _, c := range conns {
			if c != nil {
				_ = c.Close()
			}
		}
	}()
	for i := range conns {
		conns[i] = rdb.Conn()
		if err := conns[i].Ping(ctx).Err(); err != nil {
			return err
		}
	}
	return nil
}

// benchSleep waits for d, or returns ctx's error when ctx is done first.
func benchSleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// openBenchLock opens the named variant on a fresh client for addr, and
// warms it up with one acquire and release so that loading its scripts is
// not measured, and with every connection of the pool dialled, so that no
// worker dials one in the measured window. The client is closed by the
// returned function.
func openBenchLock(ctx context.Context, addr, variant, prefix, name string, limit int) (benchLock, func(), error) {
	v, ok := benchVariants[variant]
	if !ok {
		return nil, nil, fmt.Errorf("unknown variant %q", variant)
	}
	rdb := benchClient(addr)
	l, err := v.open(ctx, rdb, prefix, name, limit)
	if err == nil {
		var release func(context.Context) error
		if release, err = l.acquire(ctx); err == nil {
			err = release(ctx)
		}
	}
	if err == nil {
		err = benchDialPool(ctx, rdb)
	}
	if err != nil {
		_ = rdb.Close()
		return nil, nil, fmt.Errorf("open %s: %w", variant, err)
	}
	return l, func() { _ = rdb.Close() }, nil
}
