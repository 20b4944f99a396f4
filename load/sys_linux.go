package load

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// tryReadLock takes a shared open-file-description lock on f, the kind of lock that
// conflicts with the POSIX locks DuckDB takes (a writer holds an exclusive one for as
// long as it has the file open) but is not dropped when another descriptor of the same
// file in this process is closed. It reports false when a writer holds the file; the
// lock goes with f's last close.
func tryReadLock(f *os.File) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0, Start: 0, Len: 0}
	err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return false, nil
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.ENOLCK) {
		return true, nil // no locks on this file system: DuckDB takes none either
	}
	return err == nil, err
}
