package worker

import (
	"fmt"
	"os"
	"testing"

	"github.com/slotguard/slotguard/internal/asynqtest"
)

// childEnv names the variable that makes the test binary run as a helper
// process of a multi-process test instead of running tests.
const childEnv = "SLOTGUARD_WORKER_CHILD"

// childModes are the helper processes tests re-execute this binary as.
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
	code := m.Run()
	asynqtest.Release()
	os.Exit(code)
}
