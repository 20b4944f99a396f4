package load

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gofrs/flock"
)

// LockedError says another process holds the data directory's writer lock.
type LockedError struct {
	PID  int // 0 when the holder had not written its pid yet
	Path string
}

func (e *LockedError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("data directory is locked by another drextract (lock file %s); wait for it to finish", e.Path)
	}
	return fmt.Sprintf("data directory is locked by another drextract, pid %d (lock file %s); wait for it to finish", e.PID, e.Path)
}

// LockDir takes the single-writer lock of dataDir (created if missing): an exclusive,
// non-blocking OS file lock on dataDir/drextract.lock, which then holds the holder's pid.
// If another process (or another LockDir in this one) holds it, LockDir returns a
// *LockedError naming that pid. The OS drops the lock when the holder dies, so a killed
// writer never leaves a stale lock. unlock releases it; the file stays.
func LockDir(dataDir string) (unlock func() error, err error) {
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("locking data directory: %w", err)
	}
	path := filepath.Join(dataDir, LockFile)
	fl := flock.New(path)
	ok, err := fl.TryLock()
	if err != nil {
		return nil, fmt.Errorf("locking data directory %s: %w", dataDir, err)
	}
	if !ok {
		return nil, &LockedError{PID: readPID(path), Path: path}
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		_ = fl.Unlock()
		return nil, fmt.Errorf("writing pid to %s: %w", path, err)
	}
	return func() error {
		// Clear the pid while still holding the lock, so nobody reads a dead writer's pid.
		terr := os.Truncate(path, 0)
		if err := fl.Unlock(); err != nil {
			return fmt.Errorf("unlocking %s: %w", path, err)
		}
		if terr != nil && !errors.Is(terr, os.ErrNotExist) {
			return fmt.Errorf("clearing %s: %w", path, terr)
		}
		return nil
	}, nil
}

func readPID(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}
