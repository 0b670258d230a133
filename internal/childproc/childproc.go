// Package childproc lets a test binary re-execute itself as a helper process
// of a multi-process test: TestMain calls [Dispatch] first, which runs the
// mode named by an environment variable instead of the tests.
package childproc

import (
	"fmt"
	"os"
)

// Dispatch runs modes[os.Getenv(env)] and exits (1 on its error, 2 for an
// unknown mode) when env is set; otherwise it returns, and TestMain goes on
// to run the tests.
func Dispatch(env string, modes map[string]func() error) {
	mode := os.Getenv(env)
	if mode == "" {
		return
	}
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
