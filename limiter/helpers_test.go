package limiter

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/slotguard/slotguard/internal/redistest"
	"github.com/slotguard/slotguard/internal/wait"
)

// newSem returns a semaphore in b's namespace. opts may be nil.
func newSem(t *testing.T, b redistest.Backend, name string, limit int, opts *Options) *Semaphore {
	t.Helper()
	var o Options
	if opts != nil {
		o = *opts
	}
	o.Prefix = b.Prefix
	s, err := New(b.Client, name, limit, &o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func mustInfo(t *testing.T, s *Semaphore) Info {
	t.Helper()
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	return info
}

func mustAcquire(t *testing.T, s *Semaphore, opts ...AcquireOption) *Permit {
	t.Helper()
	p, err := s.Acquire(t.Context(), opts...)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return p
}

func mustRelease(t *testing.T, p *Permit) {
	t.Helper()
	if err := p.Release(context.Background()); err != nil {
		t.Fatalf("Release: %v", err)
	}
}

// waitingIs waits until s has n queued waiters.
func waitingIs(t *testing.T, s *Semaphore, n int) {
	t.Helper()
	wait.Until(t, 5*time.Second, "waiters to queue", func() bool { return mustInfo(t, s).Waiting == n })
}

// crash stops a permit's renewals without releasing it, as if its process
// had died.
func crash(p *Permit) {
	p.mu.Lock()
	p.stopped = true
	p.timer.Stop()
	p.expiry.Stop()
	p.mu.Unlock()
	p.cancel()
	p.sem.forget(p.token)
}

type result struct {
	p   *Permit
	err error
}

// acquireAsync starts an Acquire and returns where its result arrives.
func acquireAsync(ctx context.Context, s *Semaphore, opts ...AcquireOption) <-chan result {
	ch := make(chan result, 1)
	go func() {
		p, err := s.Acquire(ctx, opts...)
		ch <- result{p, err}
	}()
	return ch
}

func recv(t *testing.T, ch <-chan result, d time.Duration) result {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(d):
		t.Fatalf("no acquire result within %v", d)
		return result{}
	}
}

// granted waits for an acquire result, like recv, and fails the test when
// it is an error.
func granted(t *testing.T, ch <-chan result, d time.Duration) result {
	t.Helper()
	r := recv(t, ch, d)
	if r.err != nil {
		t.Fatalf("acquire: %v", r.err)
	}
	return r
}

func notYet(t *testing.T, ch <-chan result, d time.Duration) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("acquire returned early: permit %v, err %v", r.p != nil, r.err)
	case <-time.After(d):
	}
}

// redistestClient opens a second client to the same server, standing for
// another process.
func redistestClient(t *testing.T, o *redis.Options) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: o.Addr, DB: o.DB})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// pollCalls picks s's poll calls for a [redistest.Faulty] (by poll.lua's
// ARGV: the six every script takes, the waiter TTL and a heartbeat flag).
func pollCalls(s *Semaphore) func(args []any) bool {
	return func(args []any) bool {
		if len(args) != 8 {
			return false
		}
		_, ttl := args[6].(int64)
		return args[5] == any(s.proc) && ttl
	}
}

// renewCalls picks renew calls for a [redistest.Faulty] (by renew.lua's
// ARGV: the six every script takes, the token and the lease ms).
func renewCalls(args []any) bool {
	if len(args) != 8 {
		return false
	}
	_, token := args[6].(string)
	_, lease := args[7].(int64)
	return token && lease
}

// queueingCalls picks acquire calls that may queue (mode "wait").
func queueingCalls(args []any) bool { return slices.Contains(args, any("wait")) }
