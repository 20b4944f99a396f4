package load

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drextract/drextract/clock"
)

func modeOf(t *testing.T, p string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	must(t, err)
	return fi.Mode().Perm()
}

// The live store and its WAL are private: mode 0600 in a folder only the owner can list.
// The serving copy and the Parquet export are read-only on disk with the Share's modes.
func TestFileModes(t *testing.T) {
	for _, tc := range []struct {
		name      string
		optsShare Share
		file, dir fs.FileMode
	}{
		{"owner", ShareOwner, 0o400, 0o700},
		{"group (the default)", "", 0o440, 0o750},
		{"all", ShareAll, 0o444, 0o755},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			s, err := Open(ctx, liveIn(dir), Options{Logger: quietLogger(), Share: tc.optsShare, Clock: tickingClock{clock.NewManual(t0)}})
			must(t, err)
			defer s.Close()
			fill(t, s, 1, 1500)
			if m := modeOf(t, filepath.Join(dir, LiveDir)); m != 0o700 {
				t.Errorf("live folder mode %04o, want 0700", m)
			}
			if m := modeOf(t, liveIn(dir)); m != 0o600 {
				t.Errorf("live store mode %04o, want 0600", m)
			}
			wal := liveIn(dir) + ".wal"
			if _, err := os.Stat(wal); err != nil {
				t.Fatalf("no WAL after writes: %v", err)
			}
			if m := modeOf(t, wal); m != 0o600 {
				t.Errorf("WAL mode %04o, want 0600", m)
			}
			must(t, s.Publish(ctx, servingIn(dir)))
			if m := modeOf(t, servingIn(dir)); m != tc.file {
				t.Errorf("serving copy mode %04o, want %04o", m, tc.file)
			}
			_, err = s.Export(ctx, parquetIn(dir))
			must(t, err)
			must(t, filepath.WalkDir(parquetIn(dir)+versionsSuffix, func(p string, d fs.DirEntry, err error) error {
				must(t, err)
				want := tc.file
				if d.IsDir() {
					want = tc.dir
				}
				if m := modeOf(t, p); m != want {
					t.Errorf("%s mode %04o, want %04o", p, m, want)
				}
				return nil
			}))
		})
	}
}

// withWAL makes a store at path whose last writes are only in its WAL, as a killed
// writer leaves it, and returns the number of jobs it holds.
func withWAL(t *testing.T, path string) int {
	t.Helper()
	s, err := Open(context.Background(), path, Options{Logger: quietLogger()})
	must(t, err)
	fill(t, s, 1, 1200)
	_, err = s.db.Exec("CHECKPOINT")
	must(t, err)
	_, err = s.db.Exec("PRAGMA disable_checkpoint_on_shutdown")
	must(t, err)
	fill(t, s, 50_000, 300)
	n := count(t, s.db, "SELECT count(*) FROM jobs")
	must(t, s.Close())
	if _, err := os.Stat(path + ".wal"); err != nil {
		t.Fatalf("no WAL left: %v", err)
	}
	return n
}

// A data directory an older drextract made (datorama.duckdb and its WAL directly in it)
// is moved into live/ on the first open, WAL first, and nothing is lost, also when an
// earlier move stopped between the two files.
func TestLegacyStoreMoved(t *testing.T) {
	ctx := context.Background()
	for _, stage := range []string{"untouched", "WAL already moved"} {
		t.Run(stage, func(t *testing.T) {
			dir := t.TempDir()
			legacy := filepath.Join(dir, liveName)
			want := withWAL(t, legacy)
			if stage == "WAL already moved" {
				must(t, os.MkdirAll(filepath.Join(dir, LiveDir), 0o700))
				must(t, os.Rename(legacy+".wal", liveIn(dir)+".wal"))
			}
			if !Exists(liveIn(dir)) {
				t.Error("Exists does not see the store an older drextract left")
			}
			s, err := Open(ctx, liveIn(dir), Options{Logger: quietLogger()})
			must(t, err)
			defer s.Close()
			if n := count(t, s.db, "SELECT count(*) FROM jobs"); n != want {
				t.Errorf("%d jobs after the move, want %d", n, want)
			}
			for _, gone := range []string{legacy, legacy + ".wal"} {
				if _, err := os.Lstat(gone); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("%s still there: %v", gone, err)
				}
			}
			if m := modeOf(t, liveIn(dir)); m != 0o600 {
				t.Errorf("moved store mode %04o, want 0600", m)
			}
		})
	}
	t.Run("both present", func(t *testing.T) {
		dir := t.TempDir()
		legacy := filepath.Join(dir, liveName)
		withWAL(t, legacy)
		s, err := Open(ctx, liveIn(dir), Options{Logger: quietLogger()})
		must(t, err)
		must(t, s.Close())
		withWAL(t, legacy) // an older binary ran again and made a new one
		s, err = Open(ctx, liveIn(dir), Options{Logger: quietLogger()})
		must(t, err)
		defer s.Close()
		if _, err := os.Stat(legacy); err != nil {
			t.Errorf("the older store was touched while a live one exists: %v", err)
		}
	})
}

// A BI tool holding the live store open: Open says which process, and that BI tools
// must open serving.duckdb, instead of DuckDB's advice to open read-only.
func TestLiveStoreHeldByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	s := openIn(t, dir)
	fill(t, s, 1, 100)
	must(t, s.Close())
	cmd, out := startChild(t, "hold-readonly", liveIn(dir))
	if line := readLine(t, out); !strings.HasPrefix(line, "ready") {
		t.Fatalf("child said %q", line)
	}
	_, err := Open(context.Background(), liveIn(dir), Options{Logger: quietLogger()})
	var held *FileInUseError
	if !errors.As(err, &held) {
		t.Fatalf("Open while another process holds the store: %v, want a *FileInUseError", err)
	}
	if held.PID != cmd.Process.Pid || !held.Live {
		t.Errorf("FileInUseError %+v, want pid %d of the live store", held, cmd.Process.Pid)
	}
	msg := err.Error()
	for _, want := range []string{fmt.Sprint(cmd.Process.Pid), liveIn(dir), servingIn(dir), "BI tools"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "read-only mode") {
		t.Errorf("message %q still gives DuckDB's advice", msg)
	}
}

// Opening a file this process already has open in DuckDB must not cost DuckDB its lock:
// POSIX locks go when the process closes any descriptor of the file, and the
// verification reads through a descriptor of its own.
func TestSecondOpenKeepsTheLock(t *testing.T) {
	dir := t.TempDir()
	s := openIn(t, dir)
	fill(t, s, 1, 10)
	if r, err := OpenReadOnly(context.Background(), liveIn(dir)); err == nil {
		must(t, r.Close())
	}
	_, out := startChild(t, "hold-readonly", liveIn(dir))
	if line := readLine(t, out); strings.HasPrefix(line, "ready") {
		t.Fatal("another process opened the live store while this one has it open for writing")
	}
}
