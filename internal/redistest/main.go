package redistest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Main runs the tests of a package that uses this package, and exits with
// their code. Call it from TestMain (after any child-process dispatch):
//
//	func TestMain(m *testing.M) { redistest.Main(m, asynqtest.Release) }
//
// Before the tests, where no Redis answers at [Addr], RequireEnv is not set
// and redis-server is on PATH, it starts a private redis-server for this
// test binary alone (a free loopback port, its own temporary directory,
// nothing saved: --save "" --appendonly no) and points REDIS_ADDR at it, so
// that the tests run instead of skipping; child processes inherit it. If the
// test binary dies, Linux kills that server with it.
//
// After the tests it calls after (when not nil) while that server still
// runs, stops it, and, where tests skipped for want of a Redis or of
// redis-server, says once how many and why. With -v (or -json) that summary
// goes to stderr with the rest of the output; otherwise `go test` would
// discard it for a package that passes, so it goes to the terminal
// (/dev/tty) when there is one, and to stderr when there is none.
func Main(m *testing.M, after func()) {
	var private *privateServer
	if !Required() && !realReachable() {
		var err error
		if private, err = startPrivate(); err != nil {
			if errors.Is(err, exec.ErrNotFound) {
				noServerReason = "redis-server is not installed to start one"
			} else {
				noServerReason = "starting a private redis-server failed: " + err.Error()
			}
			fmt.Fprintf(os.Stderr, "redistest: no Redis at %s, and %s\n", Addr(), noServerReason)
		} else {
			fmt.Fprintf(os.Stderr, "redistest: no Redis at %s; these tests run on a private redis-server at %s\n", Addr(), private.addr)
			os.Setenv("REDIS_ADDR", private.addr)
			probe.ok = true
		}
	}
	code := m.Run()
	if after != nil {
		after()
	}
	if private != nil {
		private.stop()
	}
	if s := skipSummary(); s != "" {
		w, closeW := summaryWriter()
		fmt.Fprint(w, s)
		closeW()
	}
	os.Exit(code)
}

// noServerReason says why no private server runs, for the skips.
var noServerReason = "no private redis-server runs (see redistest.Main)"

// skips counts the tests skipped for want of a Redis, by reason.
var skips struct {
	sync.Mutex
	n map[string]int
}

// skip records that t skips for reason, and skips it.
func skip(t testing.TB, reason string) {
	t.Helper()
	skips.Lock()
	if skips.n == nil {
		skips.n = map[string]int{}
	}
	skips.n[reason]++
	skips.Unlock()
	t.Skip("redistest: " + reason)
}

// skipSummary says how many tests skipped and why, or "" when none did.
func skipSummary() string {
	skips.Lock()
	defer skips.Unlock()
	total := 0
	var reasons []string
	for r, n := range skips.n {
		total += n
		reasons = append(reasons, fmt.Sprintf("  %d: %s\n", n, r))
	}
	if total == 0 {
		return ""
	}
	sort.Strings(reasons)
	tests := "tests"
	if total == 1 {
		tests = "test"
	}
	return fmt.Sprintf("redistest: %s: %d %s skipped for want of Redis:\n%s"+
		"  Install redis-server to run them (the tests start their own), or point REDIS_ADDR at a Redis; %s=1 makes these skips failures.\n",
		packageName(), total, tests, strings.Join(reasons, ""), RequireEnv)
}

// packageName is the import path of the package under test.
func packageName() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Path != "" {
		return strings.TrimSuffix(bi.Path, ".test")
	}
	return "this package"
}

// summaryWriter is where Main's summary goes: see [Main].
func summaryWriter() (io.Writer, func()) {
	if !testing.Verbose() {
		if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
			return tty, func() { _ = tty.Close() }
		}
	}
	return os.Stderr, func() {}
}
