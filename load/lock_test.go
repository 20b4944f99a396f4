package load

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestLockDir(t *testing.T) {
	dir := t.TempDir()
	unlock, err := LockDir(dir)
	must(t, err)

	// A second holder in the same process is refused too.
	_, err = LockDir(dir)
	var le *LockedError
	if !errors.As(err, &le) || le.PID == 0 {
		t.Fatalf("second LockDir = %v, want a LockedError with a pid", err)
	}
	must(t, unlock())
	again, err := LockDir(dir)
	must(t, err)
	must(t, again())

	// Another process holds it: the error names that process.
	cmd, out := startChild(t, "lock", dir)
	if line := readLine(t, out); line != "locked" {
		t.Fatalf("child said %q", line)
	}
	_, err = LockDir(dir)
	if !errors.As(err, &le) || le.PID != cmd.Process.Pid {
		t.Fatalf("LockDir while pid %d holds the lock = %v", cmd.Process.Pid, err)
	}
	if !strings.Contains(err.Error(), fmt.Sprint(cmd.Process.Pid)) {
		t.Errorf("error %q does not name pid %d", err, cmd.Process.Pid)
	}
	// A killed holder leaves no stale lock.
	must(t, cmd.Process.Kill())
	_ = cmd.Wait()
	unlock, err = LockDir(dir)
	if err != nil {
		t.Fatalf("LockDir after the holder was killed: %v", err)
	}
	must(t, unlock())
}
