package load

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"
)

// These tests make DuckDB meet a real ENOSPC from the kernel on any Linux machine, with
// no privileges: a file the store is about to create is a symlink to /dev/full, on which
// every write fails with "No space left on device". diskfull_linux_test.go fills a real
// small file system where the machine allows mounting one.

func devFull(t *testing.T, at string) {
	t.Helper()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full here")
	}
	must(t, os.Symlink("/dev/full", at))
}

func leftovers(serving string) []string {
	var out []string
	for _, p := range append([]string{serving + publishSuffix}, suffixed(serving+publishSuffix, walSuffixes)...) {
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Issue 12, point 6: a publish that runs out of space says so on its first line, names
// where, removes its partial files at once, leaves the old serving copy and the store
// as they were, and the next publish works.
func TestPublishDiskFull(t *testing.T) {
	dir := t.TempDir()
	s := openIn(t, dir)
	ctx := context.Background()
	fill(t, s, 1, 400)
	must(t, s.Publish(ctx, servingIn(dir)))
	fill(t, s, 10_000, 300)
	want := storeCounts(t, s.db)
	s.exportStage = func(stage string) error {
		if stage == "publish:attached" {
			devFull(t, servingIn(dir)+publishSuffix+".wal")
		}
		return nil
	}
	err := s.Publish(ctx, servingIn(dir))
	s.exportStage = nil
	var full *DiskFullError
	if !errors.As(err, &full) {
		t.Fatalf("publish onto a full disk: %v, want a *DiskFullError", err)
	}
	t.Logf("the error: %v", err)
	first, _, _ := strings.Cut(err.Error(), "\n")
	if !strings.Contains(first, "disk full") || !strings.Contains(first, dir) {
		t.Errorf("first line %q does not say the disk is full and where (%s)", first, dir)
	}
	if l := leftovers(servingIn(dir)); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
	r, err := OpenReadOnly(ctx, servingIn(dir))
	must(t, err)
	if n := count(t, r.DB(), "SELECT count(*) FROM jobs"); n != 400 {
		t.Errorf("old serving copy has %d jobs, want 400", n)
	}
	must(t, r.Close())
	if got := storeCounts(t, s.db); !equalCounts(got, want) {
		t.Errorf("store after the failed publish %v, want %v", got, want)
	}
	must(t, s.Publish(ctx, servingIn(dir)))
	r, err = OpenReadOnly(ctx, servingIn(dir))
	must(t, err)
	defer r.Close()
	if n := count(t, r.DB(), "SELECT count(*) FROM jobs"); n != 700 {
		t.Errorf("serving copy after space came back has %d jobs, want 700", n)
	}
}

// A crawl page that cannot be written for lack of space fails alone: the store stays as
// it was committed, opens, and the next write works once there is space.
func TestWriteDiskFull(t *testing.T) {
	dir := t.TempDir()
	s := openIn(t, dir)
	ctx := context.Background()
	fill(t, s, 1, 1000)
	_, err := s.db.Exec("CHECKPOINT") // no WAL file now; the next write creates it
	must(t, err)
	want := storeCounts(t, s.db)
	wal := liveIn(dir) + ".wal"
	if _, err := os.Lstat(wal); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a WAL is still there after CHECKPOINT: %v", err)
	}
	devFull(t, wal)
	err = s.Write(ctx, 1, Batch{Entity: Jobs, ParentID: 10, ObservedAt: t0, Jobs: jobPage(10, 1, 5000, 200, "SUCCESS")})
	if err == nil {
		t.Fatal("a write onto a full disk succeeded")
	}
	var full *DiskFullError
	if !errors.As(s.Classify(err), &full) || full.Path != wal {
		t.Errorf("Classify(%v) = %v, want a *DiskFullError for %s", err, s.Classify(err), wal)
	}
	if got := storeCounts(t, s.db); !equalCounts(got, want) {
		t.Errorf("store after the failed write %v, want %v", got, want)
	}
	must(t, os.Remove(wal)) // space is back
	must(t, s.Close())

	s, err = Open(ctx, liveIn(dir), Options{Logger: quietLogger()})
	must(t, err)
	defer s.Close()
	if got := storeCounts(t, s.db); !equalCounts(got, want) {
		t.Errorf("store reopened %v, want %v", got, want)
	}
	must(t, s.Write(ctx, 1, Batch{Entity: Jobs, ParentID: 10, ObservedAt: t0, Jobs: jobPage(10, 1, 5000, 200, "SUCCESS")}))
	if n := count(t, s.db, "SELECT count(*) FROM jobs"); int64(n) != want[Jobs]+200 {
		t.Errorf("%d jobs after the next write, want %d", n, want[Jobs]+200)
	}
}

func equalCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
