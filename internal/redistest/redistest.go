// Package redistest gives tests a Redis: the real server at REDIS_ADDR
// (default 127.0.0.1:6379), a private redis-server that [Main] starts where
// none answers, or, where neither is there, an embedded miniredis for the
// tests that can use one (the others skip, and [Main] says how many). With
// SLOTGUARD_REQUIRE_REDIS=1 a missing server fails the test instead.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// RequireEnv names the variable that turns every fallback and skip for a
// missing Redis into a failure. .ci/run sets it.
const RequireEnv = "SLOTGUARD_REQUIRE_REDIS"

// Required reports whether RequireEnv is set to 1.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Addr returns REDIS_ADDR or 127.0.0.1:6379.
func Addr() string {
	if a := os.Getenv("REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// Backend is one Redis for a test: a client, and a key prefix that no other
// test uses.
type Backend struct {
	Name   string // "redis" or "miniredis"
	Client *redis.Client
	Prefix string
	Mini   *miniredis.Miniredis // nil for the real server
}

// probe remembers whether the server at Addr answered; [Main] sets ok
// after it started a private one.
var probe struct {
	once sync.Once
	ok   bool
}

func realReachable() bool {
	probe.once.Do(func() {
		c := redis.NewClient(&redis.Options{Addr: Addr(), MaxRetries: -1, DialerRetries: 1})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		probe.ok = c.Ping(ctx).Err() == nil
	})
	return probe.ok
}

// Real returns the real server, with a fresh prefix whose keys are deleted
// when the test ends. Where none answers it skips the test, or fails it when
// RequireEnv is set.
func Real(t testing.TB) Backend {
	t.Helper()
	if !realReachable() {
		if Required() {
			t.Fatalf("redistest: no Redis at %s and %s=1", Addr(), RequireEnv)
		}
		skip(t, fmt.Sprintf("no Redis answers at %s, and %s", Addr(), noServerReason))
	}
	c := redis.NewClient(&redis.Options{Addr: Addr(), PoolSize: 64})
	b := Backend{Name: "redis", Client: c, Prefix: NewPrefix()}
	t.Cleanup(func() {
		DeletePrefix(c, b.Prefix)
		_ = c.Close()
	})
	return b
}

// Mini returns a fresh embedded miniredis.
func Mini(t testing.TB) Backend {
	t.Helper()
	m := miniredis.RunT(t)
	c := redis.NewClient(&redis.Options{Addr: m.Addr(), PoolSize: 64})
	t.Cleanup(func() { _ = c.Close() })
	return Backend{Name: "miniredis", Client: c, Prefix: NewPrefix(), Mini: m}
}

// Any returns the real server if it answers, else miniredis (and logs that),
// or fails when RequireEnv is set and no server answers.
func Any(t testing.TB) Backend {
	t.Helper()
	if realReachable() || Required() {
		return Real(t)
	}
	t.Logf("redistest: no Redis at %s; running on embedded miniredis", Addr())
	return Mini(t)
}

// Each runs f once per backend as a subtest: on the real server (skipped,
// or failed under RequireEnv, where none answers) and on miniredis.
func Each(t *testing.T, f func(t *testing.T, b Backend)) {
	t.Helper()
	t.Run("redis", func(t *testing.T) { f(t, Real(t)) })
	t.Run("miniredis", func(t *testing.T) { f(t, Mini(t)) })
}

// NewPrefix returns a key prefix no other test uses.
func NewPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "sgtest-" + hex.EncodeToString(b[:])
}

// DeletePrefix removes every key under prefix. It never flushes a database.
func DeletePrefix(c redis.UniversalClient, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			c.Del(ctx, batch...)
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		c.Del(ctx, batch...)
	}
}
