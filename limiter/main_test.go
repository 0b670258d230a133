package limiter

import (
	"fmt"
	"os"
	"testing"
)

// childEnv names the variable that makes the test binary run as a helper
// process of a multi-process test instead of running tests.
const childEnv = "SLOTGUARD_LIMITER_CHILD"

// childModes are the helper processes that tests and benchmarks re-execute
// this binary as. Files register theirs in init.
var childModes = map[string]func() error{}

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		f := childModes[mode]
		if f == nil {
			fmt.Fprintf(os.Stderr, "unknown child mode %q\n", mode)
			os.Exit(2)
		}
		if err := f(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}
