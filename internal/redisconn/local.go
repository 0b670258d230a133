package redisconn

import (
	"bufio"
	"context"
	"net"
	"time"
)

// Local is the Redis of a worker that has none configured.
type Local struct {
	URL string // redis://host:port
	// Embedded is the in-memory Redis that was started, or nil when a Redis
	// already answered at the default address and is used instead.
	Embedded *Embedded
	// Taken is true when the embedded Redis could not take the default
	// address, because something that does not answer as a Redis (without
	// a password) holds its port.
	Taken bool
}

// StartLocal finds the Redis for a worker with none configured, so that
// it meets cmd/enqueue and asynq, whose default is addr: the Redis that
// answers PING at addr within a second, or else an embedded one ([StartEmbedded]),
// at addr when that port is free and on a free loopback port when it is not.
// The caller closes l.Embedded when it is not nil. It fails only when the
// embedded Redis cannot start.
func StartLocal(ctx context.Context, addr string) (*Local, error) {
	if answers(ctx, addr) {
		return &Local{URL: "redis://" + addr}, nil
	}
	e, err := StartEmbedded(addr)
	if err != nil {
		return nil, err
	}
	return &Local{URL: e.URL(), Embedded: e, Taken: e.Addr() != addr}, nil
}

// answers reports whether a Redis at addr answers PING. It speaks RESP
// itself rather than through go-redis, which would log the refused dial of
// every machine without a Redis.
func answers(ctx context.Context, addr string) bool {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	if _, err := conn.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return false
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	return err == nil && reply == "+PONG\r\n"
}
