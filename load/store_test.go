package load

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/drextract/drextract/clock"
	drsql "github.com/drextract/drextract/sql"
)

func count(t testing.TB, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// TestWriteAbortedBeforeCommit fails a write after every statement of it has run, right
// before COMMIT: rows, history, status changes and checkpoint must all be gone.
func TestWriteAbortedBeforeCommit(t *testing.T) {
	for _, tc := range []struct {
		name string
		hook func(cancel context.CancelFunc) func(context.Context) error
	}{
		{"error", func(context.CancelFunc) func(context.Context) error {
			return func(context.Context) error { return errors.New("injected failure") }
		}},
		{"cancelled context", func(cancel context.CancelFunc) func(context.Context) error {
			return func(context.Context) error { cancel(); return nil }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openTemp(t)
			ctx := context.Background()
			run, _ := s.StartRun(ctx, RunStart{Schedule: "t", Kind: "extract"})
			must(t, s.Write(ctx, run, Batch{Entity: Streams, ParentID: 1, ObservedAt: t0, Complete: true,
				Streams: []StreamRow{{ID: 10, WorkspaceID: 1, Name: "a", Raw: json.RawMessage(`{"name":"a"}`)},
					{ID: 11, WorkspaceID: 1, Name: "b", Raw: json.RawMessage(`{"name":"b"}`)}},
				Checkpoint: &Checkpoint{Kind: "streams", ParentID: 1, State: json.RawMessage(`{"v":1}`)}}))
			must(t, s.Write(ctx, run, Batch{Entity: Jobs, ParentID: 10, ObservedAt: t0, Jobs: jobPage(10, 1, 1, 3, "PENDING")}))
			before := snapshot(t, s)

			wctx, cancel := context.WithCancel(ctx)
			defer cancel()
			s.beforeCommit = tc.hook(cancel)
			err := s.Write(wctx, run, Batch{Entity: Streams, ParentID: 1, ObservedAt: t0.Add(time.Hour), Complete: true,
				Streams:    []StreamRow{{ID: 10, WorkspaceID: 1, Name: "renamed", Raw: json.RawMessage(`{"name":"renamed"}`)}},
				Checkpoint: &Checkpoint{Kind: "streams", ParentID: 1, State: json.RawMessage(`{"v":2}`)}})
			if err == nil {
				t.Fatal("Write succeeded despite the failure before COMMIT")
			}
			err = s.Write(wctx, run, Batch{Entity: Jobs, ParentID: 10, ObservedAt: t0.Add(time.Hour), Complete: true,
				Jobs: jobPage(10, 1, 2, 3, "SUCCESS"), Checkpoint: &Checkpoint{Kind: "jobs", ParentID: 10}})
			if err == nil {
				t.Fatal("second Write succeeded despite the failure before COMMIT")
			}
			s.beforeCommit = nil
			if after := snapshot(t, s); after != before {
				t.Errorf("store changed by failed writes:\nbefore %s\nafter  %s", before, after)
			}
			// The write connection is clean: the next write works.
			must(t, s.Write(ctx, run, Batch{Entity: Jobs, ParentID: 10, ObservedAt: t0.Add(time.Hour), Jobs: jobPage(10, 1, 2, 3, "SUCCESS")}))
			if n := count(t, s.db, `SELECT count(*) FROM jobs WHERE status = 'SUCCESS'`); n != 3 {
				t.Errorf("%d SUCCESS jobs after the retry, want 3", n)
			}
		})
	}
}

// snapshot summarises every table the write path touches.
func snapshot(t *testing.T, s *Store) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		`SELECT string_agg(id || ':' || name || ':' || is_deleted, ',' ORDER BY id) FROM streams`,
		`SELECT string_agg(id || ':' || status || ':' || is_deleted, ',' ORDER BY id) FROM jobs`,
		`SELECT string_agg(id || ':' || row_hash || ':' || is_current, ',' ORDER BY id, valid_from) FROM streams_history`,
		`SELECT count(*) FROM job_status_changes`,
		`SELECT string_agg(kind || parent_id || CAST(state AS VARCHAR), ',' ORDER BY kind, parent_id) FROM checkpoints`,
	} {
		var v sql.NullString
		if err := s.db.QueryRow(q).Scan(&v); err != nil {
			t.Fatal(err)
		}
		b.WriteString(v.String + " | ")
	}
	return b.String()
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestTypedColumns(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	start := time.Date(2024, 12, 31, 23, 30, 0, 0, time.FixedZone("CET", 3600))
	day := time.Date(2024, 12, 30, 0, 0, 0, 0, time.UTC)
	must(t, s.Write(ctx, 1, Batch{Entity: Jobs, ParentID: 10, ObservedAt: t0, Jobs: []JobRow{
		{ID: 1, StreamID: 10, WorkspaceID: 7, Status: "SUCCESS", DataStartDate: day, DataEndDate: day,
			StartExecutionTime: start, UserID: 42, Raw: json.RawMessage(`{"id":1,"status":"SUCCESS","extra":{"x":5}}`)},
		{ID: 2, Status: "PENDING", Raw: json.RawMessage(`{"id":2}`)}, // stream id from the batch, zero times
	}}))
	var (
		stream, ws, user  int64
		dsd               time.Time
		sxt               time.Time
		ext               sql.NullTime
		extra, typ1, typ2 string
	)
	err := s.db.QueryRow(`SELECT stream_id, workspace_id, user_id, data_start_date, start_execution_time,
		end_execution_time, raw->'$.extra'->>'x', typeof(data_start_date), typeof(start_execution_time)
		FROM jobs WHERE id = 1`).Scan(&stream, &ws, &user, &dsd, &sxt, &ext, &extra, &typ1, &typ2)
	must(t, err)
	if stream != 10 || ws != 7 || user != 42 || !dsd.Equal(day) || !sxt.Equal(start) || ext.Valid || extra != "5" {
		t.Errorf("job 1 = stream %d ws %d user %d start date %v start %v end %v extra %q", stream, ws, user, dsd, sxt, ext, extra)
	}
	if typ1 != "DATE" || typ2 != "TIMESTAMP WITH TIME ZONE" {
		t.Errorf("column types %s, %s", typ1, typ2)
	}
	var nulls int
	must(t, s.db.QueryRow(`SELECT (data_start_date IS NULL)::INT + (start_execution_time IS NULL)::INT + (end_execution_time IS NULL)::INT
		FROM jobs WHERE id = 2 AND stream_id = 10`).Scan(&nulls))
	if nulls != 3 {
		t.Errorf("zero times of job 2 stored as %d NULLs, want 3", nulls)
	}
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	all, err := listMigrations(embeddedMigrations(t))
	must(t, err)
	if len(all) < 3 || all[0].version != 1 {
		t.Fatalf("embedded migrations = %+v", all)
	}
	latest := all[len(all)-1].version
	only := func(versions ...int) fstest.MapFS {
		fs := fstest.MapFS{}
		for _, m := range all {
			for _, v := range versions {
				if m.version == v {
					body, err := drsql.Migrations.ReadFile("migrations/" + m.file)
					must(t, err)
					fs[m.file] = &fstest.MapFile{Data: body}
				}
			}
		}
		return fs
	}
	open := func(path string, fs fstest.MapFS) (*Store, error) {
		opts := Options{Clock: clock.NewManual(t0), Logger: quietLogger()}
		if fs != nil {
			opts.migrations = fs
		}
		return Open(ctx, path, opts)
	}

	// migrateOnly brings a raw DuckDB file to the given migrations, as an older binary did.
	migrateOnly := func(path string, fs fstest.MapFS) (*sql.DB, int, error) {
		must(t, os.MkdirAll(filepath.Dir(path), 0o700))
		db, err := openDB(path)
		must(t, err)
		v, err := migrate(ctx, db, fs, clock.NewManual(t0), quietLogger())
		return db, v, err
	}

	t.Run("older store upgrades", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), liveName)
		db, v, err := migrateOnly(path, only(1))
		must(t, err)
		if v != 1 {
			t.Fatalf("version %d, want 1", v)
		}
		if n := count(t, db, `SELECT count(*) FROM duckdb_tables() WHERE table_name = 'runs'`); n != 0 {
			t.Fatal("version 1 already has runs")
		}
		_, err = db.Exec(`INSERT INTO workspaces (id, name, first_seen, last_seen) VALUES (1, 'kept', now(), now())`)
		must(t, err)
		must(t, db.Close())

		s, err := open(path, nil)
		must(t, err)
		defer s.Close()
		if v, _ := s.schemaVersion(ctx); v != latest {
			t.Errorf("version after upgrade %d, want %d", v, latest)
		}
		if n := count(t, s.db, `SELECT count(*) FROM schema_migrations`); n != len(all) {
			t.Errorf("%d migrations recorded, want %d", n, len(all))
		}
		if n := count(t, s.db, `SELECT count(*) FROM workspaces WHERE name = 'kept'`); n != 1 {
			t.Error("upgrade lost data")
		}
		if _, err := s.StartRun(ctx, RunStart{Schedule: "t", Kind: "extract"}); err != nil {
			t.Errorf("upgraded store cannot record runs: %v", err)
		}
	})

	t.Run("history of a 0004 store takes the new meaning", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), LiveFile)
		db, v, err := migrateOnly(path, only(1, 2, 3, 4))
		must(t, err)
		if v != 4 {
			t.Fatalf("version %d, want 4", v)
		}
		// What drextract before 0005 left: a stream that never ran stored with '' and a
		// version hashed over its whole record, and a job's first sight as a transition.
		raw := `{"id":10,"workspaceId":1,"name":"a","lastRunStatus":null,"processedRows":0}`
		for _, q := range []string{
			`INSERT INTO streams (id, workspace_id, name, last_run_status, raw, run_id, first_seen, last_seen)
				VALUES (10, 1, 'a', '', '` + raw + `', 1, '2025-03-01', '2025-03-01')`,
			`INSERT INTO streams_history (id, workspace_id, name, last_run_status, raw, row_hash, valid_from, is_current, run_id)
				VALUES (10, 1, 'a', '', '` + raw + `', md5('` + raw + `'), '2025-03-01', true, 1)`,
			`INSERT INTO job_status_changes VALUES (5, 10, NULL, 'PENDING', '2025-03-01', 1)`,
		} {
			_, err := db.Exec(q)
			must(t, err)
		}
		must(t, db.Close())

		s, err := open(path, nil)
		must(t, err)
		defer s.Close()
		if n := count(t, s.db, `SELECT count(*) FROM streams WHERE last_run_status IS NULL`); n != 1 {
			t.Error("a stream that never ran keeps last_run_status ''")
		}
		if n := count(t, s.db, `SELECT count(*) FROM job_status_changes WHERE old_status IS NULL`); n != 1 {
			t.Error("the first sighting recorded before 0005 is gone")
		}
		// The stream's first run changes only run statistics: no new version.
		ran := `{"id":10,"workspaceId":1,"name":"a","lastRunStatus":true,"processedRows":40}`
		must(t, s.Write(ctx, 2, Batch{Entity: Streams, ParentID: 1, ObservedAt: t0, Streams: []StreamRow{
			{ID: 10, WorkspaceID: 1, Name: "a", LastRunStatus: "true", ProcessedRows: 40, Raw: json.RawMessage(ran)}}}))
		if n := count(t, s.db, `SELECT count(*) FROM streams_history WHERE id = 10`); n != 1 {
			t.Errorf("%d versions after a run of a stream upgraded from 0004, want 1", n)
		}
		if n := count(t, s.db, `SELECT count(*) FROM streams WHERE processed_rows = 40`); n != 1 {
			t.Error("the current row did not take the run's statistics")
		}
	})

	t.Run("newer store refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), liveName)
		newer := only(versionsOf(all)...)
		newer["9999_from_the_future.sql"] = &fstest.MapFile{Data: []byte(`CREATE TABLE future (x INTEGER);`)}
		s, err := open(path, newer)
		must(t, err)
		must(t, s.Close())
		_, err = open(path, nil)
		var tooNew *SchemaTooNewError
		if !errors.As(err, &tooNew) || !errors.Is(err, ErrSchemaTooNew) {
			t.Fatalf("opening a newer store: %v, want a SchemaTooNewError", err)
		}
		msg := err.Error()
		if !strings.Contains(msg, "9999") || !strings.Contains(msg, fmt.Sprintf("%04d", latest)) {
			t.Errorf("message %q does not name both versions", msg)
		}
	})

	t.Run("failed migration leaves the previous version", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), liveName)
		broken := only(1)
		broken["0002_broken.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE half_done (x INTEGER);\nINSERT INTO no_such_table VALUES (1);")}
		db, v, err := migrateOnly(path, broken)
		if db != nil {
			defer db.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "0002_broken.sql") {
			t.Fatalf("broken migration: %v, want an error naming the file", err)
		}
		if v != 1 {
			t.Errorf("version %d after a failed migration, want 1", v)
		}
		if n := count(t, db, `SELECT count(*) FROM duckdb_tables() WHERE table_name = 'half_done'`); n != 0 {
			t.Error("a failed migration left part of its work behind")
		}
		if n := count(t, db, `SELECT count(*) FROM schema_migrations`); n != 1 {
			t.Errorf("%d migrations recorded, want 1", n)
		}
	})

	t.Run("duplicate versions refused", func(t *testing.T) {
		dup := only(1)
		dup["0001_again.sql"] = &fstest.MapFile{Data: []byte(`SELECT 1;`)}
		if _, err := open(filepath.Join(t.TempDir(), LiveFile), dup); err == nil {
			t.Error("two migrations with version 1 were accepted")
		}
	})
}

func versionsOf(ms []migration) []int {
	var out []int
	for _, m := range ms {
		out = append(out, m.version)
	}
	return out
}

func TestAbandonedRunsMarkedFailed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), LiveFile)
	s, err := Open(ctx, path, Options{Clock: clock.NewManual(t0), Logger: quietLogger()})
	must(t, err)
	done, _ := s.StartRun(ctx, RunStart{Schedule: "a", Kind: "extract"})
	must(t, s.FinishRun(ctx, done, RunEnd{Status: RunOK}))
	left, _ := s.StartRun(ctx, RunStart{Schedule: "b", Kind: "extract"})
	must(t, s.Close()) // as if the process had died mid-run
	s, err = Open(ctx, path, Options{Clock: clock.NewManual(t0.Add(time.Hour)), Logger: quietLogger()})
	must(t, err)
	defer s.Close()
	var status, errText string
	var finished time.Time
	must(t, s.db.QueryRow(`SELECT status, error, finished FROM runs WHERE id = $1`, left).Scan(&status, &errText, &finished))
	if status != RunFailed || !strings.Contains(errText, "abandoned") || !finished.Equal(t0.Add(time.Hour)) {
		t.Errorf("abandoned run: %s %q %v", status, errText, finished)
	}
	var okStatus string
	must(t, s.db.QueryRow(`SELECT status FROM runs WHERE id = $1`, done).Scan(&okStatus))
	if okStatus != RunOK {
		t.Errorf("finished run became %s", okStatus)
	}
}

func TestRecordCallsStoresOnlyFingerprints(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	calls := []APICall{
		{Time: t0, Fingerprint: "tok_0a1b2c3d", Method: "GET", PathTemplate: "/v1/workspaces", Status: 200,
			Latency: 1500 * time.Microsecond, Attempt: 1, PlatformRemaining: 5, QueryRemaining: -1, DailyRemaining: -1,
			PlatformReset: t0.Add(time.Minute)},
		{Time: t0, Fingerprint: "secret-token-value", Method: "GET", PathTemplate: "/v1/workspaces", Status: 401, Attempt: 1,
			PlatformRemaining: -1, QueryRemaining: -1, DailyRemaining: -1},
	}
	must(t, s.RecordCalls(ctx, 3, calls))
	rows, err := s.db.Query(`SELECT token_fingerprint, latency_ms, platform_remaining, query_remaining, platform_reset FROM api_calls ORDER BY status`)
	must(t, err)
	defer rows.Close()
	var got []string
	for rows.Next() {
		var fp string
		var lat float64
		var pr, qr sql.NullInt64
		var reset sql.NullTime
		must(t, rows.Scan(&fp, &lat, &pr, &qr, &reset))
		got = append(got, fmt.Sprintf("%s %.1f %v %v %v", fp, lat, pr.Valid, qr.Valid, reset.Valid))
	}
	want := []string{"tok_0a1b2c3d 1.5 true false true", "tok_invalid 0.0 false false false"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("api_calls = %q, want %q", got, want)
	}
}

func TestOpenReadOnly(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), LiveFile)
	s, err := Open(ctx, path, Options{Clock: clock.NewManual(t0), Logger: quietLogger()})
	must(t, err)
	must(t, s.Write(ctx, 1, Batch{Entity: Jobs, ParentID: 10, ObservedAt: t0, Jobs: jobPage(10, 1, 1, 5, "SUCCESS")}))
	must(t, s.Close())

	// Several read-only handles at once, as several BI tools would hold.
	r1, err := OpenReadOnly(ctx, path)
	must(t, err)
	defer r1.Close()
	r2, err := OpenReadOnly(ctx, path)
	must(t, err)
	defer r2.Close()
	for _, r := range []*Store{r1, r2} {
		if res, err := Query(ctx, r.DB(), `SELECT id FROM jobs`); err != nil || len(res.Rows) != 5 {
			t.Errorf("read-only query: %v, %v", res, err)
		}
	}
	if err := r1.Write(ctx, 1, Batch{Entity: Jobs, ParentID: 10}); !errors.Is(err, errReadOnly) {
		t.Errorf("Write on a read-only store: %v", err)
	}
	if _, err := r1.DB().Exec(`DELETE FROM jobs`); err == nil {
		t.Error("DuckDB accepted a DELETE on a read-only store")
	}
	if _, err := OpenReadOnly(ctx, filepath.Join(t.TempDir(), "missing.duckdb")); err == nil {
		t.Error("opened a missing file read-only")
	}
}

func TestStreamThatNeverRan(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	must(t, s.Write(ctx, 1, Batch{Entity: Streams, ParentID: 1, ObservedAt: t0, Streams: []StreamRow{
		{ID: 10, WorkspaceID: 1, Raw: json.RawMessage(`{"id":10,"lastRunStatus":null}`)},
		{ID: 11, WorkspaceID: 1, LastRunStatus: "false", LastRunFailed: true, Raw: json.RawMessage(`{"id":11,"lastRunStatus":false}`)},
	}}))
	for _, table := range []string{"streams", "streams_history"} {
		var got string
		must(t, s.db.QueryRow(`SELECT string_agg(id || '=' || coalesce(last_run_status, 'NULL'), ',' ORDER BY id) FROM `+table).Scan(&got))
		if got != "10=NULL,11=false" {
			t.Errorf("%s last_run_status %s, want NULL for the stream that never ran", table, got)
		}
	}
}

// TestMigrationHashesLikeTheWrite keeps migration 0005's row_hash of stored stream versions
// equal to the one the write path computes for new ones.
func TestMigrationHashesLikeTheWrite(t *testing.T) {
	body, err := drsql.Migrations.ReadFile("migrations/0005_history_semantics.sql")
	must(t, err)
	if want := streamConfigSQL("raw"); !strings.Contains(string(body), want) {
		t.Errorf("0005 does not hash stream versions with %s", want)
	}
}

// TestEntitiesAreTheStoresTables: the one list of entities (package sql) names exactly the
// current-state tables the store writes and its migrations create.
func TestEntitiesAreTheStoresTables(t *testing.T) {
	st := openIn(t, t.TempDir())
	tables, err := st.Tables(context.Background())
	must(t, err)
	if len(entities) != len(drsql.Entities) {
		t.Errorf("the store writes %d entities, the list has %d", len(entities), len(drsql.Entities))
	}
	for _, e := range drsql.Entities {
		if _, ok := entities[e]; !ok {
			t.Errorf("entity %s has no definition in the store's writer", e)
		}
		if !slices.Contains(tables, e) {
			t.Errorf("entity %s has no table", e)
		}
	}
}
