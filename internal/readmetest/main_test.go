package readmetest

import (
	"testing"

	"github.com/slotguard/slotguard/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m, nil) }
