// Package wait lets tests wait on a condition with a deadline instead of
// sleeping for a guessed time.
package wait

import (
	"testing"
	"time"
)

// Until polls cond until it holds, and fails the test, naming what it waited
// for, when d passes first.
func Until(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
