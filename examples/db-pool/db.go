package main

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// fakeDB simulates the two things of a database this example needs: a hard
// cap on open connections (like PostgreSQL's max_connections) and a table
// whose writes carry a fencing token. It is not a database.
type fakeDB struct {
	maxConns int64

	open    atomic.Int64
	peak    atomic.Int64
	refused atomic.Int64

	mu     sync.Mutex
	newest map[string]int64 // table -> the highest fencing token written
	rows   map[string]string
}

var errTooManyClients = errors.New("FATAL: sorry, too many clients already")

// errStaleFence is what a write from a holder whose lease was lost gets.
var errStaleFence = errors.New("stale fencing token")

func newFakeDB(maxConns int) *fakeDB {
	return &fakeDB{maxConns: int64(maxConns), newest: map[string]int64{}, rows: map[string]string{}}
}

// conn is one open connection.
type conn struct {
	db     *fakeDB
	closed bool
}

// Connect opens a connection, or fails as PostgreSQL does when
// max_connections are open.
func (db *fakeDB) Connect() (*conn, error) {
	n := db.open.Add(1)
	if n > db.maxConns {
		db.open.Add(-1)
		db.refused.Add(1)
		return nil, errTooManyClients
	}
	for p := db.peak.Load(); n > p && !db.peak.CompareAndSwap(p, n); p = db.peak.Load() {
	}
	return &conn{db: db}, nil
}

// Query pretends to run a query that takes d.
func (c *conn) Query(d time.Duration) { time.Sleep(d) }

// Close closes the connection; closing it again does nothing.
func (c *conn) Close() {
	if !c.closed {
		c.closed = true
		c.db.open.Add(-1)
	}
}

// Write stores value in table if fence is at least the highest fencing
// token the table has seen, as `UPDATE … WHERE last_fence <= $fence` would,
// and rejects it with errStaleFence otherwise.
func (db *fakeDB) Write(table string, fence int64, value string) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if fence < db.newest[table] {
		return fmt.Errorf("%w %d (the table has seen %d)", errStaleFence, fence, db.newest[table])
	}
	db.newest[table] = fence
	db.rows[table] = value
	return nil
}
