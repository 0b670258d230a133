// Package exampleredis gives the runnable examples their Redis: the server
// named by REDIS_URL, or, when it is unset, an embedded miniredis that lives
// as long as the example. It also names and removes the example's keys, so
// that an example run against a shared Redis leaves nothing behind.
package exampleredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/slotguard/slotguard/internal/redisconn"
)

// Conn is the example's Redis.
type Conn struct {
	Client redis.UniversalClient
	URL    string // the URL a second process can connect to
	Where  string // "embedded miniredis at …" or the redacted REDIS_URL
	close  func()
}

// Connect connects to getenv("REDIS_URL") or, when it is empty, starts an
// embedded miniredis on a free loopback port. Call Close when done.
func Connect(getenv func(string) string) (*Conn, error) {
	if url := getenv("REDIS_URL"); url != "" {
		rdb, err := redisconn.Config{URL: url}.NewClient()
		if err != nil {
			return nil, err
		}
		return &Conn{Client: rdb, URL: url, Where: redisconn.Redact(url), close: func() { _ = rdb.Close() }}, nil
	}
	e, err := redisconn.StartEmbedded("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: e.Addr(), PoolSize: 64})
	return &Conn{
		Client: rdb,
		URL:    e.URL(),
		Where:  "embedded miniredis at " + e.Addr() + " (set REDIS_URL to use your own Redis)",
		close: func() {
			_ = rdb.Close()
			e.Close()
		},
	}, nil
}

// NewClient returns one more client on the same Redis, as a separate
// process would have: its own connections. The caller closes it.
func (c *Conn) NewClient() (redis.UniversalClient, error) {
	return redisconn.Config{URL: c.URL}.NewClient()
}

// Close closes the client and stops the embedded server, if any.
func (c *Conn) Close() { c.close() }

// Unique returns base followed by a random suffix, for a key prefix or a
// queue name that no other run uses.
func Unique(base string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return base + "-" + hex.EncodeToString(b[:])
}

// DeletePrefix removes every key that starts with prefix, with SCAN and DEL
// (never FLUSHDB: the database may be shared).
func DeletePrefix(rdb redis.UniversalClient, prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	iter := rdb.Scan(ctx, 0, prefix+"*", 500).Iterator()
	for iter.Next(ctx) {
		if err := rdb.Del(ctx, iter.Val()).Err(); err != nil {
			return fmt.Errorf("delete %s: %w", iter.Val(), err)
		}
	}
	return iter.Err()
}

// DeleteQueue removes every key of one asynq queue (its tasks, lists and
// daily stats) and the queue's name from asynq's set of queues. Call it after
// the servers on the queue have shut down.
func DeleteQueue(rdb redis.UniversalClient, queue string) error {
	if err := DeletePrefix(rdb, "asynq:{"+queue+"}:"); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return rdb.SRem(ctx, "asynq:queues", queue).Err()
}
