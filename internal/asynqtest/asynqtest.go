// Package asynqtest gives tests a Redis database of their own for asynq,
// which has no key prefix option. A test process claims one database number
// from 1 to 15 on the real server (REDIS_ADDR) with SET NX on a key in
// database 0, keeps the claim alive while it runs, and deletes only asynq's
// "asynq:*" keys in the claimed database, when it claims it. It never
// flushes a database. Child processes of a test inherit the claim through
// the DBEnv variable.
package asynqtest

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/redistest"
)

// DBEnv names the variable through which a child process learns the
// database its parent claimed.
const DBEnv = "SLOTGUARD_ASYNQ_DB"

const (
	claimTTL     = time.Minute
	claimRefresh = 15 * time.Second
)

var (
	claimMu  sync.Mutex
	claimed  = -1
	claimErr error
	owner    = fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano())
)

func claimKey(db int) string { return "slotguard-test:asynq-db:" + strconv.Itoa(db) }

// DB returns the claimed database number, claiming one on first use. It
// skips the test where no real Redis answers, or fails it when
// SLOTGUARD_REQUIRE_REDIS=1.
func DB(t testing.TB) int {
	t.Helper()
	redistest.Real(t) // skips or fails without a server
	claimMu.Lock()
	defer claimMu.Unlock()
	if claimed >= 0 {
		return claimed
	}
	if claimErr != nil {
		t.Fatal(claimErr)
	}
	if s := os.Getenv(DBEnv); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("asynqtest: bad %s=%q", DBEnv, s)
		}
		claimed = n
		return n
	}
	c := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	ctx := context.Background()
	for db := 1; db <= 15; db++ {
		ok, err := c.SetNX(ctx, claimKey(db), owner, claimTTL).Result()
		if err != nil {
			claimErr = fmt.Errorf("asynqtest: claim a database: %w", err)
			t.Fatal(claimErr)
		}
		if ok {
			claimed = db
			go keepClaim(c, db)
			clean(db, "asynq:*")
			return db
		}
	}
	claimErr = fmt.Errorf("asynqtest: databases 1-15 are all claimed (keys %s*)", claimKey(0)[:len(claimKey(0))-1])
	t.Fatal(claimErr)
	return 0
}

func keepClaim(c *redis.Client, db int) {
	for range time.Tick(claimRefresh) {
		c.Set(context.Background(), claimKey(db), owner, claimTTL)
	}
}

// Release gives the claimed database back, after deleting its asynq keys.
// Call it from TestMain after the tests ran; a process that dies without it
// loses its claim one minute later.
func Release() {
	claimMu.Lock()
	defer claimMu.Unlock()
	if claimed < 0 || os.Getenv(DBEnv) != "" {
		return
	}
	clean(claimed, "asynq:*")
	c := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	defer c.Close()
	ctx := context.Background()
	if v, _ := c.Get(ctx, claimKey(claimed)).Result(); v == owner {
		c.Del(ctx, claimKey(claimed))
	}
}

// Client returns a client on the claimed database, closed when the test
// ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	db := DB(t)
	c := redis.NewClient(&redis.Options{Addr: redistest.Addr(), DB: db, PoolSize: 128})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// CleanQueue deletes every key of one asynq queue in the claimed database
// and removes it from asynq's queue set.
func CleanQueue(t testing.TB, queue string) {
	clean(DB(t), "asynq:{"+queue+"}:*")
	c := redis.NewClient(&redis.Options{Addr: redistest.Addr(), DB: DB(t)})
	defer c.Close()
	c.SRem(context.Background(), "asynq:queues", queue)
}

func clean(db int, pattern string) {
	c := redis.NewClient(&redis.Options{Addr: redistest.Addr(), DB: db})
	defer c.Close()
	redistest.DeletePrefix(c, pattern[:len(pattern)-1])
}

// Log is an asynq logger that keeps the warnings and errors asynq logs, so
// that a test can check that it logged none; it drops the rest.
type Log struct {
	mu    sync.Mutex
	lines []string
}

func (l *Log) keep(level string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, level+": "+fmt.Sprint(args...))
}

func (l *Log) Debug(...any)      {}
func (l *Log) Info(...any)       {}
func (l *Log) Warn(args ...any)  { l.keep("WARN", args...) }
func (l *Log) Error(args ...any) { l.keep("ERROR", args...) }
func (l *Log) Fatal(args ...any) { l.keep("FATAL", args...) }

// String returns the kept lines, one per line.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}
