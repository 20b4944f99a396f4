package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drextract/drextract/load"
)

func TestExportCommand(t *testing.T) {
	dir := qxStore(t, false)
	code, out, errOut := qxRun(dir, "export")
	if code != ExitOK || !strings.Contains(out, "published") || !strings.Contains(out, filepath.Join(dir, load.ParquetDir)) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if fi, err := os.Lstat(filepath.Join(dir, load.ParquetDir)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("parquet folder: %v, %v", fi, err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, load.ParquetDir, load.Jobs, "year=*", "month=*", "*.parquet"))
	if len(files) == 0 {
		t.Error("no partitioned jobs files")
	}
	// The serving copy answers, and the export is recorded as a run.
	code, out, errOut = qxRun(dir, "query", "--format", "csv",
		"select kind, status, schedule, (rows->>'$.jobs')::INT as jobs from runs where kind = 'export'")
	if code != ExitOK || out != "kind,status,schedule,jobs\nexport,ok,cli,9\n" {
		t.Errorf("runs after export: exit %d, %q, %q", code, out, errOut)
	}
	// A second export replaces both.
	if code, _, errOut := qxRun(dir, "export"); code != ExitOK {
		t.Errorf("second export: exit %d, %q", code, errOut)
	}
}

func TestExportCommandRefused(t *testing.T) {
	t.Run("no store", func(t *testing.T) {
		code, _, errOut := qxRun(filepath.Join(t.TempDir(), "data"), "export")
		if code != ExitFailure || !strings.Contains(errOut, "no store") {
			t.Errorf("exit %d, %q", code, errOut)
		}
	})
	t.Run("crawl running", func(t *testing.T) {
		dir := qxStore(t, false)
		pid := qxHelper(t, "writer", dir)
		code, _, errOut := qxRun(dir, "export")
		if code != ExitFailure || !strings.Contains(errOut, fmt.Sprint(pid)) {
			t.Errorf("exit %d, stderr %q; want a failure naming pid %d", code, errOut, pid)
		}
		if _, err := os.Lstat(filepath.Join(dir, load.ParquetDir)); err == nil {
			t.Error("export wrote Parquet while refused")
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		dir := qxStore(t, false)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		var out, errOut strings.Builder
		code := DoContext(ctx, []string{"--data-dir", dir, "export"}, strings.NewReader(""), &out, &errOut)
		if code != ExitCanceled {
			t.Errorf("exit %d, %q", code, errOut.String())
		}
		if _, err := os.Stat(filepath.Join(dir, load.ServingFile)); err == nil {
			t.Error("a cancelled export published a serving copy")
		}
	})
}
