package load_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/load/loadtest"
)

func quiet() load.Options { return load.Options{Logger: slog.New(slog.DiscardHandler)} }

func jobCount(t *testing.T, s *load.Store) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRow("SELECT count(*) FROM jobs").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A store damaged on disk as in issue 12's reproduction (64 bytes inverted every 997 KiB
// from byte 300,000) is refused before DuckDB reads it: DuckDB would fail a statement on
// the first bad block and could fault on a later one.
func TestDamagedStoreIsRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := load.LivePath(dir)
	if err := loadtest.BuildStore(ctx, path, loadtest.Shape{Jobs: 40_000, Streams: 40, Workspaces: 2, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	s, err := load.Open(ctx, path, quiet())
	if err != nil {
		t.Fatalf("the undamaged store: %v", err)
	}
	if err := s.Publish(ctx, filepath.Join(dir, load.ServingFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Export(ctx, filepath.Join(dir, load.ParquetDir)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := loadtest.Corrupt(path, 300_000, 997*1024, 64); err != nil || n == 0 {
		t.Fatalf("corrupting: %d places, %v", n, err)
	}

	_, err = load.Open(ctx, path, quiet())
	var de *load.DamagedError
	if !errors.As(err, &de) {
		t.Fatalf("Open of a damaged store: %v, want a *load.DamagedError", err)
	}
	msg := err.Error()
	for _, want := range []string{path, "damaged", "fails its checksum", filepath.Join(dir, load.ServingFile),
		filepath.Join(dir, load.ParquetDir), "extract --full", "new --data-dir"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q does not say %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("message %q is more than one line", msg)
	}
	if de.Path != path {
		t.Errorf("DamagedError.Path = %s, want %s", de.Path, path)
	}
	_, err = load.OpenReadOnly(ctx, path)
	if !errors.As(err, &de) {
		t.Fatalf("OpenReadOnly of a damaged store: %v, want a *load.DamagedError", err)
	}
}

// Damage to blocks on the free list is no damage: DuckDB never reads them, and a file
// system may even have punched them out.
func TestDamageInFreeBlocksIsIgnored(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := load.LivePath(dir)
	if err := loadtest.BuildStore(ctx, path, loadtest.Shape{Jobs: 20_000, Streams: 20, Workspaces: 1, Seed: 4}); err != nil {
		t.Fatal(err)
	}
	// Rewriting a column and checkpointing frees the blocks of its old segments.
	s, err := load.Open(ctx, path, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DB().Exec("UPDATE jobs SET raw = json_object('id', id), status = lower(status); CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	want := jobCount(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	free, err := load.FreeBlocks(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(free) == 0 {
		t.Fatal("no free blocks to damage")
	}
	for _, off := range free {
		if _, err := loadtest.Corrupt(path, off+1000, 1<<62, 64); err != nil {
			t.Fatal(err)
		}
	}
	if blocks, err := load.VerifyFile(path); err != nil || blocks == 0 {
		t.Fatalf("verifying with %d damaged free blocks: %d blocks checked, %v", len(free), blocks, err)
	}
	s, err = load.Open(ctx, path, quiet())
	if err != nil {
		t.Fatalf("opening with damaged free blocks: %v", err)
	}
	defer s.Close()
	if got := jobCount(t, s); got != want {
		t.Errorf("%d jobs, want %d", got, want)
	}
	// Every column of every row reads (DuckDB checks each block it reads).
	if _, err := s.DB().Exec("SELECT max(length(CAST(COLUMNS(*) AS VARCHAR))) FROM jobs"); err != nil {
		t.Errorf("reading every block: %v", err)
	}

	// And one byte in a used block is found.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for off := int64(3 * 4096); ; off += 262144 {
		if !contains(free, off) {
			if _, err := loadtest.Corrupt(path, off+5000, 1<<62, 1); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if _, err := load.Open(ctx, path, quiet()); !errors.As(err, new(*load.DamagedError)) {
		t.Errorf("one inverted byte in a used block: %v, want a *load.DamagedError", err)
	}
}

func contains(m map[int64]int64, off int64) bool {
	for _, o := range m {
		if o == off {
			return true
		}
	}
	return false
}

// A file that is not a store at all, or cut short, is damaged too.
func TestTruncatedStoreIsRefused(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := load.LivePath(dir)
	if err := loadtest.BuildStore(ctx, path, loadtest.Shape{Jobs: 5_000, Streams: 5, Workspaces: 1, Seed: 5}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, fi.Size()-100_000); err != nil {
		t.Fatal(err)
	}
	_, err = load.Open(ctx, path, quiet())
	if !errors.As(err, new(*load.DamagedError)) {
		t.Errorf("a store cut short: %v, want a *load.DamagedError", err)
	}
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = load.Open(ctx, path, quiet())
	if !errors.As(err, new(*load.DamagedError)) {
		t.Errorf("a file that is no store: %v, want a *load.DamagedError", err)
	}
}

// A damaged serving copy is named as such: publishing again replaces it.
func TestDamagedServingCopy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if err := loadtest.BuildStore(ctx, load.LivePath(dir), loadtest.Shape{Jobs: 20_000, Streams: 20, Workspaces: 1, Seed: 6}); err != nil {
		t.Fatal(err)
	}
	s, err := load.Open(ctx, load.LivePath(dir), quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	serving := filepath.Join(dir, load.ServingFile)
	if err := s.Publish(ctx, serving); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(serving, 0o600); err != nil { // published read-only
		t.Fatal(err)
	}
	if _, err := loadtest.Corrupt(serving, 3*4096+10_000, 262_144, 64); err != nil {
		t.Fatal(err)
	}
	_, err = load.OpenReadOnly(ctx, serving)
	var de *load.DamagedError
	if !errors.As(err, &de) || !de.Copy || !strings.Contains(err.Error(), "drextract export") {
		t.Fatalf("OpenReadOnly of a damaged serving copy: %v, want a *load.DamagedError for a copy", err)
	}
	if err := s.Publish(ctx, serving); err != nil {
		t.Fatal(err)
	}
	r, err := load.OpenReadOnly(ctx, serving)
	if err != nil {
		t.Fatalf("the copy published after the damage: %v", err)
	}
	if got := jobCount(t, r); got != 20_000 {
		t.Errorf("%d jobs in the new copy, want 20000", got)
	}
	_ = r.Close()
}
