package main

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
)

// TestLocalRedisSaysWhichRedisItChose covers the three banners of a worker
// with no Redis configured; internal/readmetest runs the first two end to
// end, as the README's quick start.
func TestLocalRedisSaysWhichRedisItChose(t *testing.T) {
	other := miniredis.RunT(t)
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	freeAddr := free.Addr().String()
	free.Close()
	taken, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	for _, c := range []struct {
		name, addr string
		moved      bool // the embedded Redis had to take another port
		want       []string
	}{
		{"a Redis answers", other.Addr(), false, []string{"a Redis answers at " + other.Addr(), "USES IT"}},
		{"nothing listens", freeAddr, false, []string{"EMBEDDED", "at " + freeAddr + ".", "cmd/enqueue finds it at its default address, " + freeAddr}},
		{"something else listens", taken.Addr().String(), true, []string{"EMBEDDED", "holds " + taken.Addr().String(), "go run ./cmd/enqueue --redis-url redis://127.0.0.1:"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var banner bytes.Buffer
			url, stop, err := localRedis(t.Context(), c.addr, &banner)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			for _, w := range c.want {
				if !strings.Contains(banner.String(), w) {
					t.Errorf("the banner lacks %q:\n%s", w, banner.String())
				}
			}
			switch {
			case c.moved && (url == "redis://"+c.addr || !strings.Contains(banner.String(), "--redis-url "+url+" ...")):
				t.Errorf("url %s, banner:\n%s\nwant another port, named in the banner", url, banner.String())
			case !c.moved && url != "redis://"+c.addr:
				t.Errorf("url %s, want redis://%s", url, c.addr)
			}
		})
	}
}
