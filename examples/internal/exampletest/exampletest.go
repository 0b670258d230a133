// Package exampletest runs the examples' run functions in tests: it picks
// their Redis and reads the figures they print.
package exampletest

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/slotguard/slotguard/internal/asynqtest"
	"github.com/slotguard/slotguard/internal/redistest"
)

// Getenv returns the getenv an example's run gets in a test. Its REDIS_URL
// is, in order: REDIS_URL when set; under SLOTGUARD_REQUIRE_REDIS=1 (CI),
// the real server at REDIS_ADDR in a database claimed with asynqtest, since
// asynq has no key prefix; otherwise empty, so that the example starts its
// embedded miniredis. Every other variable reads as empty. The chosen Redis
// is logged.
func Getenv(t testing.TB) func(string) string {
	t.Helper()
	url := os.Getenv("REDIS_URL")
	if url == "" && redistest.Required() {
		url = fmt.Sprintf("redis://%s/%d", redistest.Addr(), asynqtest.DB(t))
	}
	if url == "" {
		t.Log("REDIS_URL is unset: the example runs on its embedded miniredis")
	} else {
		t.Logf("the example runs on %s", url)
	}
	return func(k string) string {
		if k == "REDIS_URL" {
			return url
		}
		return ""
	}
}

// Int returns the first integer that follows label (and optional spaces) in
// out, failing the test when there is none.
func Int(t testing.TB, out, label string) int {
	t.Helper()
	m := regexp.MustCompile(regexp.QuoteMeta(label) + `\s*(-?\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output has no %q followed by a number:\n%s", label, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
