package report

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/load"
)

const walChildEnv = "DREXTRACT_REPORT_WAL_CHILD"

// TestNewColumnSurvivesAKill: a report whose answer adds a column is landed by a process
// that then dies without closing the store (as a kill leaves it, the WAL not folded);
// the store opens again with both landings in it. DuckDB 1.5 failed to replay a WAL
// holding a migration's ALTER TABLE … ADD COLUMN followed by writes (load's migrate
// checkpoints for that reason); a report's schema change and its rows, in one
// transaction, replay fine, and this guards it.
func TestNewColumnSurvivesAKill(t *testing.T) {
	if path := os.Getenv(walChildEnv); path != "" {
		landTwiceAndDie(t, path)
		return
	}
	path := filepath.Join(t.TempDir(), load.LiveFile)
	cmd := exec.Command(os.Args[0], "-test.run=^TestNewColumnSurvivesAKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), walChildEnv+"="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if _, err := os.Stat(path + ".wal"); err != nil {
		t.Fatalf("the child left no WAL to replay (%v): the test proves nothing", err)
	}
	st, err := load.Open(context.Background(), path, load.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatalf("the store does not open after the kill: %v", err)
	}
	defer st.Close()
	if n := count(t, st.DB(), `SELECT count(*) FROM report_killed WHERE cost IS NOT NULL`); n != 1 {
		t.Errorf("%d rows with the added column after the kill, want 1", n)
	}
}

// landTwiceAndDie lands an answer, then one with a new column, and exits at once.
func landTwiceAndDie(t *testing.T, path string) {
	ctx := context.Background()
	st, err := load.Open(ctx, path, load.Options{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	def := &config.Report{Name: "killed", Workspace: 1, Table: "report_killed", Mode: config.ModeAppend,
		Dimensions: []string{"Date"}, Measurements: []string{"Rows"}}
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	span := Span{From: mustDate(t, "2026-03-01"), To: mustDate(t, "2026-03-01")}
	for _, res := range [][]string{{"Date", "Rows"}, {"Date", "Rows", "Cost"}} {
		row := `["2026-03-01", 10]`
		if len(res) == 3 {
			row = `["2026-03-01", 10, 2]`
		}
		runID, err := startRun(ctx, st.DB(), def, span, now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := land(ctx, st.DB(), landing{def: def, span: span, runID: runID, result: answer(t, res, row)}, now); err != nil {
			t.Fatal(err)
		}
	}
	os.Exit(0) // no Close, no checkpoint: what a kill leaves
}
