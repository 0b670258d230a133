// Package childproc lets a test binary re-execute itself as a helper process
// of a multi-process test: TestMain calls [Main], which runs the mode named
// by an environment variable instead of the tests.
package childproc

import (
	"fmt"
	"os"
	"testing"
)

// Main runs modes[os.Getenv(env)] and exits (1 on its error, 2 for an
// unknown mode) when env is set; otherwise it runs the tests, then after
// (if not nil), and exits with the tests' code.
func Main(m *testing.M, env string, modes map[string]func() error, after func()) {
	if mode := os.Getenv(env); mode != "" {
		f := modes[mode]
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
	if after != nil {
		after()
	}
	os.Exit(code)
}
