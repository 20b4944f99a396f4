//go:build unix

package ratelimit

import (
	"errors"
	"syscall"
)

// processAlive reports whether a process with this pid exists. A pid in use by another
// user's process counts as alive: when unsure, keep the reservation until it ages out.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
