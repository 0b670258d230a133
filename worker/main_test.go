package worker

import (
	"testing"

	"github.com/slotguard/slotguard/internal/asynqtest"
	"github.com/slotguard/slotguard/internal/childproc"
	"github.com/slotguard/slotguard/internal/redistest"
)

// childEnv names the variable that makes the test binary run as a helper
// process of a multi-process test instead of running tests.
const childEnv = "SLOTGUARD_WORKER_CHILD"

// childModes are the helper processes tests re-execute this binary as.
var childModes = map[string]func() error{}

func TestMain(m *testing.M) {
	childproc.Dispatch(childEnv, childModes)
	redistest.Main(m, asynqtest.Release)
}
