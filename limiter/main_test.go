package limiter

import (
	"testing"

	"github.com/slotguard/slotguard/internal/childproc"
	"github.com/slotguard/slotguard/internal/redistest"
)

// childEnv names the variable that makes the test binary run as a helper
// process of a multi-process test instead of running tests.
const childEnv = "SLOTGUARD_LIMITER_CHILD"

// childModes are the helper processes that tests and benchmarks re-execute
// this binary as. Files register theirs in init.
var childModes = map[string]func() error{}

func TestMain(m *testing.M) {
	childproc.Dispatch(childEnv, childModes)
	redistest.Main(m, nil)
}
