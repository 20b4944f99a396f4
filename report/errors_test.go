package report

import (
	"context"
	"errors"
	"testing"

	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/sim"
)

// Acceptance: a 200-with-errors answer and a 422 each produce a clear error naming the
// definition (and, for the 422, the field), and write nothing.
func TestQueryErrorsNameTheDefinition(t *testing.T) {
	unknownDim := func(d *config.Report) {
		d.Name, d.Table = "bad-dimension", "report_bad_dimension"
		d.Dimensions = []string{"Data Stream", "Data Stream Colour"}
	}
	unknownSort := func(d *config.Report) {
		d.Name, d.Table = "bad-sort", "report_bad_sort"
		d.Sort = &config.Sort{By: "Spend", Order: "DESC"}
	}
	for _, tc := range []struct {
		name      string
		batch     bool
		fault     bool
		edit      func(*config.Report)
		wantParts []string
		want422   bool
		wantQuery bool
	}{
		{name: "200 with errors", fault: true, edit: func(d *config.Report) {},
			wantParts: []string{`report "rows-per-stream"`, "answered with errors", "timed out"}, wantQuery: true},
		{name: "422 unknown dimension", edit: unknownDim,
			wantParts: []string{`report "bad-dimension"`, `field "Data Stream Colour"`}, want422: true},
		{name: "422 unknown sort field", edit: unknownSort,
			wantParts: []string{`report "bad-sort"`, `field "Spend"`}, want422: true},
		{name: "422 in a batch", batch: true, edit: unknownDim,
			wantParts: []string{`report "bad-dimension"`, `field "Data Stream Colour"`}, want422: true},
		{name: "200 with errors in a batch", batch: true, fault: true, edit: func(d *config.Report) {},
			wantParts: []string{`report "rows-per-stream"`, "answered with errors"}, wantQuery: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, sim.Options{Workspaces: 1, Streams: 4, JobsPerStream: 10, QueryBatch: sim.Bool(tc.batch)})
			ws := e.workspaces()[0]
			bad := rowsPerStream(ws)
			tc.edit(&bad)
			good := rowsPerStream(ws)
			good.Name, good.Table = "good", "report_good"
			defs := []config.Report{bad}
			if tc.batch {
				// The fault hits the first query of a batch; the good one rides along.
				defs = append(defs, good)
			}
			if tc.fault {
				e.sim.SetFaults(sim.Faults{Rates: map[string]float64{sim.FaultQueryError: 1}})
			}
			res, err := e.runner.Run(context.Background(), defs, Options{})
			if err == nil {
				t.Fatal("run succeeded, want an error")
			}
			mustContain(t, err.Error(), tc.wantParts...)
			var de *DefinitionError
			if !errors.As(res[0].Err, &de) || de.Report != bad.Name {
				t.Errorf("result error %v is not a DefinitionError for %s", res[0].Err, bad.Name)
			}
			var apiErr *datorama.APIError
			if got := errors.As(err, &apiErr) && apiErr.Status == 422; got != tc.want422 {
				t.Errorf("422 APIError in the chain: %v, want %v", got, tc.want422)
			}
			var qe *datorama.QueryError
			if got := errors.As(err, &qe); got != tc.wantQuery {
				t.Errorf("QueryError in the chain: %v, want %v", got, tc.wantQuery)
			}
			db := e.store.DB()
			if n := count(t, db, `SELECT count(*) FROM duckdb_tables() WHERE table_name = $1`, bad.Table); n != 0 {
				t.Errorf("table %s exists after a failed run", bad.Table)
			}
			var status, msg string
			if err := db.QueryRow(`SELECT status, error FROM report_runs WHERE report = $1`, bad.Name).Scan(&status, &msg); err != nil {
				t.Fatal(err)
			}
			if status != "failed" {
				t.Errorf("report_runs status %s, want failed", status)
			}
			mustContain(t, msg, tc.wantParts...)
			if tc.batch {
				if res[1].Err != nil || res[1].Rows == 0 {
					t.Errorf("the good definition of the batch: %+v", res[1])
				}
			}
		})
	}
}
