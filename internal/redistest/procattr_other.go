//go:build !linux

package redistest

import "syscall"

// privateProcAttr puts the server in its own process group. Only Linux can
// kill it when the test binary dies without stopping it.
func privateProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
