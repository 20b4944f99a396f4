package load

import (
	"os"
	"sync"
)

// Files this process has open in DuckDB. POSIX record locks, which DuckDB uses to keep
// other processes out, belong to a process and a file, and the process loses all of them
// on a file when it closes any descriptor of it. The verification before opening reads
// the file through a descriptor of its own, so it must not run on a file this process
// already has open in DuckDB: closing that descriptor would silently drop DuckDB's lock.
// Such a file was verified when it was first opened.

type fileID struct{ dev, ino uint64 }

var inProcess = struct {
	sync.Mutex
	open map[fileID]int
}{open: map[fileID]int{}}

// holdFile records that DuckDB has path open in this process and returns the function
// that forgets it, for Close.
func holdFile(path string) (release func()) {
	fi, err := os.Stat(path)
	if err != nil {
		return func() {}
	}
	id, ok := fileIdentity(fi)
	if !ok {
		return func() {}
	}
	inProcess.Lock()
	inProcess.open[id]++
	inProcess.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			inProcess.Lock()
			if inProcess.open[id]--; inProcess.open[id] <= 0 {
				delete(inProcess.open, id)
			}
			inProcess.Unlock()
		})
	}
}

// openInProcess reports whether DuckDB has the file at path open in this process.
func openInProcess(path string) bool {
	fi, err := os.Stat(path)
	if err != nil {
		return false
	}
	id, ok := fileIdentity(fi)
	if !ok {
		return false
	}
	inProcess.Lock()
	defer inProcess.Unlock()
	return inProcess.open[id] > 0
}
