package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"syscall"
)

// listenAdmin opens the admin server's address. When that is the default
// (127.0.0.1:9090) and another process holds it, it listens on a free
// loopback port instead and logs that it did, so that a second worker on
// one machine starts; an address that was asked for and is taken is an
// error that names it.
func listenAdmin(a adminSection, log *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", a.Addr)
	if err == nil {
		return ln, nil
	}
	if !a.defaulted || !errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("admin server: %w", err)
	}
	host, _, _ := net.SplitHostPort(a.Addr)
	ln, ferr := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if ferr != nil {
		return nil, fmt.Errorf("admin server: %w; on a free port: %w", err, ferr)
	}
	log.Warn("the default admin address is taken: the admin server listens on a free port instead (set --admin-addr to choose one)",
		"taken", a.Addr, "addr", "http://"+ln.Addr().String())
	return ln, nil
}
