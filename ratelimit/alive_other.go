//go:build !unix

package ratelimit

// processAlive cannot ask the system here; reservations simply age out (InFlightTTL).
func processAlive(pid int) bool { return pid > 0 }
