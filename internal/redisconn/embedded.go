package redisconn

import (
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"
)

// Embedded is an in-memory miniredis on loopback, for trying slotguard on a
// machine without Redis. It forgets everything when it stops.
type Embedded struct {
	*miniredis.Miniredis
	stop chan struct{}
	wg   sync.WaitGroup
}

// DefaultEmbeddedAddr is the default Redis address of both binaries (and of
// asynq): where a worker with no Redis configured looks for one, and where
// it starts its embedded Redis when none answers and the port is free
// ([StartLocal]), so that cmd/enqueue's default finds it.
const DefaultEmbeddedAddr = "127.0.0.1:6379"

// StartEmbedded starts miniredis on addr, or on a free loopback port when
// addr is taken, and keeps its TTLs moving with the wall clock (miniredis
// only ages keys when told to; asynq's locks and leases depend on it).
func StartEmbedded(addr string) (*Embedded, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr(addr); err != nil {
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("redisconn: start embedded Redis: %w", err)
		}
	}
	e := &Embedded{Miniredis: m, stop: make(chan struct{})}
	e.wg.Go(e.age)
	return e, nil
}

func (e *Embedded) age() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-e.stop:
			return
		case now := <-t.C:
			e.FastForward(now.Sub(last))
			last = now
		}
	}
}

// URL is redis://host:port of the embedded server.
func (e *Embedded) URL() string { return "redis://" + e.Addr() }

// Port is the port it listens on.
func (e *Embedded) Port() string {
	_, p, _ := net.SplitHostPort(e.Addr())
	return p
}

// Close stops the server.
func (e *Embedded) Close() {
	close(e.stop)
	e.wg.Wait()
	e.Miniredis.Close()
}
