package load

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
)

// What DuckDB and the OS say, and what the user is told.
func TestClassify(t *testing.T) {
	p := paths{live: "/d/live/datorama.duckdb", serving: "/d/serving.duckdb"}
	for _, tc := range []struct {
		name string
		err  error
		want any
		text []string
	}{
		{"DuckDB out of space", errors.New(`TransactionContext Error: Failed to commit: Could not write file "/d/live/datorama.duckdb.wal": No space left on device`),
			&DiskFullError{}, []string{"disk full", "/d/live", "datorama.duckdb.wal"}},
		{"detach after a failed checkpoint", errors.New("Detached database 'drx_serving', but CHECKPOINT during DETACH failed\nIO Error: Could not write file \"/d/serving.duckdb.new\": No space left on device"),
			&DiskFullError{}, []string{"disk full", "serving.duckdb.new"}},
		{"Go out of space", &os.PathError{Op: "write", Path: "/d/parquet.versions/x.tmp/f", Err: syscall.ENOSPC},
			&DiskFullError{}, []string{"disk full", "/d/parquet.versions/x.tmp", "writing f"}},
		{"a bad block", errors.New("IO Error: Corrupt database file: computed checksum 1 does not match stored checksum 2 in block at location 12333056"),
			&DamagedError{}, []string{"/d/live/datorama.duckdb is damaged", "extract --full"}},
		{"a bad WAL entry", errors.New(`IO Error: Failure while replaying WAL file "/d/live/datorama.duckdb.wal": Corrupt WAL file: entry at byte position 59 computed checksum 1 does not match stored checksum 2`),
			&DamagedError{}, []string{"write-ahead log /d/live/datorama.duckdb.wal is damaged", "entry at byte position 59", ".damaged"}},
		{"a BI tool on the live store", errors.New(`IO Error: Could not set lock on file "/d/live/datorama.duckdb": Conflicting lock is held in /usr/bin/python3.11 (PID 4242) by user ann. However, you would be able to open this database in read-only mode, e.g. by using the -readonly parameter in the CLI. See also https://duckdb.org/docs/stable/connect/concurrency`),
			&FileInUseError{}, []string{"process 4242 (/usr/bin/python3.11)", "/d/serving.duckdb", "BI tools"}},
		{"anything else", errors.New("Binder Error: no such column"), nil, []string{"Binder Error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := p.classify(tc.err, p.live)
			switch tc.want.(type) {
			case *DiskFullError:
				var e *DiskFullError
				if !errors.As(got, &e) {
					t.Fatalf("%v, want a *DiskFullError", got)
				}
			case *DamagedError:
				var e *DamagedError
				if !errors.As(got, &e) {
					t.Fatalf("%v, want a *DamagedError", got)
				}
			case *FileInUseError:
				var e *FileInUseError
				if !errors.As(got, &e) || e.PID != 4242 || e.Program != "/usr/bin/python3.11" {
					t.Fatalf("%v (%+v), want a *FileInUseError for pid 4242", got, e)
				}
			default:
				if got != tc.err {
					t.Fatalf("%v, want the error unchanged", got)
				}
			}
			for _, want := range tc.text {
				if !strings.Contains(got.Error(), want) {
					t.Errorf("%q does not say %q", got, want)
				}
			}
			if !errors.Is(got, tc.err) {
				t.Error("the classified error does not wrap DuckDB's")
			}
		})
	}
}

// A WAL entry that fails its checksum (DuckDB refuses the store at open) is reported as
// a damaged WAL, and moving it aside as the message says opens the store as of its last
// checkpoint.
func TestDamagedWAL(t *testing.T) {
	dir := t.TempDir()
	withWAL(t, liveIn(dir))
	wal := liveIn(dir) + ".wal"
	fi, err := os.Stat(wal)
	must(t, err)
	f, err := os.OpenFile(wal, os.O_RDWR, 0)
	must(t, err)
	_, err = f.WriteAt([]byte("not what was written here"), fi.Size()/2)
	must(t, err)
	must(t, f.Close())

	_, err = Open(context.Background(), liveIn(dir), Options{Logger: quietLogger()})
	var de *DamagedError
	if !errors.As(err, &de) || !de.WAL || de.Path != wal {
		t.Fatalf("Open with a damaged WAL: %v, want a *DamagedError for %s", err, wal)
	}
	must(t, os.Rename(wal, wal+".damaged"))
	s, err := Open(context.Background(), liveIn(dir), Options{Logger: quietLogger()})
	must(t, err)
	defer s.Close()
	if n := count(t, s.db, "SELECT count(*) FROM jobs"); n != 1200 {
		t.Errorf("%d jobs as of the last checkpoint, want 1200", n)
	}
}
