package load

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestCheckReadOnly(t *testing.T) {
	tests := []struct {
		query  string
		ok     bool
		reason string // part of the refusal message
	}{
		{"SELECT 1", true, ""},
		{"select status, count(*) from jobs group by 1", true, ""},
		{"  \n\tSELECT 1;", true, ""},
		{"SELECT 1;;  -- done", true, ""},
		{"WITH x AS (SELECT 1 AS a) SELECT * FROM x", true, ""},
		{"(SELECT 1) UNION ALL (SELECT 2)", true, ""},
		{"/* leading comment */ SELECT 1", true, ""},
		{"SELECT 'a;b' AS s, \"weird;name\" FROM t", true, ""},
		{"SELECT 'it''s; DROP TABLE jobs' FROM t", true, ""},
		{"SELECT E'\\'; DROP TABLE t; --'", true, ""},
		{"SELECT $$; DROP TABLE t;$$, $q$ ; DELETE $q$", true, ""},
		{"SELECT \"delete\", \"update\" FROM t WHERE reason LIKE '%insert%'", true, ""},
		{"SELECT 1 /* a /* nested */ ; DROP TABLE t; */", true, ""},
		{"SELECT * FROM jobs WHERE id = $1", true, ""},
		{"SELECT update_time, created_by_copy FROM t", true, ""},

		{"", false, "empty"},
		{" ; ;", false, "empty"},
		{"-- only a comment", false, "empty"},
		{"DELETE FROM jobs", false, "DELETE"},
		{"UPDATE jobs SET status = 'x'", false, "UPDATE"},
		{"INSERT INTO jobs VALUES (1)", false, "INSERT"},
		{"ATTACH 'other.duckdb' AS o", false, "ATTACH"},
		{"COPY jobs TO 'out.csv'", false, "COPY"},
		{"PRAGMA database_list", false, "PRAGMA"},
		{"CREATE TABLE x (a INT)", false, "CREATE"},
		{"DROP TABLE jobs", false, "DROP"},
		{"SET threads = 1", false, "SET"},
		{"INSTALL httpfs", false, "INSTALL"},
		{"SELECT 1; SELECT 2", false, "more than one statement"},
		{"SELECT 1; DROP TABLE jobs", false, "more than one statement"},
		{"SELECT 1; DROP TABLE jobs;", false, "more than one statement"},
		{"SELECT 1 -- c\n; DROP TABLE jobs", false, "more than one statement"},
		{"SELECT 1 -- c\r; DROP TABLE jobs", false, "more than one statement"},
		{"/* SELECT */ DELETE FROM jobs", false, "DELETE"},
		{"SELECT 1 /* unterminated", false, "unterminated comment"},
		{"SELECT 1 /* /* */ ; DROP TABLE t; */ x; DROP TABLE t", false, "more than one statement"},
		{"SELECT 'unterminated", false, "unterminated string"},
		{"SELECT E'\\'; DROP TABLE t", false, "unterminated string"},
		{"SELECT \"x", false, "unterminated quoted identifier"},
		{"SELECT $a$ x", false, "unterminated dollar"},
		{"SELECT 1e'\\''; DROP TABLE t; --'", false, "more than one statement"},
		{"WITH x AS (SELECT 1) DELETE FROM jobs", false, "DELETE"},
		{"WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", false, "INSERT"},
		{"SELECT * FROM t; -- ok\n/* */ ATTACH 'x'", false, "more than one statement"},
		{"EXPLAIN SELECT 1", false, "EXPLAIN"},
		{"CALL pragma_version()", false, "CALL"},
		{"FROM jobs", false, "FROM"},
		{"(DELETE FROM t)", false, "DELETE"},
		{"SELECT \"\xff\"", false, "UTF-8"},
	}
	for _, tc := range tests {
		err := CheckReadOnly(tc.query)
		if tc.ok {
			if err != nil {
				t.Errorf("CheckReadOnly(%q) = %v, want accepted", tc.query, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("CheckReadOnly(%q) accepted, want refused (%s)", tc.query, tc.reason)
			continue
		}
		var roe *ReadOnlyError
		if !errors.Is(err, ErrNotReadOnly) || !errors.As(err, &roe) {
			t.Errorf("CheckReadOnly(%q) = %v, not a ReadOnlyError", tc.query, err)
		}
		if !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("CheckReadOnly(%q) = %q, want it to mention %q", tc.query, err, tc.reason)
		}
	}
}

var (
	parserOnce sync.Once
	parserDB   *sql.DB
	parserErr  error
)

// duckdbVerdict asks DuckDB's parser about q: how many statements and whether all are
// SELECTs. ok is false when DuckDB cannot parse q at all.
func duckdbVerdict(t testing.TB, q string) (statements int, allSelect, ok bool) {
	parserOnce.Do(func() { parserDB, parserErr = openDB("", false) })
	if parserErr != nil {
		t.Fatal(parserErr)
	}
	var out string
	if err := parserDB.QueryRowContext(context.Background(),
		`SELECT CAST(json_serialize_sql(CAST($1 AS VARCHAR)) AS VARCHAR)`, q).Scan(&out); err != nil {
		t.Fatalf("json_serialize_sql(%q): %v", q, err)
	}
	var res struct {
		Error        bool              `json:"error"`
		ErrorMessage string            `json:"error_message"`
		Statements   []json.RawMessage `json:"statements"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Error {
		if strings.Contains(res.ErrorMessage, "Only SELECT") {
			return 0, false, true
		}
		return 0, false, false
	}
	return len(res.Statements), true, true
}

// FuzzCheckReadOnly checks CheckReadOnly against DuckDB's own parser: whatever it accepts,
// DuckDB must see as at most one statement, and a SELECT. The seed corpus in
// testdata/fuzz/FuzzCheckReadOnly is replayed by every test run.
func FuzzCheckReadOnly(f *testing.F) {
	for _, s := range []string{"SELECT 1", "SELECT 'a;b'; ", "WITH x AS (SELECT 1) SELECT * FROM x",
		"SELECT E'\\''", "SELECT $t$;$t$", "SELECT 1 /* /* */ */", "SELECT 1 -- x\r; DROP TABLE t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		err := CheckReadOnly(q)
		if err != nil {
			var roe *ReadOnlyError
			if !errors.As(err, &roe) || roe.Reason == "" {
				t.Fatalf("refusal of %q is not a ReadOnlyError with a reason: %v", q, err)
			}
			return
		}
		n, allSelect, parsed := duckdbVerdict(t, q)
		if !parsed {
			return // DuckDB will refuse to run it anyway
		}
		if n > 1 || !allSelect {
			t.Fatalf("CheckReadOnly accepted %q, but DuckDB sees %d statements (all SELECT: %v)", q, n, allSelect)
		}
	})
}

func TestQueryRefusesAndRuns(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	must(t, s.Write(ctx, 1, Batch{Entity: Jobs, ParentID: 10, ObservedAt: t0, Jobs: jobPage(10, 1, 1, 4, "FAILURE")}))
	cols, rows, err := Query(ctx, s.DB(), `SELECT status, count(*) AS n FROM jobs WHERE stream_id = $1 GROUP BY 1`, int64(10))
	must(t, err)
	if strings.Join(cols, ",") != "status,n" || len(rows) != 1 || rows[0][0] != "FAILURE" || rows[0][1] != int64(4) {
		t.Errorf("Query = %v %v", cols, rows)
	}
	for _, q := range []string{"DELETE FROM jobs", "SELECT 1; DELETE FROM jobs", "WITH x AS (SELECT 1) DELETE FROM jobs"} {
		if _, _, err := Query(ctx, s.DB(), q); !errors.Is(err, ErrNotReadOnly) {
			t.Errorf("Query(%q) = %v, want a refusal", q, err)
		}
	}
	if n := count(t, s.db, `SELECT count(*) FROM jobs`); n != 4 {
		t.Errorf("%d jobs left after refused statements", n)
	}
	// The parser check on its own, for what the lexical check lets through.
	if err := confirmSelect(ctx, s.DB(), "SELECT 1; SELECT 2"); !errors.Is(err, ErrNotReadOnly) {
		t.Errorf("confirmSelect of two statements = %v", err)
	}
	if err := confirmSelect(ctx, s.DB(), "SELECT * FROM jobs"); err != nil {
		t.Errorf("confirmSelect of a SELECT = %v", err)
	}
}
