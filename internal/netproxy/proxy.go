// Package netproxy is a TCP proxy for fault tests. It forwards every
// connection to one target and can add latency, stall (stop forwarding while
// keeping connections open), cut (close every connection and refuse new
// ones) and lose a reply (let a request through, then close its connection
// instead of forwarding the answer), then heal.
package netproxy

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards connections from a loopback port to a target address. Its
// zero value is not usable; use [Start].
type Proxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	latency  time.Duration
	cut      bool
	loseNext func(request []byte) bool // picks the request whose reply is lost
	resume   chan struct{}             // closed while forwarding is allowed
	conns    map[*pair]struct{}
	closed   bool
	wg       sync.WaitGroup
}

// pair is one proxied connection: the client's and the target's side.
type pair struct {
	client, server net.Conn
	once           sync.Once
	done           chan struct{}
	loseReply      atomic.Bool // the next reply is lost: the connection closes instead
}

func (c *pair) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.client.Close()
		_ = c.server.Close()
	})
}

// Start listens on a free loopback port and forwards to target.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, resume: make(chan struct{}), conns: map[*pair]struct{}{}}
	close(p.resume)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetLatency delays every chunk of data, in each direction, by d from now
// on; a request and its reply then take at least 2d more.
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = d
	p.mu.Unlock()
}

// Stall stops forwarding: connections stay open and new ones are accepted,
// but no byte passes in either direction until [Proxy.Heal] or
// [Proxy.Cut].
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.resume:
		p.resume = make(chan struct{})
	default: // already stalled
	}
}

// Cut closes every open connection and refuses new ones (they are accepted
// and closed at once) until [Proxy.Heal].
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	conns := p.conns
	p.conns = map[*pair]struct{}{}
	p.mu.Unlock()
	for c := range conns {
		c.close()
	}
}

// Heal removes every fault: no latency, forwarding resumed, new connections
// accepted. Connections closed by a cut stay closed.
func (p *Proxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency, p.cut = 0, false
	select {
	case <-p.resume:
	default:
		close(p.resume)
	}
}

// LoseReply makes the proxy lose the reply to the next request that match
// picks (it sees each chunk a client sends): the request reaches the
// target, and the connection is closed when the answer comes back, as if
// the network had dropped it.
func (p *Proxy) LoseReply(match func(request []byte) bool) {
	p.mu.Lock()
	p.loseNext = match
	p.mu.Unlock()
}

// picked reports whether the chunk a client sent is the one whose reply
// LoseReply asked to lose, and forgets the request when it is.
func (p *Proxy) picked(chunk []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.loseNext == nil || !p.loseNext(chunk) {
		return false
	}
	p.loseNext = nil
	return true
}

// Conns returns the number of open proxied connections.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close stops listening, closes every connection and waits for the
// forwarding goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.Cut()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		refuse := p.cut || p.closed
		p.mu.Unlock()
		if refuse {
			_ = client.Close()
			continue
		}
		server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			_ = client.Close()
			continue
		}
		c := &pair{client: client, server: server, done: make(chan struct{})}
		p.mu.Lock()
		if p.cut || p.closed {
			p.mu.Unlock()
			c.close()
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pump(c, c.server, c.client)
		go p.pump(c, c.client, c.server)
	}
}

// pump copies from src to dst, chunk by chunk, honouring the faults. It
// closes both sides when src ends or either side fails: Redis's protocol
// needs no half-close.
func (p *Proxy) pump(c *pair, dst, src net.Conn) {
	defer p.wg.Done()
	defer func() {
		c.close()
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait(c) {
				return
			}
			if src == c.client && p.picked(buf[:n]) {
				c.loseReply.Store(true)
			} else if src == c.server && c.loseReply.Load() {
				return // the reply is lost with the connection
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF or error: no half-close, both sides go
		}
	}
}

// wait blocks while the proxy is stalled, then sleeps the latency. It
// reports false when the connection was closed meanwhile.
func (p *Proxy) wait(c *pair) bool {
	p.mu.Lock()
	resume, latency := p.resume, p.latency
	p.mu.Unlock()
	select {
	case <-resume:
	case <-c.done:
		return false
	}
	if latency > 0 {
		t := time.NewTimer(latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.done:
			return false
		}
	}
	// The latency may have been set while stalled: a stall that began
	// during the sleep holds the chunk too.
	p.mu.Lock()
	resume = p.resume
	p.mu.Unlock()
	select {
	case <-resume:
		return true
	case <-c.done:
		return false
	}
}
