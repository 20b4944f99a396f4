package load

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
)

// The layout of the data directory is in doc.go. Stores made before the live folder
// existed had datorama.duckdb (and its WAL) directly in the data directory; Open moves
// them into live/ the first time (see migrateLegacy).

// Names of the files and folders under the data directory.
const (
	LiveDir     = "live"
	LiveFile    = LiveDir + string(filepath.Separator) + liveName // relative to the data directory
	ServingFile = "serving.duckdb"
	ParquetDir  = "parquet"
	LockFile    = "drextract.lock"

	liveName = "datorama.duckdb"
)

// Share says who may read the serving copy and the Parquet export besides their owner.
// The live store is private whatever it says.
type Share string

// The shares; the zero value means ShareGroup.
const (
	ShareOwner Share = "owner" // files 0400, folders 0700
	ShareGroup Share = "group" // files 0440, folders 0750: the owner's group reads
	ShareAll   Share = "all"   // files 0444, folders 0755
)

// Shares lists the valid values of Share, for configuration checks.
var Shares = []Share{ShareOwner, ShareGroup, ShareAll}

// ParseShare checks a configured share.
func ParseShare(s string) (Share, error) {
	for _, v := range Shares {
		if string(v) == s {
			return v, nil
		}
	}
	return "", fmt.Errorf("unknown share %q: want owner, group or all", s)
}

// FileMode is the mode of a published file: read-only for everyone, even its owner, so
// that a tool opening serving.duckdb in DuckDB's default read-write mode is refused
// instead of locking every other reader out.
func (s Share) FileMode() fs.FileMode {
	switch s {
	case ShareOwner:
		return 0o400
	case ShareAll:
		return 0o444
	}
	return 0o440
}

// DirMode is the mode of a published folder.
func (s Share) DirMode() fs.FileMode {
	switch s {
	case ShareOwner:
		return 0o700
	case ShareAll:
		return 0o755
	}
	return 0o750
}

// LivePath is the live store of dataDir with the default file name.
func LivePath(dataDir string) string { return filepath.Join(dataDir, LiveFile) }

// dataDirOf is the data directory of a live store at path: the parent of its private
// folder (…/live/datorama.duckdb), or, for a store kept elsewhere, its own folder.
func dataDirOf(path string) string {
	dir := filepath.Dir(path)
	if filepath.Base(dir) == LiveDir {
		return filepath.Dir(dir)
	}
	return dir
}

// legacyPath is where a live store at path was kept before the live folder existed, or
// "" when path is not in a live folder.
func legacyPath(path string) string {
	dir := filepath.Dir(path)
	if filepath.Base(dir) != LiveDir {
		return ""
	}
	return filepath.Join(filepath.Dir(dir), filepath.Base(path))
}

// walSuffixes are the files DuckDB keeps next to a database: its write-ahead log and the
// logs of a checkpoint or a recovery in progress.
var walSuffixes = []string{".wal", ".wal.checkpoint", ".wal.recovery"}

// prepareLive makes the live store's folder private (creating it, mode 0700) and moves a
// store left in the data directory by an older drextract into it. The caller holds the
// data directory's lock.
func prepareLive(path string, log *slog.Logger) error {
	dir := filepath.Dir(path)
	legacy := legacyPath(path)
	if legacy == "" {
		// A store configured outside the data directory's layout: its folder is the
		// user's, so it is created private but never changed.
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating the store's folder: %w", err)
		}
		if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("the live store's folder can be listed by other users; only drextract should reach the live store",
				"folder", dir, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the store's folder: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("making %s private: %w", dir, err)
	}
	return migrateLegacy(legacy, path, log)
}

// migrateLegacy moves the store at legacy (and its logs) to path, once. Each file moves
// by rename(2), so it is at one place or the other, whole; the logs move first, so that
// a store is never found without the log that completes it. A move interrupted between
// files is finished by the next call.
func migrateLegacy(legacy, path string, log *slog.Logger) error {
	if exists(path) {
		if exists(legacy) {
			log.Warn("an older live store is still in the data directory; drextract uses the one in the live folder",
				"ignored", legacy, "used", path)
		}
		return nil
	}
	if !exists(legacy) {
		return nil
	}
	for _, suffix := range walSuffixes {
		if exists(legacy + suffix) {
			if err := os.Rename(legacy+suffix, path+suffix); err != nil {
				return fmt.Errorf("moving %s into %s: %w", legacy+suffix, filepath.Dir(path), err)
			}
		}
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return err
	}
	if err := os.Rename(legacy, path); err != nil {
		return fmt.Errorf("moving %s into %s: %w", legacy, filepath.Dir(path), err)
	}
	for _, d := range []string{filepath.Dir(path), filepath.Dir(legacy)} {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	// DuckDB's spill folder holds nothing once the store is closed.
	_ = os.RemoveAll(legacy + ".tmp")
	log.Info("moved the live store into its private folder", "from", legacy, "to", path)
	return nil
}

// makePrivate sets the live store and its logs to mode 0600. DuckDB creates them with
// the umask's mode (privateUmask makes that 0600 from then on).
func makePrivate(path string) error {
	var errs []error
	for _, p := range append([]string{path}, suffixed(path, walSuffixes)...) {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func suffixed(path string, suffixes []string) []string {
	out := make([]string, len(suffixes))
	for i, s := range suffixes {
		out[i] = path + s
	}
	return out
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// Exists reports whether a live store exists at path, or where an older drextract kept
// it (Open moves it to path).
func Exists(path string) bool {
	if exists(path) {
		return true
	}
	l := legacyPath(path)
	return l != "" && exists(l)
}

// removeLeftovers removes what an interrupted or failed publish left next to serving.
func removeLeftovers(serving string) error {
	tmp := serving + publishSuffix
	var errs []error
	for _, p := range append([]string{tmp}, suffixed(tmp, walSuffixes)...) {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(tmp + ".tmp"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// chmodTree gives every folder under root (root included) dirMode and every file
// fileMode.
func chmodTree(root string, dirMode, fileMode fs.FileMode) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		mode := fileMode
		if d.IsDir() {
			mode = dirMode
		}
		return os.Chmod(p, mode)
	})
}
