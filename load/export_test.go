package load

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
)

func liveIn(dir string) string    { return filepath.Join(dir, LiveFile) }
func parquetIn(dir string) string { return filepath.Join(dir, ParquetDir) }
func servingIn(dir string) string { return filepath.Join(dir, ServingFile) }

// openIn opens the live store of data dir dir with an auto-advancing manual clock, so
// that each export gets its own version name.
func openIn(t testing.TB, dir string) *Store {
	t.Helper()
	clk := clock.NewManual(t0)
	s, err := Open(context.Background(), liveIn(dir), Options{Clock: tickingClock{clk}, Logger: quietLogger()})
	must(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// tickingClock moves a manual clock on by a millisecond at every reading.
type tickingClock struct{ m *clock.Manual }

func (c tickingClock) Now() time.Time                                   { c.m.Advance(time.Millisecond); return c.m.Now() }
func (c tickingClock) After(d time.Duration) <-chan time.Time           { return c.m.After(d) }
func (c tickingClock) Timer(d time.Duration) (<-chan time.Time, func()) { return c.m.Timer(d) }

// fill writes workspaces, streams and n jobs (ids from first) into s.
func fill(t testing.TB, s *Store, first int64, n int) {
	t.Helper()
	ctx := context.Background()
	must(t, s.Write(ctx, 1, Batch{Entity: Workspaces, ObservedAt: t0, Complete: true, Workspaces: []WorkspaceRow{
		{ID: 1, Name: "ws", Raw: json.RawMessage(`{"id":1}`)}}}))
	must(t, s.Write(ctx, 1, Batch{Entity: Streams, ParentID: 1, ObservedAt: t0, Streams: []StreamRow{
		{ID: 10, WorkspaceID: 1, Name: "a", Raw: json.RawMessage(`{"id":10}`)},
		{ID: 11, WorkspaceID: 1, Name: "b", Raw: json.RawMessage(`{"id":11}`)}}}))
	for done := 0; done < n; done += 1000 {
		size := min(1000, n-done)
		stream := int64(10 + (done/1000)%2)
		must(t, s.Write(ctx, 1, Batch{Entity: Jobs, ParentID: stream, ObservedAt: t0,
			Jobs: jobPage(stream, 1, first+int64(done), size, "SUCCESS")}))
	}
}

// exportCounts reads an export back with DuckDB: rows per table.
func exportCounts(t testing.TB, dir string) (map[string]int64, error) {
	t.Helper()
	db, err := openDB("")
	must(t, err)
	defer db.Close()
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, e := range entries {
		var n int64
		glob := filepath.Join(dir, e.Name(), "**", "*.parquet")
		if err := db.QueryRow(fmt.Sprintf(`SELECT count(*) FROM read_parquet(%s, hive_partitioning = true)`, QuoteString(glob))).Scan(&n); err != nil {
			if strings.Contains(err.Error(), "No files found") {
				n = 0
			} else {
				return nil, err
			}
		}
		out[e.Name()] = n
	}
	return out, nil
}

func storeCounts(t testing.TB, db *sql.DB) map[string]int64 {
	t.Helper()
	rows, err := db.Query(`SELECT table_name, estimated_size FROM duckdb_tables() WHERE table_name <> 'schema_migrations' AND NOT temporary`)
	must(t, err)
	var names []string
	for rows.Next() {
		var n string
		var est int64
		must(t, rows.Scan(&n, &est))
		if !IsInternal(n) { // bookkeeping is not exported
			names = append(names, n)
		}
	}
	rows.Close()
	out := map[string]int64{}
	for _, n := range names {
		out[n] = int64(count(t, db, "SELECT count(*) FROM "+QuoteIdent(n)))
	}
	return out
}

func TestExport(t *testing.T) {
	dir := t.TempDir()
	s := openIn(t, dir)
	ctx := context.Background()
	fill(t, s, 1, 2500)
	noDate := JobRow{ID: 90001, StreamID: 10, Status: "PENDING", Raw: json.RawMessage(`{}`),
		// 23:30 in Paris on New Year's Eve is still December in UTC.
		StartExecutionTime: time.Date(2025, 1, 1, 0, 30, 0, 0, time.FixedZone("CET", 3600))}
	nothing := JobRow{ID: 90002, StreamID: 10, Status: "PENDING", Raw: json.RawMessage(`{}`)}
	must(t, s.Write(ctx, 1, Batch{Entity: Jobs, ParentID: 10, ObservedAt: t0, Jobs: []JobRow{noDate, nothing}}))

	st, err := s.Export(ctx, parquetIn(dir))
	must(t, err)
	link, err := os.Readlink(parquetIn(dir))
	if err != nil || !strings.HasPrefix(link, ParquetDir+versionsSuffix+string(filepath.Separator)) {
		t.Fatalf("parquet is not a link into the versions folder: %q, %v", link, err)
	}
	want := storeCounts(t, s.db)
	got, err := exportCounts(t, parquetIn(dir))
	must(t, err)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("export rows %v\nstore rows %v", got, want)
	}
	if fmt.Sprint(st.Rows) != fmt.Sprint(want) || st.Files == 0 || st.Bytes == 0 {
		t.Errorf("stats %+v", st)
	}
	for _, tb := range []string{Workspaces, Streams, Jobs, Mappings, "streams_history", "job_status_changes", "runs", "api_calls"} {
		if _, ok := got[tb]; !ok {
			t.Errorf("table %s not exported", tb)
		}
	}
	for _, tb := range []string{"checkpoints", "schema_migrations", "publish_state"} {
		if _, ok := got[tb]; ok {
			t.Errorf("bookkeeping table %s exported", tb)
		}
	}

	// jobs is partitioned by data time: dataStartDate, else the UTC day of the start;
	// months are zero-padded (month=03).
	db, _ := openDB("")
	defer db.Close()
	jobsGlob := QuoteString(filepath.Join(parquetIn(dir), Jobs, "**", "*.parquet"))
	part := func(id int64) string {
		var y, m sql.NullString
		must(t, db.QueryRow(fmt.Sprintf(`SELECT CAST(year AS VARCHAR), CAST(month AS VARCHAR) FROM read_parquet(%s, hive_partitioning = true, hive_types_autocast = false) WHERE id = %d`, jobsGlob, id)).Scan(&y, &m))
		return y.String + "/" + m.String
	}
	first := jobPage(10, 1, 1, 1, "SUCCESS")[0]
	if got, want := part(1), fmt.Sprintf("%d/%02d", first.DataStartDate.Year(), int(first.DataStartDate.Month())); got != want {
		t.Errorf("job 1 partition %s, want %s", got, want)
	}
	if got := part(90001); got != "2024/12" {
		t.Errorf("job without data date in partition %s, want 2024/12 (UTC day of its start)", got)
	}
	if got := part(90002); got != "__HIVE_DEFAULT_PARTITION__/__HIVE_DEFAULT_PARTITION__" && got != "/" {
		t.Errorf("job without any date in partition %q", got)
	}
	var codec string
	must(t, db.QueryRow(fmt.Sprintf(`SELECT DISTINCT compression FROM parquet_metadata(%s)`, QuoteString(filepath.Join(parquetIn(dir), Streams, "*.parquet")))).Scan(&codec))
	if codec != "ZSTD" {
		t.Errorf("compression %s, want ZSTD", codec)
	}
	if dirs, _ := filepath.Glob(filepath.Join(parquetIn(dir), Jobs, "year=*", "month=?")); len(dirs) > 0 {
		t.Errorf("months not zero-padded: %v", dirs)
	}
	// raw is a plain UTF-8 string in every table, not Parquet's JSON type (which polars
	// reads as binary), and reads back as the stored JSON text.
	for _, tb := range []string{Jobs, Streams, Workspaces, "streams_history"} {
		var converted, logical sql.NullString
		glob := QuoteString(filepath.Join(parquetIn(dir), tb, "**", "*.parquet"))
		must(t, db.QueryRow(fmt.Sprintf(`SELECT any_value(converted_type), any_value(CAST(logical_type AS VARCHAR)) FROM parquet_schema(%s) WHERE name = 'raw'`, glob)).Scan(&converted, &logical))
		if converted.String != "UTF8" || strings.Contains(strings.ToUpper(logical.String), "JSON") {
			t.Errorf("%s.raw is stored as converted type %q, logical type %q; want a UTF8 string", tb, converted.String, logical.String)
		}
	}
	var raw, typ string
	must(t, db.QueryRow(fmt.Sprintf(`SELECT raw, typeof(raw) FROM read_parquet(%s, hive_partitioning = true) WHERE id = 1`, jobsGlob)).Scan(&raw, &typ))
	if want := string(first.Raw); raw != want || typ != "VARCHAR" {
		t.Errorf("job 1's raw reads back as %s %q, want VARCHAR %q", typ, raw, want)
	}
	// DuckDB reads a zero-padded month as text (so it sorts), or as a number when asked.
	var month string
	var monthNumber int
	must(t, db.QueryRow(fmt.Sprintf(`SELECT month FROM read_parquet(%s, hive_partitioning = true) WHERE id = 1`, jobsGlob)).Scan(&month))
	must(t, db.QueryRow(fmt.Sprintf(`SELECT month FROM read_parquet(%s, hive_partitioning = true, hive_types = {'month': INTEGER}) WHERE id = 1`, jobsGlob)).Scan(&monthNumber))
	if want := fmt.Sprintf("%02d", first.DataStartDate.Month()); month != want || monthNumber != int(first.DataStartDate.Month()) {
		t.Errorf("month of job 1 reads back as %q and %d, want %q and %d", month, monthNumber, want, first.DataStartDate.Month())
	}
}

func TestExportInterrupted(t *testing.T) {
	for _, stage := range []string{"export:table:" + Jobs, "export:written", "export:complete"} {
		t.Run(stage, func(t *testing.T) {
			dir := t.TempDir()
			s := openIn(t, dir)
			ctx := context.Background()
			fill(t, s, 1, 1200)
			_, err := s.Export(ctx, parquetIn(dir))
			must(t, err)
			old, err := exportCounts(t, parquetIn(dir))
			must(t, err)
			oldLink, _ := os.Readlink(parquetIn(dir))

			fill(t, s, 10_000, 300)
			s.exportStage = func(name string) error {
				if name == stage {
					return errors.New("killed at " + name)
				}
				return nil
			}
			if _, err := s.Export(ctx, parquetIn(dir)); err == nil {
				t.Fatal("interrupted export succeeded")
			}
			s.exportStage = nil
			if link, _ := os.Readlink(parquetIn(dir)); link != oldLink {
				t.Errorf("link moved to %s after an interrupted export", link)
			}
			if got, err := exportCounts(t, parquetIn(dir)); err != nil || fmt.Sprint(got) != fmt.Sprint(old) {
				t.Errorf("old export after an interrupted one: %v, %v; want %v", got, err, old)
			}

			// The next export cleans up and swaps in the new data.
			_, err = s.Export(ctx, parquetIn(dir))
			must(t, err)
			got, err := exportCounts(t, parquetIn(dir))
			must(t, err)
			if want := storeCounts(t, s.db); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("export after recovery %v, want %v", got, want)
			}
			versions := listDir(t, parquetIn(dir)+versionsSuffix)
			if len(versions) != 2 {
				t.Errorf("versions after recovery: %v, want the current and the previous", versions)
			}
			for _, v := range versions {
				if strings.HasSuffix(v, tmpSuffix) {
					t.Errorf("leftover %s", v)
				}
			}
		})
	}
}

func listDir(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	must(t, err)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// TestExportLeftoversCleanedOnOpen: a killed export leaves a .tmp folder and a temporary
// link, a killed publish serving.duckdb.new and its WAL; opening the store removes them
// and the last complete export stays readable.
func TestExportLeftoversCleanedOnOpen(t *testing.T) {
	dir := t.TempDir()
	s := openIn(t, dir)
	fill(t, s, 1, 300)
	_, err := s.Export(context.Background(), parquetIn(dir))
	must(t, err)
	want, _ := exportCounts(t, parquetIn(dir))
	must(t, s.Close())

	half := filepath.Join(parquetIn(dir)+versionsSuffix, "20990101T000000.000000000Z"+tmpSuffix)
	must(t, os.MkdirAll(filepath.Join(half, Jobs), 0o755))
	must(t, os.WriteFile(filepath.Join(half, Jobs, "data_0.parquet"), []byte("PAR1 half"), 0o644))
	must(t, os.Symlink("nowhere", parquetIn(dir)+linkTmpSuffix))
	for _, p := range []string{servingIn(dir) + publishSuffix, servingIn(dir) + publishSuffix + ".wal"} {
		must(t, os.WriteFile(p, []byte("half a copy"), 0o644))
	}

	openIn(t, dir)
	if l := leftovers(servingIn(dir)); len(l) > 0 {
		t.Errorf("publish leftovers still there: %v", l)
	}
	if _, err := os.Stat(half); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("half-written export still there: %v", err)
	}
	if _, err := os.Lstat(parquetIn(dir) + linkTmpSuffix); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary link still there: %v", err)
	}
	if got, err := exportCounts(t, parquetIn(dir)); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("export after recovery: %v %v, want %v", got, err, want)
	}
}

// TestExportReaderNeverSeesPartial reads the export over and over while exports of
// different sizes are swapped in, the way the README tells readers who need a snapshot:
// resolve the link once, then read that folder. Every read must count one complete
// export, or fail (the folder was pruned under a slow reader); it must never count a mix.
func TestExportReaderNeverSeesPartial(t *testing.T) {
	dir := t.TempDir()
	s := openIn(t, dir)
	ctx := context.Background()
	fill(t, s, 1, 500)
	_, err := s.Export(ctx, parquetIn(dir))
	must(t, err)

	var mu sync.Mutex
	valid := map[int64]bool{int64(count(t, s.db, "SELECT count(*) FROM jobs")): true}
	var reads, bad atomic.Int64
	var badMsg atomic.Value
	stop := make(chan struct{})
	read := make(chan struct{}, 1) // a read finished
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		db, _ := openDB("")
		defer db.Close()
		for {
			select {
			case <-stop:
				return
			default:
			}
			resolved, err := filepath.EvalSymlinks(parquetIn(dir))
			if err != nil {
				bad.Add(1)
				badMsg.Store(fmt.Sprintf("no export to resolve: %v", err))
				continue
			}
			q := fmt.Sprintf(`SELECT count(*) FROM read_parquet(%s)`, QuoteString(filepath.Join(resolved, Jobs, "**", "*.parquet")))
			var n int64
			if err := db.QueryRow(q).Scan(&n); err != nil {
				continue // pruned under a slow reader: an error, never wrong data
			}
			reads.Add(1)
			select {
			case read <- struct{}{}:
			default:
			}
			mu.Lock()
			ok := valid[n]
			mu.Unlock()
			if !ok {
				bad.Add(1)
				badMsg.Store(fmt.Sprintf("read %d jobs", n))
			}
		}
	}()
	for i := 0; i < 4; i++ {
		fill(t, s, int64(100_000*(i+1)), 300+200*i)
		n := int64(count(t, s.db, "SELECT count(*) FROM jobs"))
		mu.Lock()
		valid[n] = true
		mu.Unlock()
		_, err := s.Export(ctx, parquetIn(dir))
		must(t, err)
	}
	// Let the reader finish one more read of the last export; the timeout only bounds a
	// hang.
	select {
	case <-read:
	default:
	}
	select {
	case <-read:
	case <-time.After(time.Minute):
		t.Error("the reader did not read the last export")
	}
	close(stop)
	wg.Wait()
	if bad.Load() > 0 {
		t.Errorf("%d of %d reads saw no export or a partial one (%v)", bad.Load(), reads.Load(), badMsg.Load())
	}
	if reads.Load() == 0 {
		t.Error("the reader never read an export")
	}
}

func TestPublish(t *testing.T) {
	dir := t.TempDir()
	s := openIn(t, dir)
	ctx := context.Background()
	fill(t, s, 1, 1200)
	must(t, s.Publish(ctx, servingIn(dir)))

	// A reader in this process and one in another process hold the published file.
	r, err := OpenReadOnly(ctx, servingIn(dir))
	must(t, err)
	defer r.Close()
	conn, err := r.DB().Conn(ctx)
	must(t, err)
	defer conn.Close()
	var before int
	must(t, conn.QueryRowContext(ctx, "SELECT count(*) FROM jobs").Scan(&before))
	_, out := startChild(t, "hold-readonly", servingIn(dir))
	if line := readLine(t, out); line != fmt.Sprintf("ready %d", before) {
		t.Fatalf("child reader said %q", line)
	}

	fill(t, s, 50_000, 800)
	must(t, s.Publish(ctx, servingIn(dir)))

	var still int
	must(t, conn.QueryRowContext(ctx, "SELECT count(*) FROM jobs").Scan(&still))
	if still != before {
		t.Errorf("the old reader now sees %d jobs, want its %d", still, before)
	}
	// A new process sees the new copy. (In this process, duckdb-go hands out the cached
	// instance of the old file until every handle on it is closed.)
	liveJobs := count(t, s.db, "SELECT count(*) FROM jobs")
	_, out = startChild(t, "hold-readonly", servingIn(dir))
	if line := readLine(t, out); line != fmt.Sprintf("ready %d", liveJobs) {
		t.Errorf("new reader process said %q, want %d jobs", line, liveJobs)
	}
	must(t, conn.Close())
	must(t, r.Close())
	fresh, err := OpenReadOnly(ctx, servingIn(dir))
	must(t, err)
	defer fresh.Close()
	if got, want := storeCounts(t, fresh.DB()), storeCounts(t, s.db); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("serving copy %v, live store %v", got, want)
	}
	if n := count(t, fresh.DB(), `SELECT count(*) FROM schema_migrations`); n == 0 {
		t.Error("serving copy lacks schema_migrations")
	}
	if n := count(t, fresh.DB(), `SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'stg_%'`); n != 0 {
		t.Error("serving copy holds staging tables")
	}
	for _, leftover := range []string{servingIn(dir) + publishSuffix, servingIn(dir) + publishSuffix + ".wal"} {
		if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind", leftover)
		}
	}
}

func TestPublishInterrupted(t *testing.T) {
	for _, stage := range []string{"publish:attached", "publish:written"} {
		t.Run(stage, func(t *testing.T) {
			dir := t.TempDir()
			s := openIn(t, dir)
			ctx := context.Background()
			fill(t, s, 1, 400)
			must(t, s.Publish(ctx, servingIn(dir)))
			fill(t, s, 10_000, 300)
			s.exportStage = func(name string) error {
				if name == stage {
					return errors.New("killed at " + name)
				}
				return nil
			}
			if err := s.Publish(ctx, servingIn(dir)); err == nil {
				t.Fatal("interrupted publish succeeded")
			}
			s.exportStage = nil
			r, err := OpenReadOnly(ctx, servingIn(dir))
			must(t, err)
			if n := count(t, r.DB(), "SELECT count(*) FROM jobs"); n != 400 {
				t.Errorf("serving copy has %d jobs after an interrupted publish, want the old 400", n)
			}
			must(t, r.Close())
			must(t, s.Publish(ctx, servingIn(dir)))
			r, err = OpenReadOnly(ctx, servingIn(dir))
			must(t, err)
			defer r.Close()
			if n := count(t, r.DB(), "SELECT count(*) FROM jobs"); n != 700 {
				t.Errorf("serving copy has %d jobs after recovery, want 700", n)
			}
		})
	}
}

// The serving copy carries what analysts rely on besides tables: views, macros and the
// comments on tables, views and columns (COPY FROM DATABASE copies them).
func TestPublishCarriesViewsAndComments(t *testing.T) {
	dir := t.TempDir()
	s := openIn(t, dir)
	fill(t, s, 1, 10)
	_, err := s.db.Exec(`CREATE VIEW jobs_v AS SELECT id, status FROM jobs;
		COMMENT ON TABLE jobs IS 'the jobs'; COMMENT ON COLUMN jobs.status IS 'job status';
		COMMENT ON VIEW jobs_v IS 'a view'; COMMENT ON COLUMN jobs_v.status IS 'status, again';
		CREATE MACRO twice(x) AS x * 2`)
	must(t, err)
	must(t, s.Publish(context.Background(), servingIn(dir)))
	r, err := OpenReadOnly(context.Background(), servingIn(dir))
	must(t, err)
	defer r.Close()
	if n := count(t, r.db, `SELECT count(*) FROM jobs_v`); n != 10 {
		t.Errorf("the view has %d rows in the serving copy, want 10", n)
	}
	if n := count(t, r.db, `SELECT twice(21)`); n != 42 {
		t.Errorf("the macro gives %d, want 42", n)
	}
	for q, want := range map[string]string{
		`SELECT comment FROM duckdb_tables() WHERE table_name = 'jobs'`:                               "the jobs",
		`SELECT comment FROM duckdb_columns() WHERE table_name = 'jobs' AND column_name = 'status'`:   "job status",
		`SELECT comment FROM duckdb_views() WHERE view_name = 'jobs_v'`:                               "a view",
		`SELECT comment FROM duckdb_columns() WHERE table_name = 'jobs_v' AND column_name = 'status'`: "status, again",
	} {
		var got sql.NullString
		must(t, r.db.QueryRow(q).Scan(&got))
		if got.String != want {
			t.Errorf("%s: %q, want %q", q, got.String, want)
		}
	}
}
