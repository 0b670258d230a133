package main

import "testing"

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
