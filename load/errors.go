package load

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"github.com/duckdb/duckdb-go/v2"
)

// The store's failures that a user must act on, each with what to do. All three are
// failures (exit 1), never usage errors: nothing the user typed was wrong.

// DamagedError says a DuckDB file of the store is damaged: it fails its block checksums
// (found by the verification before opening, or by DuckDB while reading), so drextract
// will not use it. Nothing repairs it in place; the message says where the last good
// state is and how to rebuild.
type DamagedError struct {
	Path    string // the damaged file
	Copy    bool   // Path is a published serving copy, not the live store
	WAL     bool   // Path is the live store's write-ahead log
	Detail  string // what is wrong, e.g. "block 16, bytes 4206592–4468736, fails its checksum"
	Serving string // the serving copy, the last good state as of the last publish ("" if none)
	Parquet string // the Parquet export folder ("" if none)
	Err     error  // DuckDB's error, when DuckDB found the damage
}

func (e *DamagedError) Error() string {
	if e.Copy {
		return fmt.Sprintf("the serving copy %s is damaged (%s); drextract will not read it. "+
			"The live store is not affected: drextract export publishes a new copy", e.Path, e.Detail)
	}
	var b strings.Builder
	if e.WAL {
		fmt.Fprintf(&b, "the store's write-ahead log %s is damaged (%s); drextract will not use it. "+
			"Moving it aside (to %s.damaged) opens the store as of its last checkpoint: the next crawl fetches "+
			"again what was lost, but bulk actions sent since then drop out of the audit. Or:", e.Path, e.Detail, e.Path)
	} else {
		fmt.Fprintf(&b, "the store %s is damaged (%s); drextract will not use it.", e.Path, e.Detail)
	}
	switch {
	case e.Serving != "" && e.Parquet != "":
		fmt.Fprintf(&b, " The last good state is in %s and %s (as of the last publish and export);", e.Serving, e.Parquet)
	case e.Serving != "":
		fmt.Fprintf(&b, " The last good state is in %s (as of the last publish);", e.Serving)
	case e.Parquet != "":
		fmt.Fprintf(&b, " The last good state is in %s (as of the last export);", e.Parquet)
	}
	b.WriteString(" to rebuild the store, run drextract extract --full with a new --data-dir, and keep this one until then")
	return b.String()
}

func (e *DamagedError) Unwrap() error { return e.Err }

// DiskFullError says a write failed because its file system is full. Whatever was
// being written is abandoned whole (a transaction rolled back, a serving copy or an
// export not swapped in, its partial files removed); the store is intact and the same
// command works once there is space.
type DiskFullError struct {
	Path  string // the file that could not be written
	Free  uint64 // bytes free on its file system when the error was seen; 0 when unknown
	Total uint64 // size of that file system; 0 when unknown
	Err   error
}

func (e *DiskFullError) Error() string {
	where := filepath.Dir(e.Path)
	space := ""
	if e.Total > 0 {
		space = fmt.Sprintf(", %s free of %s", formatBytes(e.Free), formatBytes(e.Total))
	}
	return fmt.Sprintf("disk full: no space left on the file system of %s%s (writing %s); "+
		"free some space and run again: the store is intact", where, space, filepath.Base(e.Path))
}

func (e *DiskFullError) Unwrap() error { return e.Err }

// FileInUseError says DuckDB would not open a store file because another process has it
// open: for the live store, any process (a BI tool or a duckdb shell that opened it
// instead of the serving copy); for a file opened read-only, a process that opened it
// for writing, which locks every reader out.
type FileInUseError struct {
	Path    string // the file
	Live    bool   // Path is the live store, opened for writing
	PID     int    // the process holding it; 0 when DuckDB did not say
	Program string // its executable, when DuckDB could tell
	Serving string // the serving copy BI tools should open ("" if unknown)
	Err     error
}

func (e *FileInUseError) Error() string {
	holder := "another process"
	if e.PID != 0 {
		holder = fmt.Sprintf("process %d", e.PID)
		if e.Program != "" {
			holder += " (" + e.Program + ")"
		}
	}
	if !e.Live {
		return fmt.Sprintf("%s is open for writing in %s, so nobody can read it until that program closes it "+
			"(a BI tool must open DuckDB files read-only: duckdb -readonly, read_only=True)", e.Path, holder)
	}
	serving := ServingFile
	if e.Serving != "" {
		serving = e.Serving
	}
	return fmt.Sprintf("the live store %s is open in %s, and only drextract may open it: "+
		"BI tools and duckdb shells must open %s (read-only) or the Parquet export instead; "+
		"close that program and run again", e.Path, holder, serving)
}

func (e *FileInUseError) Unwrap() error { return e.Err }

var (
	lockHolderRE = regexp.MustCompile(`Conflicting lock is held in (?:(.*?) )?\(?PID (\d+)\)?`)
	writeFileRE  = regexp.MustCompile(`(?:write|create|open|extend|truncate|allocate)[a-z ]* file "([^"]+)"`)
)

// paths tells classify where the store's files are, for its messages.
type paths struct {
	live, serving, parquet string
	readOnly               bool // the store at live is opened read-only
}

// classify turns what DuckDB or the OS reports into the store's typed errors: a full
// disk, a damaged file, the live store held by another process. target is the file
// being written or opened, for when DuckDB's message does not name one. Any other error
// is returned as it is.
func (p paths) classify(err error, target string) error {
	if err == nil {
		return nil
	}
	var (
		df *DiskFullError
		de *DamagedError
		ie *FileInUseError
	)
	if errors.As(err, &df) || errors.As(err, &de) || errors.As(err, &ie) {
		return err
	}
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.ENOSPC) || strings.Contains(msg, "No space left on device"):
		file := target
		var pe *fs.PathError
		if m := writeFileRE.FindStringSubmatch(msg); m != nil {
			file = m[1]
		} else if errors.As(err, &pe) {
			file = pe.Path
		}
		free, total := diskSpace(filepath.Dir(file))
		return &DiskFullError{Path: file, Free: free, Total: total, Err: err}
	case strings.Contains(msg, "Corrupt WAL file"):
		e := p.damaged(p.live+".wal", "DuckDB: "+lastClause(firstLine(duckdbMessage(err))), err)
		e.WAL = true
		return e
	case strings.Contains(msg, "Corrupt database file") || strings.Contains(msg, "Corrupted database"):
		return p.damaged(p.live, "DuckDB: "+firstLine(duckdbMessage(err)), err)
	case strings.Contains(msg, "Could not set lock on file"):
		e := &FileInUseError{Path: target, Live: target == p.live && !p.readOnly, Serving: p.serving, Err: err}
		if m := lockHolderRE.FindStringSubmatch(msg); m != nil {
			e.Program = m[1]
			e.PID, _ = strconv.Atoi(m[2])
		}
		return e
	}
	return err
}

// damaged is the DamagedError for path, naming the copies of the last good state that
// exist.
func (p paths) damaged(path, detail string, err error) *DamagedError {
	e := &DamagedError{Path: path, Detail: detail, Err: err,
		Copy: p.readOnly && legacyPath(path) == "" && filepath.Base(path) == ServingFile}
	if p.serving != "" && exists(p.serving) {
		e.Serving = p.serving
	}
	if p.parquet != "" && exists(p.parquet) {
		e.Parquet = p.parquet
	}
	return e
}

// Classify turns an error met while using a store into *DiskFullError or
// *DamagedError when that is what it is, so that the message says what to do; other
// errors come back unchanged. The store's own methods already do this; callers that
// query the store's DB themselves may pass their errors through it.
func (s *Store) Classify(err error) error { return s.paths.classify(err, s.path) }

func duckdbMessage(err error) string {
	var de *duckdb.Error
	if errors.As(err, &de) {
		return de.Msg
	}
	return err.Error()
}

// lastClause is what follows the last ": " of s (DuckDB nests its contexts that way).
func lastClause(s string) string {
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

func formatBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
