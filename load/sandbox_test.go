package load

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// sandboxFixture is a store file with 12 jobs in a directory of its own, next to a secret
// file (the stand-in for a token file) that no sandboxed statement may read.
type sandboxFixture struct {
	dir, path, secret string
	needle            string // the secret file's content
}

func newSandboxFixture(t testing.TB) *sandboxFixture {
	t.Helper()
	dir := t.TempDir()
	f := &sandboxFixture{dir: dir, path: filepath.Join(dir, LiveFile), secret: filepath.Join(dir, "token"),
		needle: "tok-secret-7f3a9c"}
	s, err := Open(context.Background(), f.path, Options{Logger: quietLogger()})
	must(t, err)
	ctx := context.Background()
	must(t, s.Write(ctx, 1, Batch{Entity: Jobs, ParentID: 10, ObservedAt: t0, Jobs: jobPage(10, 1, 1, 8, "FAILURE")}))
	must(t, s.Write(ctx, 1, Batch{Entity: Jobs, ParentID: 11, ObservedAt: t0, Jobs: jobPage(11, 1, 100, 4, "SUCCESS")}))
	must(t, s.Close())
	must(t, os.WriteFile(f.secret, []byte(f.needle), 0o600))
	return f
}

// state is what must not change while a sandbox runs statements: the files of the
// directory and the store file's bytes.
func (f *sandboxFixture) state(t testing.TB) string {
	t.Helper()
	ents, err := os.ReadDir(f.dir)
	must(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	b, err := os.ReadFile(f.path)
	must(t, err)
	return fmt.Sprintf("%v %x", names, sha256.Sum256(b))
}

func (f *sandboxFixture) open(t testing.TB, opts SandboxOptions) *Sandbox {
	t.Helper()
	sb, err := OpenSandbox(context.Background(), f.path, opts)
	must(t, err)
	t.Cleanup(func() { _ = sb.Close() })
	return sb
}

// The statements an analyst types all run, each returning rows.
func TestSandboxRunsReadingStatements(t *testing.T) {
	f := newSandboxFixture(t)
	sb := f.open(t, SandboxOptions{})
	before := f.state(t)
	for _, q := range []string{
		"SELECT status, count(*) FROM jobs GROUP BY 1",
		"select * from jobs where stream_id = 10;",
		"FROM jobs LIMIT 5",
		"DESCRIBE jobs",
		"SHOW TABLES",
		"SHOW ALL TABLES",
		"SUMMARIZE jobs",
		"EXPLAIN SELECT * FROM jobs WHERE status = 'FAILURE'",
		"EXPLAIN ANALYZE SELECT count(*) FROM jobs",
		"PIVOT jobs ON status USING count(*) GROUP BY stream_id",
		"PIVOT jobs ON status, stream_id USING count(*)",
		"PIVOT jobs ON status IN ('FAILURE', 'SUCCESS') USING count(*)",
		"FROM (PIVOT jobs ON status USING count(*))",
		"UNPIVOT (SELECT 1 AS a, 2 AS b) ON a, b",
		"WITH f AS (SELECT * FROM jobs WHERE status = 'FAILURE') SELECT stream_id, count(*) FROM f GROUP BY ALL",
		"WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 3) SELECT * FROM r",
		"VALUES (1), (2)",
		"TABLE jobs",
		"PRAGMA table_info('jobs')", // DuckDB itself rewrites this PRAGMA into a query
		"SELECT * FROM duckdb_tables()",
	} {
		res, err := sb.Query(context.Background(), q, nil, 0)
		if err != nil {
			t.Errorf("%s: %v", q, err)
			continue
		}
		if len(res.Rows) == 0 || len(res.Columns) == 0 {
			t.Errorf("%s: %d columns, %d rows", q, len(res.Columns), len(res.Rows))
		}
	}
	if got := f.state(t); got != before {
		t.Errorf("the directory or the store changed: %s, was %s", got, before)
	}
}

// Everything that writes, attaches, installs, loads, copies, exports, sets or calls is
// refused with one line, nothing runs, and no file is read or written.
func TestSandboxRefuses(t *testing.T) {
	f := newSandboxFixture(t)
	sb := f.open(t, SandboxOptions{})
	before := f.state(t)
	wal := f.path + ".wal"
	tests := []struct{ query, want string }{
		{"SET enable_external_access = true", "SET and RESET change settings"},
		{"RESET enable_external_access", "SET and RESET change settings"},
		{"SET disabled_filesystems = ''", "SET and RESET change settings"},
		{"SET VARIABLE x = 1", "change"},
		{"PRAGMA threads = 1", "change settings"},
		{"PRAGMA enable_profiling", "PRAGMA changes settings"},
		{"SELECT content FROM read_text('" + f.secret + "')", "reaches outside the store's tables"},
		{"select * from read_text('/etc/passwd')", "reaches outside"},
		{"SELECT * FROM read_csv('" + f.secret + "')", "reaches outside"},
		{"SELECT * FROM read_blob('" + f.path + "')", "reaches outside"},
		{"SELECT * FROM glob('/root/*')", "reaches outside"},
		{"SELECT * FROM glob('" + f.dir + "/*')", "reaches outside"},
		{"SELECT * FROM sniff_csv('" + f.secret + "')", "reaches outside"},
		{"SELECT * FROM '" + f.secret + "'", "does not exist"}, // a table name, not a file
		{"COPY jobs TO '" + f.dir + "/out.csv'", "reaches outside"},
		{"COPY jobs FROM '" + f.secret + "'", "refused"},
		{"EXPLAIN ANALYZE COPY (SELECT 42 AS x) TO '" + wal + "'", "reaches outside"},
		{"EXPLAIN ANALYZE COPY (SELECT 42 AS x) TO '" + f.dir + "/x.csv'", "reaches outside"},
		{"EXPORT DATABASE '" + f.dir + "/exp'", "reaches outside"},
		{"ATTACH '" + f.dir + "/other.duckdb' AS o", "ATTACH opens another database"},
		{"ATTACH ':memory:' AS m", "ATTACH"},
		{"DETACH o", "DETACH"},
		{"INSTALL httpfs", "INSTALL and LOAD"},
		{"LOAD httpfs", "INSTALL and LOAD"},
		{"CALL pragma_version()", "CALL"},
		{"CHECKPOINT", "CALL"},
		{"INSERT INTO jobs (id) VALUES (1)", "INSERT writes"},
		{"UPDATE jobs SET status = 'x'", "UPDATE writes"},
		{"DELETE FROM jobs", "DELETE writes"},
		{"CREATE TABLE x (a INT)", "CREATE writes"},
		{"CREATE TEMP TABLE x AS SELECT * FROM jobs", "CREATE writes"},
		{"DROP TABLE jobs", "DROP writes"},
		{"ALTER TABLE jobs ADD COLUMN x INT", "ALTER writes"},
		{"BEGIN TRANSACTION", "transactions"},
		{"VACUUM", "VACUUM"},
		{"PREPARE p AS SELECT 1", "PREPARE"},
		{"SELECT 1; SELECT 2", "more than one statement"},
		{"SELECT 1; DELETE FROM jobs", "more than one statement"},
		{"SET VARIABLE x = 1; SELECT getvariable('x')", "change"},
		{"CREATE TEMP TABLE t AS SELECT 1 AS a; SELECT * FROM t", "more than one statement"},
		{"CREATE TEMP MACRO m(a) AS a; PIVOT jobs ON status USING count(*)", "more than one statement"},
		{"PIVOT jobs ON status USING count(*); DELETE FROM jobs", "more than one statement"},
		{"PIVOT jobs ON status USING count(*); COPY jobs TO '" + f.dir + "/x.csv'", "refused"},
		{"", "empty"},
		{" ; ", "empty"},
		{"-- a comment", "empty"},
		{"SELECT $x", "uses $x, which is not given"},
		{"SELECT ?", "named parameters"},
		{"SELECT $1", "named parameters"},
	}
	for _, tt := range tests {
		_, err := sb.Query(context.Background(), tt.query, nil, 0)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want one mentioning %q", tt.query, err, tt.want)
			continue
		}
		if tt.want != "does not exist" && !errors.Is(err, ErrRefused) {
			t.Errorf("%q: %v is not a refusal", tt.query, err)
		}
		if errors.Is(err, ErrRefused) && strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: the refusal is more than one line: %q", tt.query, err)
		}
		if strings.Contains(err.Error(), f.needle) {
			t.Errorf("%q: the secret leaked into the error: %v", tt.query, err)
		}
	}
	if got := f.state(t); got != before {
		t.Errorf("the directory or the store changed: %s, was %s", got, before)
	}
	// The sandbox still works, and its configuration was never unlocked. (DuckDB does
	// not show disabled_filesystems; the COPY to the WAL above shows it at work.)
	res, err := sb.Query(context.Background(), "SELECT current_setting('enable_external_access'), current_setting('lock_configuration')", nil, 0)
	must(t, err)
	if got := fmt.Sprint(res.Rows[0]); got != "[false true]" {
		t.Errorf("settings after the refusals: %s", got)
	}
}

// A statement that never ends is interrupted at the limit: DuckDB stops (the same
// sandbox answers the next statement), and the error says the limit.
func TestSandboxTimeout(t *testing.T) {
	f := newSandboxFixture(t)
	sb := f.open(t, SandboxOptions{Timeout: 200 * time.Millisecond})
	_, err := sb.Query(context.Background(),
		"WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r) SELECT count(*) FROM r WHERE i < 10", nil, 0)
	var te *TimeoutError
	if !errors.As(err, &te) || err.Error() != "timed out after 200ms" {
		t.Fatalf("error %v, want timed out after 200ms", err)
	}
	res, err := sb.Query(context.Background(), "SELECT count(*) FROM jobs", nil, 0)
	must(t, err)
	if res.Rows[0][0] != int64(12) {
		t.Errorf("after the timeout: %v", res.Rows)
	}
	// A cancelled context is not a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sb.Query(ctx, "SELECT 1", nil, 0); !errors.Is(err, context.Canceled) || errors.As(err, &te) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestFormatTimeout(t *testing.T) {
	for d, want := range map[time.Duration]string{
		60 * time.Second: "60s", 90 * time.Second: "90s", time.Hour: "3600s",
		200 * time.Millisecond: "200ms", 1500 * time.Millisecond: "1.5s",
	} {
		if got := FormatTimeout(d); got != want {
			t.Errorf("FormatTimeout(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestSandboxParamsAndLimit(t *testing.T) {
	f := newSandboxFixture(t)
	sb := f.open(t, SandboxOptions{})
	args := []sql.NamedArg{sql.Named("stream", int64(10)), sql.Named("unused", "x")}
	res, err := sb.Query(context.Background(), "SELECT id, status FROM jobs WHERE stream_id = $stream ORDER BY id", args, 3)
	must(t, err)
	if len(res.Rows) != 3 || !res.More || res.Rows[0][0] != int64(1) {
		t.Errorf("rows %v, more %v", res.Rows, res.More)
	}
	if got := strings.Join(res.Names(), ","); got != "id,status" || res.Columns[0].Type != "BIGINT" {
		t.Errorf("columns %+v", res.Columns)
	}
	res, err = sb.Query(context.Background(), "SELECT id FROM jobs WHERE stream_id = $stream", args, 8)
	must(t, err)
	if len(res.Rows) != 8 || res.More {
		t.Errorf("exactly the limit: %d rows, more %v", len(res.Rows), res.More)
	}
	_, err = sb.Query(context.Background(), "SELECT $stream, $streem", args, 0)
	var pe *ParamError
	if !errors.As(err, &pe) || pe.Name != "streem" || !slices.Equal(pe.Given, []string{"stream", "unused"}) {
		t.Errorf("misspelt parameter: %v", err)
	}
}

// A read-only store and a sandbox share the file in one process; a read-write store
// publishes first, so that its sandbox sees every row it holds now.
func TestStoreSandbox(t *testing.T) {
	f := newSandboxFixture(t)
	ctx := context.Background()
	ro, err := OpenReadOnly(ctx, f.path)
	must(t, err)
	sb, err := ro.Sandbox(ctx, "", SandboxOptions{})
	must(t, err)
	res, err := sb.Query(ctx, "SELECT count(*) FROM jobs", nil, 0)
	must(t, err)
	if res.Rows[0][0] != int64(12) {
		t.Errorf("read-only store's sandbox: %v", res.Rows)
	}
	if n := count(t, ro.DB(), "SELECT count(*) FROM jobs"); n != 12 {
		t.Errorf("the read-only store beside its sandbox: %d", n)
	}
	must(t, sb.Close())
	must(t, ro.Close())

	rw, err := Open(ctx, f.path, Options{Logger: quietLogger()})
	must(t, err)
	defer rw.Close()
	if _, err := OpenSandbox(ctx, f.path, SandboxOptions{}); err == nil {
		t.Fatal("a sandbox opened the file a read-write store of this process holds")
	}
	serving := filepath.Join(f.dir, ServingFile)
	for _, want := range []int64{12, 15} {
		if want == 15 {
			must(t, rw.Write(ctx, 2, Batch{Entity: Jobs, ParentID: 12, ObservedAt: t0, Jobs: jobPage(12, 1, 200, 3, "SUCCESS")}))
		}
		sb, err := rw.Sandbox(ctx, serving, SandboxOptions{})
		must(t, err)
		res, err := sb.Query(ctx, "SELECT count(*) FROM jobs", nil, 0)
		must(t, err)
		if res.Rows[0][0] != want {
			t.Errorf("sandbox of the read-write store: %v jobs, want %d", res.Rows[0][0], want)
		}
		must(t, sb.Close())
	}
}

func TestQueryAndScanRows(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	must(t, s.Write(ctx, 1, Batch{Entity: Jobs, ParentID: 10, ObservedAt: t0, Jobs: jobPage(10, 1, 1, 4, "FAILURE")}))
	res, err := Query(ctx, s.DB(), `SELECT status, count(*) AS n, NULL AS nothing FROM jobs WHERE stream_id = $1 GROUP BY 1`, int64(10))
	must(t, err)
	if got := fmt.Sprint(res.Columns); got != "[{status VARCHAR} {n BIGINT} {nothing INTEGER}]" {
		t.Errorf("columns %s", got)
	}
	if len(res.Rows) != 1 || res.Rows[0][0] != "FAILURE" || res.Rows[0][1] != int64(4) || res.Rows[0][2] != nil {
		t.Errorf("rows %v", res.Rows)
	}
	if _, err := Query(ctx, s.DB(), `SELECT * FROM nowhere`); err == nil {
		t.Error("a query of a missing table succeeded")
	}
}

// FuzzSandbox runs arbitrary text in a sandbox over a store next to a secret file. The
// oracle is the sandbox's promise, not its implementation: whatever the text, no value
// or error carries the secret, and neither the store file nor its directory changes.
// "@SECRET@", "@DIR@" and "@WAL@" in the text stand for the secret file, the directory
// and the store's WAL path. The seeds are replayed by every test run.
func FuzzSandbox(f *testing.F) {
	for _, s := range []string{
		"SELECT content FROM read_text('@SECRET@')",
		"SELECT * FROM read_csv('@SECRET@', header = false)",
		"SELECT * FROM glob('@DIR@/*')",
		"COPY (SELECT 1) TO '@DIR@/x.csv'",
		"EXPLAIN ANALYZE COPY (SELECT 42 AS x) TO '@WAL@'",
		"SET enable_external_access = true; SELECT content FROM read_text('@SECRET@')",
		"CREATE TEMP TABLE t AS SELECT content FROM read_text('@SECRET@'); SELECT * FROM t",
		"ATTACH '@DIR@/o.duckdb' AS o; CREATE TABLE o.t AS SELECT 1",
		"PIVOT jobs ON status USING count(*)",
		"SELECT 1; SELECT 2",
		"INSERT INTO jobs (id) VALUES (1)",
		"EXPORT DATABASE '@DIR@/exp'",
	} {
		f.Add(s)
	}
	fx := newSandboxFixture(f)
	sb, err := OpenSandbox(context.Background(), fx.path, SandboxOptions{Timeout: 2 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = sb.Close() })
	before := fx.state(f)
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 2000 {
			return
		}
		q := strings.NewReplacer("@SECRET@", fx.secret, "@DIR@", fx.dir, "@WAL@", fx.path+".wal").Replace(text)
		var out bytes.Buffer
		err := sb.QueryEach(context.Background(), q, nil, func([]Column) error { return nil }, func(row []any) error {
			fmt.Fprintln(&out, row...)
			return nil
		})
		if err != nil {
			fmt.Fprintln(&out, err)
		}
		if strings.Contains(out.String(), fx.needle) {
			t.Fatalf("%q read the secret file: %s", q, out.String())
		}
		if got := fx.state(t); got != before {
			t.Fatalf("%q changed the directory or the store: %s, was %s", q, got, before)
		}
	})
}
