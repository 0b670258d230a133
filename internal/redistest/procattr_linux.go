package redistest

import "syscall"

// privateProcAttr puts the server in its own process group (a Ctrl-C meant
// for `go test` does not reach it first) and has Linux kill it when the test
// binary dies, even by SIGKILL or a test timeout.
func privateProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
