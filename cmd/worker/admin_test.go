package main

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"
)

func TestLoopbackHostTakesHostHeadersAndListenerAddresses(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1:9090": true, "[::1]:9090": true, "localhost:9090": true, "LOCALHOST": true, "127.0.0.2": true, "::1": true,
		"0.0.0.0:9090": false, "[::]:9090": false, "10.0.0.5:9090": false, "attacker.example:9090": false, "": false,
	} {
		if got := loopbackHost(host); got != want {
			t.Errorf("loopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestDefaultAdminAddressGivesWayToAFreePortButAChosenOneDoesNot(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))

	ln, err := listenAdmin(adminSection{Addr: taken.Addr().String(), defaulted: true}, log)
	if err != nil {
		t.Fatalf("the default address, taken: %v", err)
	}
	defer ln.Close()
	if ln.Addr().String() == taken.Addr().String() || !loopbackHost(ln.Addr().String()) {
		t.Fatalf("listens on %s, want another loopback port than %s", ln.Addr(), taken.Addr())
	}
	for _, want := range []string{"taken=" + taken.Addr().String(), "addr=http://" + ln.Addr().String()} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, logs.String())
		}
	}

	_, err = listenAdmin(adminSection{Addr: taken.Addr().String()}, log)
	if err == nil || !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Fatalf("a chosen address that is taken: %v, want an error naming it", err)
	}
}
