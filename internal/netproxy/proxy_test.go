package netproxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// echoServer answers each line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func setup(t *testing.T) (*Proxy, net.Conn, *bufio.Reader) {
	t.Helper()
	p, err := Start(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	c, r := dial(t, p)
	return p, c, r
}

func dial(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, bufio.NewReader(c)
}

// roundTrip sends a line and reads it back within d.
func roundTrip(c net.Conn, r *bufio.Reader, d time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = c.SetDeadline(start.Add(d))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return 0, err
	}
	line, err := r.ReadString('\n')
	if err == nil && line != "ping\n" {
		err = errors.New("echo garbled: " + line)
	}
	return time.Since(start), err
}

func TestForwardsBothWays(t *testing.T) {
	_, c, r := setup(t)
	for range 3 {
		if _, err := roundTrip(c, r, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLatencyDelaysEachDirection(t *testing.T) {
	p, c, r := setup(t)
	p.SetLatency(100 * time.Millisecond)
	took, err := roundTrip(c, r, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if took < 200*time.Millisecond {
		t.Fatalf("round trip took %v with 100ms latency each way; want at least 200ms", took)
	}
	p.Heal()
	if took, err = roundTrip(c, r, 5*time.Second); err != nil || took > 150*time.Millisecond {
		t.Fatalf("after Heal: round trip %v, %v", took, err)
	}
}

func TestStallHoldsDataAndKeepsTheConnectionOpen(t *testing.T) {
	p, c, r := setup(t)
	if _, err := roundTrip(c, r, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Stall()
	if _, err := roundTrip(c, r, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("stalled round trip returned %v; want a deadline error", err)
	}
	if n := p.Conns(); n != 1 {
		t.Fatalf("%d connections open while stalled, want 1", n)
	}
	// A new connection is accepted but gets nothing either.
	c2, r2 := dial(t, p)
	if _, err := roundTrip(c2, r2, 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("new connection while stalled returned %v; want a deadline error", err)
	}
	p.Heal()
	// The held "ping" arrives now, on the same connection.
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("after Heal: %q, %v; want the held ping", line, err)
	}
	// c2's held ping comes back first, and reads the same as this one's.
	if _, err := roundTrip(c2, r2, 5*time.Second); err != nil {
		t.Fatalf("second connection after Heal: %v", err)
	}
}

func TestCutClosesConnectionsAndRefusesNewOnesUntilHeal(t *testing.T) {
	p, c, r := setup(t)
	if _, err := roundTrip(c, r, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after Cut returned %v; want the connection closed", err)
	}
	c2, r2 := dial(t, p) // the listener stays up: the connection is accepted, then closed
	if _, err := roundTrip(c2, r2, 5*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("round trip on a new connection while cut returned %v; want it closed", err)
	}
	p.Heal()
	c3, r3 := dial(t, p)
	if _, err := roundTrip(c3, r3, 5*time.Second); err != nil {
		t.Fatalf("after Heal: %v", err)
	}
}

func TestCutEndsAStall(t *testing.T) {
	p, c, r := setup(t)
	p.Stall()
	_, _ = c.Write([]byte("ping\n"))
	p.Cut()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := r.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read after Stall+Cut returned %v; want the connection closed", err)
	}
	done := make(chan struct{})
	go func() { _ = p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung after Stall+Cut")
	}
}

func TestLoseReplyForwardsTheRequestAndClosesInsteadOfAnswering(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	got := make(chan string, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					got <- line
					_, _ = c.Write([]byte(line))
				}
			}()
		}
	}()
	p, err := Start(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	c, r := dial(t, p)
	if _, err := roundTrip(c, r, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	<-got
	p.LoseReply(func(req []byte) bool { return string(req) == "ping\n" })
	if _, err := roundTrip(c, r, 5*time.Second); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("round trip whose reply is lost returned %v; want the connection closed", err)
	}
	select {
	case line := <-got:
		if line != "ping\n" {
			t.Fatalf("the target got %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the request whose reply was lost never reached the target")
	}
	// Only that one reply is lost.
	c2, r2 := dial(t, p)
	if _, err := roundTrip(c2, r2, 5*time.Second); err != nil {
		t.Fatalf("the next request on a new connection: %v", err)
	}
}
