package action

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drextract/drextract/sim"
)

// Acceptance: a selection with DELETE/UPDATE/ATTACH/COPY is refused (by the sandbox, see
// load's tests for the whole list); a selection lacking
// a column its action needs is refused, naming the column. Nothing is sent, nothing in
// the store changes.
func TestSelectionsRefused(t *testing.T) {
	e := newEnv(t, sim.Options{Workspaces: 1, Streams: 6, JobsPerStream: 3})
	e.crawl(true)
	dir := t.TempDir()
	files := map[string]string{
		"del.sql":        "-- action: rerun-all\nDELETE FROM streams",
		"upd.sql":        "-- action: rename\nUPDATE streams SET name = 'x' RETURNING id AS stream_id, name",
		"attach.sql":     "-- action: rerun-all\nATTACH '/tmp/x.duckdb' AS x",
		"copy.sql":       "-- action: rerun-all\nCOPY streams TO '/tmp/streams.csv'",
		"hidden.sql":     "-- action: rerun-all\nSELECT id AS stream_id FROM streams; DELETE FROM streams",
		"cte-delete.sql": "-- action: rerun-all\nWITH d AS (DELETE FROM streams RETURNING id) SELECT id AS stream_id FROM d",
		"nojob.sql":      "-- action: rerun\nSELECT id AS stream_id, name FROM streams",
		"nocols.sql":     "-- action: process\nSELECT id FROM streams",
		"typo.sql":       "-- action: rerun-all\n-- param: ws (required)\nSELECT id AS stream_id FROM streams WHERE workspace_id = CAST($wss AS BIGINT)",
		"positional.sql": "-- action: rerun-all\nSELECT id AS stream_id FROM streams WHERE workspace_id = ?",
		"ok.sql":         "-- action: rerun-all\n-- param: ws (required)\nSELECT id AS stream_id FROM streams WHERE workspace_id = CAST($ws AS BIGINT) AND false",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cat, err := LoadCatalog(dir)
	if err != nil {
		t.Fatal(err)
	}
	streams := e.count(`SELECT count(*) FROM streams`)
	tests := []struct {
		sel     string
		params  map[string]string
		wantErr string
	}{
		{"del", nil, "DELETE"},
		{"upd", nil, "UPDATE"},
		{"attach", nil, "ATTACH"},
		{"copy", nil, "reaches outside the store's tables"},
		{"hidden", nil, "more than one statement"},
		{"cte-delete", nil, "A CTE needs a SELECT"},
		{"nojob", nil, `selection nojob lacks column "job_id" that action rerun needs`},
		{"nocols", nil, `lacks columns "stream_id", "start_date", "end_date"`},
		{"typo", map[string]string{"ws": "1"}, "uses $wss, which its header does not declare"},
		{"positional", nil, "use named parameters"},
		{"ok", nil, `needs parameter "ws"`},
		{"ok", map[string]string{"ws": "1", "extra": "2"}, "has no parameter extra"},
	}
	mut := e.mutatingCalls()
	for _, tt := range tests {
		t.Run(tt.sel, func(t *testing.T) {
			_, err := e.eng.Prepare(context.Background(), Request{Selection: mustGet(t, cat, tt.sel), Params: tt.params})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if !errors.Is(err, ErrBadInput) {
				t.Errorf("error is not ErrBadInput: %v", err)
			}
		})
	}
	if _, err := e.eng.Prepare(context.Background(), Request{Selection: mustGet(t, cat, "ok"), Params: map[string]string{"ws": "1"}}); err != nil {
		t.Errorf("a good selection was refused: %v", err)
	}
	if got := e.count(`SELECT count(*) FROM streams`); got != streams {
		t.Errorf("streams: %d rows, had %d", got, streams)
	}
	if got := e.mutatingCalls() - mut; got != 0 {
		t.Errorf("%d calls sent", got)
	}
	if n := e.count(`SELECT count(*) FROM action_runs`); n != 0 {
		t.Errorf("%d action runs recorded for refused selections", n)
	}
}

// max_rows refuses a selection that returns more rows than its header allows, and
// --max-calls a plan that needs more calls.
func TestRowAndCallLimits(t *testing.T) {
	e := newEnv(t, sim.Options{Workspaces: 1, Streams: 8, JobsPerStream: 2})
	e.crawl(true, "streams")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "all.sql"), []byte("-- action: enable\n-- max_rows: 3\nSELECT id AS stream_id FROM streams"), 0o644)
	cat, err := LoadCatalog(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.eng.Prepare(context.Background(), Request{Selection: mustGet(t, cat, "all")})
	if err == nil || !strings.Contains(err.Error(), "more than 3 rows") {
		t.Fatalf("max_rows: %v", err)
	}
	if _, err := e.eng.Prepare(context.Background(), Request{Selection: mustGet(t, cat, "all"), Op: OpDisable, Options: Options{MaxRows: 100, MaxCalls: 2}}); err == nil {
		t.Fatal("disable is not the selection's action: want an error")
	}
	os.WriteFile(filepath.Join(dir, "any.sql"), []byte("-- max_rows: 100\nSELECT id AS stream_id FROM streams"), 0o644)
	cat, _ = LoadCatalog(dir)
	p, err := e.eng.Prepare(context.Background(), Request{Selection: mustGet(t, cat, "any"), Op: OpDisable, Options: Options{MaxCalls: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(); !errors.Is(err, ErrTooManyCalls) {
		t.Fatalf("Check: %v", err)
	}
	mut := e.mutatingCalls()
	if _, err := e.eng.Execute(context.Background(), p, false, nil); !errors.Is(err, ErrTooManyCalls) {
		t.Fatalf("Execute over the call limit: %v", err)
	}
	if e.mutatingCalls() != mut {
		t.Fatal("calls were sent over the limit")
	}
	if _, err := e.eng.Prepare(context.Background(), Request{Selection: mustGet(t, cat, "any")}); err == nil || !strings.Contains(err.Error(), "declares no action") {
		t.Errorf("no action: %v", err)
	}
}
