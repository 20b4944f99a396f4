package report

import (
	"context"
	"fmt"
	"github.com/drextract/drextract/load"
	"path/filepath"
	"testing"

	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/sim"
)

const (
	batchEndpoint = "POST /v1/query-batch"
	queryEndpoint = "POST /v1/query"
)

// threeDefs are three definitions of one workspace and one of another.
func threeDefs(ws []int64) []config.Report {
	var defs []config.Report
	for i, dims := range [][]string{{"Data Stream", "Date"}, {"Data Source"}, {"Workspace", "Date"}} {
		d := rowsPerStream(ws[0])
		d.Name, d.Table, d.Dimensions = fmt.Sprintf("r%d", i), fmt.Sprintf("report_r%d", i), dims
		defs = append(defs, d)
	}
	other := rowsPerStream(ws[1])
	other.Name, other.Table = "other", "report_other"
	return append(defs, other)
}

// Definitions sharing a workspace go through one /v1/query-batch call when the API has
// it; without it (404) the runner falls back to single queries and remembers.
func TestBatching(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		batch                   bool
		wantBatch1, wantSingle1 int // calls of the first run
		wantBatch2, wantSingle2 int // calls of the second run
	}{
		{name: "batch supported", batch: true, wantBatch1: 1, wantSingle1: 1, wantBatch2: 1, wantSingle2: 1},
		{name: "batch missing", batch: false, wantBatch1: 1, wantSingle1: 4, wantBatch2: 0, wantSingle2: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, sim.Options{Workspaces: 2, Streams: 8, JobsPerStream: 10, QueryBatch: sim.Bool(tc.batch)})
			defs := threeDefs(e.workspaces())
			for run, want := range [][2]int{{tc.wantBatch1, tc.wantSingle1}, {tc.wantBatch2, tc.wantSingle2}} {
				e.sim.ResetCalls()
				res, err := e.runner.Run(context.Background(), defs, Options{})
				if err != nil {
					t.Fatalf("run %d: %v", run, err)
				}
				calls := e.sim.Calls().ByEndpoint
				if calls[batchEndpoint] != want[0] || calls[queryEndpoint] != want[1] {
					t.Errorf("run %d: %d batch and %d single calls, want %d and %d", run, calls[batchEndpoint], calls[queryEndpoint], want[0], want[1])
				}
				for i, r := range res {
					if r.Rows == 0 {
						t.Errorf("run %d: %s landed no rows", run, r.Report)
					}
					if r.Batched != (tc.batch && i < 3) {
						t.Errorf("run %d: %s batched = %v", run, r.Report, r.Batched)
					}
				}
			}
			// Batched or not, each table holds exactly the single-query answer.
			want := e.truthByStreamDay(e.workspaces()[0], "2026-02-23", "2026-03-01")
			if n := count(t, e.store.DB(), `SELECT count(*) FROM report_r0`); n != int64(len(want)) {
				t.Errorf("report_r0 has %d rows, ground truth %d", n, len(want))
			}
		})
	}
}

// report_* tables follow the store's Parquet export without any help.
func TestExportIncludesReportTables(t *testing.T) {
	e := newEnv(t, sim.Options{Workspaces: 2, Streams: 8, JobsPerStream: 10})
	ctx := context.Background()
	defs := threeDefs(e.workspaces())
	if _, err := e.runner.Run(ctx, defs, Options{}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "parquet")
	stats, err := e.store.Export(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"report_r0", "report_other", "report_runs", "report_columns"} {
		want := count(t, e.store.DB(), `SELECT count(*) FROM `+load.QuoteIdent(table))
		// The file layout under a table's folder is the load package's business.
		files, _ := filepath.Glob(filepath.Join(dir, table, "*.parquet"))
		if len(files) == 0 {
			t.Errorf("%s not exported", table)
			continue
		}
		file := filepath.Join(dir, table, "*.parquet")
		if got := count(t, e.store.DB(), `SELECT count(*) FROM read_parquet($1)`, file); got != want || stats.Rows[table] != want {
			t.Errorf("%s: parquet has %d rows (stats %d), table %d", table, got, stats.Rows[table], want)
		}
	}
	var ty string
	if err := e.store.DB().QueryRow(`SELECT typeof(date) FROM read_parquet($1) LIMIT 1`, filepath.Join(dir, "report_r0", "*.parquet")).Scan(&ty); err != nil || ty != "DATE" {
		t.Errorf("date column in parquet is %q (%v), want DATE", ty, err)
	}
}
