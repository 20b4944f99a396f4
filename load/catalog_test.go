package load

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/goccy/go-yaml"

	"github.com/drextract/drextract/catalog"
	"github.com/drextract/drextract/clock"
	drsql "github.com/drextract/drextract/sql"
)

// Every table, view and column of the store has a description in sql/catalog.yaml, and
// it is the column's COMMENT in the store and in the serving copy: a new column fails
// this test until it is described. A report table (made at run time) is covered too.
func TestCatalogDescribesTheStore(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	must(t, execSQL(s, `CREATE TABLE report_rows_per_stream (report_run_id BIGINT NOT NULL, date_from DATE NOT NULL,
		date_to DATE NOT NULL, loaded_at TIMESTAMPTZ NOT NULL, data_stream VARCHAR, data_stream_total_rows BIGINT)`))
	must(t, s.SyncComments(ctx))
	cat, err := catalog.Load()
	must(t, err)
	objs, err := s.Objects(ctx)
	must(t, err)
	_, missing := cat.Describe(objs)
	if len(missing) > 0 {
		t.Errorf("sql/catalog.yaml does not describe: %s", strings.Join(missing, ", "))
	}
	views, err := Views()
	must(t, err)
	for _, v := range views {
		if e := cat.Lookup(v.Name); e == nil || e.Kind != catalog.KindView {
			t.Errorf("view %s is not described as a view", v.Name)
		}
	}
	// Nothing the catalog describes is gone from the store (a renamed column keeps no
	// stale description).
	have := map[string]bool{}
	for _, o := range objs {
		have[o.Name] = true
		for _, c := range o.Columns {
			have[o.Name+"."+c.Name] = true
		}
	}
	for _, name := range catalogNames(t) {
		if !have[name] && !strings.Contains(name, "*") {
			t.Errorf("sql/catalog.yaml describes %s, which the store does not have", name)
		}
	}

	servingPath := filepath.Join(t.TempDir(), ServingFile)
	must(t, s.Publish(ctx, servingPath))
	serving, err := OpenReadOnly(ctx, servingPath)
	must(t, err)
	defer serving.Close()
	for name, st := range map[string]*Store{"store": s, "serving copy": serving} {
		var n int
		must(t, st.db.QueryRow(`SELECT count(*) FROM duckdb_columns() WHERE database_name = current_database()
			AND schema_name = 'main' AND NOT internal AND (comment IS NULL OR comment = '')`).Scan(&n))
		if n != 0 {
			t.Errorf("%s: %d columns without a comment", name, n)
		}
		must(t, st.db.QueryRow(`SELECT count(*) FROM duckdb_views() WHERE database_name = current_database()
			AND schema_name = 'main' AND NOT internal AND comment IS NOT NULL`).Scan(&n))
		if n != len(views) {
			t.Errorf("%s: %d views with a comment, want %d", name, n, len(views))
		}
		var comment string
		must(t, st.db.QueryRow(`SELECT comment FROM duckdb_columns() WHERE table_name = 'jobs_enriched' AND column_name = 'rows_retrieved'`).Scan(&comment))
		if want := cat.Column("jobs_enriched", "rows_retrieved"); comment != want {
			t.Errorf("%s: jobs_enriched.rows_retrieved is described %q, want %q", name, comment, want)
		}
		for _, v := range views {
			if _, err := st.db.Exec("SELECT * FROM " + v.Name); err != nil {
				t.Errorf("%s: view %s: %v", name, v.Name, err)
			}
		}
	}
}

// catalogNames lists "table" and "table.column" for every entry of sql/catalog.yaml.
func catalogNames(t *testing.T) []string {
	var f struct {
		Tables map[string]struct {
			Columns map[string]string `json:"columns"`
		} `json:"tables"`
		Views map[string]struct {
			Columns map[string]string `json:"columns"`
		} `json:"views"`
	}
	j, err := yaml.YAMLToJSON(drsql.Catalog)
	must(t, err)
	must(t, json.Unmarshal(j, &f))
	var out []string
	for name, e := range f.Tables {
		out = append(out, name)
		for c := range e.Columns {
			out = append(out, name+"."+c)
		}
	}
	for name, e := range f.Views {
		out = append(out, name)
		for c := range e.Columns {
			out = append(out, name+"."+c)
		}
	}
	slices.Sort(out)
	return out
}

// The tables a publish target does not copy are the ones the catalog calls internal.
func TestInternalTablesAreTheCatalogs(t *testing.T) {
	cat, err := catalog.Load()
	must(t, err)
	objs, err := openTemp(t).Objects(context.Background())
	must(t, err)
	for _, o := range objs {
		e := cat.Lookup(o.Name)
		if e == nil {
			continue // TestCatalogDescribesTheStore reports it
		}
		if e.Internal != IsInternal(o.Name) {
			t.Errorf("%s: internal in the catalog %v, not published %v", o.Name, e.Internal, IsInternal(o.Name))
		}
	}
}

// Migrations 0011 and 0021 rename the action tables' and the report tables' run_id
// (report tables are made at run time, so by the migration's Go step), keeping the data.
func TestRunIDRenames(t *testing.T) {
	ctx := context.Background()
	all, err := listMigrations(embeddedMigrations(t))
	must(t, err)
	before := fstest.MapFS{}
	for _, m := range all {
		if m.version < 11 || (m.version >= 20 && m.version < 21) {
			body, err := drsql.Migrations.ReadFile("migrations/" + m.file)
			must(t, err)
			before[m.file] = &fstest.MapFile{Data: body}
		}
	}
	path := filepath.Join(t.TempDir(), LiveFile)
	must(t, os.MkdirAll(filepath.Dir(path), 0o700))
	db, err := openDB(path)
	must(t, err)
	_, err = migrate(ctx, db, before, clock.NewManual(t0), quietLogger())
	must(t, err)
	for _, q := range []string{
		`INSERT INTO action_runs (selection, source, operation, started, status) VALUES ('s', 'selection', 'rerun', now(), 'ok')`,
		`INSERT INTO action_calls (run_id, call_no, operation, status) VALUES (1, 1, 'rerun', 'sent')`,
		`INSERT INTO action_items (run_id, operation, status) VALUES (1, 'rerun', 'sent')`,
		`INSERT INTO report_runs (report, table_name, workspace, date_from, date_to, mode, started, status)
		 VALUES ('r', 'report_r', 1, DATE '2026-01-01', DATE '2026-01-02', 'replace', now(), 'ok')`,
		`CREATE TABLE report_r (run_id BIGINT NOT NULL, date_from DATE NOT NULL, date_to DATE NOT NULL, loaded_at TIMESTAMPTZ NOT NULL, x BIGINT)`,
		`INSERT INTO report_r VALUES (1, DATE '2026-01-01', DATE '2026-01-02', now(), 42)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	must(t, db.Close())

	s, err := Open(ctx, path, Options{Clock: clock.NewManual(t0), Logger: quietLogger()})
	must(t, err)
	defer s.Close()
	for _, q := range []string{
		`SELECT count(*) FROM action_calls WHERE action_run_id = 1`,
		`SELECT count(*) FROM action_items WHERE action_run_id = 1`,
		`SELECT count(*) FROM report_runs WHERE report_run_id = 1`,
		`SELECT count(*) FROM report_r WHERE report_run_id = 1 AND x = 42`,
	} {
		if n := count(t, s.db, q); n != 1 {
			t.Errorf("%s: %d, want 1", q, n)
		}
	}
	if n := count(t, s.db, `SELECT count(*) FROM duckdb_columns() WHERE column_name = 'run_id'
		AND table_name IN ('action_calls', 'action_items', 'report_runs', 'report_r')`); n != 0 {
		t.Errorf("%d of the renamed tables still have a run_id", n)
	}
}

// A publish refuses while a run is running: its rows could be half written.
func TestChangesRefusesWhileARunRuns(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	run, err := s.StartRun(ctx, RunStart{Schedule: "t", Kind: "extract"})
	must(t, err)
	if _, err := s.Changes(ctx, "t", ChangeOptions{}); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Fatalf("Changes during run %d: %v", run, err)
	}
	must(t, s.FinishRun(ctx, run, RunEnd{Status: RunOK}))
	cs, err := s.Changes(ctx, "t", ChangeOptions{})
	must(t, err)
	if !cs.Full {
		t.Error("the first change set for a target is not a full one")
	}
	must(t, cs.Close())
}

func execSQL(s *Store, q string) error {
	_, err := s.db.Exec(q)
	return err
}
