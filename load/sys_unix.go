//go:build unix

package load

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// diskSpace is the free and total bytes of the file system holding dir; zeros when
// statfs fails.
func diskSpace(dir string) (free, total uint64) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize)
}

// privateUmask makes files and folders this process creates from now on private to its
// user (umask 077 on top of the current one). DuckDB creates the live store's WAL files
// itself, with mode 0666 less the umask, and gives no other way to choose their mode.
func privateUmask() { unix.Umask(unix.Umask(0o077) | 0o077) }

// fileIdentity is the device and inode of a file: what POSIX locks belong to.
func fileIdentity(fi os.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, true
}
