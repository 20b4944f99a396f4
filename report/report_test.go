package report

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/sim"
)

// landedRows reads report_rows_per_stream as stream/day → row, failing on a duplicate.
func landedRows(t *testing.T, db *sql.DB) map[[2]string]truthRow {
	t.Helper()
	rows, err := db.Query(`SELECT data_stream, strftime(date, '%Y-%m-%d'), data_stream_total_rows, CAST(round(cost * 100) AS BIGINT)
		FROM report_rows_per_stream`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[[2]string]truthRow{}
	for rows.Next() {
		var r truthRow
		var cents sql.NullInt64
		if err := rows.Scan(&r.Stream, &r.Date, &r.Rows, &cents); err != nil {
			t.Fatal(err)
		}
		r.CostCents = cents.Int64
		k := [2]string{r.Stream, r.Date}
		if _, dup := out[k]; dup {
			t.Errorf("duplicate row for %v", k)
		}
		out[k] = r
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func compareTruth(t *testing.T, got, want map[[2]string]truthRow) {
	t.Helper()
	if len(want) == 0 {
		t.Fatal("the ground truth has no rows in the range; the test proves nothing")
	}
	if len(got) != len(want) {
		t.Errorf("landed %d stream-days, ground truth has %d", len(got), len(want))
	}
	for k, w := range want {
		if g, ok := got[k]; !ok {
			t.Errorf("missing %v", k)
		} else if g != w {
			t.Errorf("%v: landed %+v, ground truth %+v", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("landed %v, which the ground truth does not have", k)
		}
	}
}

// Acceptance: "rows per data stream per day, last 7 days" lands exactly what the
// simulator's ground truth gives, and re-running replaces those days without duplicates.
func TestRowsPerStreamMatchesGroundTruth(t *testing.T) {
	e := newEnv(t, sim.Options{Workspaces: 2, Streams: 12, JobsPerStream: 15})
	ctx := context.Background()
	ws := e.workspaces()[0]
	def := rowsPerStream(ws)
	db := e.store.DB()

	res, err := e.runner.Run(ctx, []config.Report{def}, Options{})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	// Last 7 days as of 2026-03-02: 2026-02-23 .. 2026-03-01 (today is still loading).
	if got := res[0].Span.String(); got != "2026-02-23..2026-03-01" {
		t.Fatalf("span %s, want 2026-02-23..2026-03-01", got)
	}
	want := e.truthByStreamDay(ws, "2026-02-23", "2026-03-01")
	compareTruth(t, landedRows(t, db), want)
	if res[0].Rows != int64(len(want)) {
		t.Errorf("result says %d rows, want %d", res[0].Rows, len(want))
	}
	types := columnTypes(t, db, def.Table)
	for col, ty := range map[string]string{"date": "DATE", "data_stream": "VARCHAR", "data_stream_total_rows": "BIGINT",
		"report_run_id": "BIGINT", "date_from": "DATE", "date_to": "DATE", "loaded_at": "TIMESTAMP WITH TIME ZONE"} {
		if types[col] != ty {
			t.Errorf("column %s is %q, want %s (all: %v)", col, types[col], ty, types)
		}
	}

	// The same run again: the same rows, replaced, not doubled.
	res2, err := e.runner.Run(ctx, []config.Report{def}, Options{})
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if res2[0].Replaced != int64(len(want)) || res2[0].RunID == res[0].RunID {
		t.Errorf("second run replaced %d rows as run %d, want %d rows as a new run", res2[0].Replaced, res2[0].RunID, len(want))
	}
	compareTruth(t, landedRows(t, db), want)
	if n := count(t, db, `SELECT count(DISTINCT report_run_id) FROM report_rows_per_stream`); n != 1 {
		t.Errorf("rows of %d runs remain, want only the latest", n)
	}

	// A day later the range moves on: its 7 days are replaced, the day that left the
	// range keeps its rows from the earlier run, and no stream-day appears twice.
	e.clk.Advance(24 * time.Hour)
	if _, err := e.runner.Run(ctx, []config.Report{def}, Options{}); err != nil {
		t.Fatalf("third run: %v", err)
	}
	got := landedRows(t, db)
	want3 := e.truthByStreamDay(ws, "2026-02-24", "2026-03-02")
	inRange := map[[2]string]truthRow{}
	for k, r := range got {
		if k[1] >= "2026-02-24" {
			inRange[k] = r
		} else if k[1] != "2026-02-23" {
			t.Errorf("unexpected day %v", k)
		}
	}
	compareTruth(t, inRange, want3)

	var status string
	var rowCount int64
	if err := db.QueryRow(`SELECT status, row_count FROM report_runs WHERE report_run_id = $1`, res[0].RunID).Scan(&status, &rowCount); err != nil {
		t.Fatal(err)
	}
	if status != "ok" || rowCount != int64(len(want)) {
		t.Errorf("report_runs says %s with %d rows, want ok with %d", status, rowCount, len(want))
	}
}
