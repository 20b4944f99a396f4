package action

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/drextract/drextract/load"
)

// FuzzParseCSV: any input either parses into rows that are valid for the operation and
// survive a round trip through CSV unchanged, or is refused with an error naming the
// file (and line). It never panics. Seeds: testdata/fuzz/FuzzParseCSV.
func FuzzParseCSV(f *testing.F) {
	f.Add([]byte("stream_id,name\n101,Alpha\n"), uint8(3))
	f.Add([]byte("stream_id,start_date,end_date\n101,2021-06-01,2021-06-30\n"), uint8(2))
	f.Add([]byte("stream_id,patch\n101,\"{\"\"a\"\":1}\"\n"), uint8(4))
	f.Add([]byte("workspace_id,json\n7,\"{\"\"name\"\":\"\"x\"\",\"\"workspaceId\"\":7}\"\n"), uint8(1))
	ops := Ops()
	f.Fuzz(func(t *testing.T, data []byte, opIdx uint8) {
		op := ops[int(opIdx)%len(ops)]
		rows, err := ParseCSV(bytes.NewReader(data), "f.csv", op)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.csv:") {
				t.Fatalf("error does not name the file: %v", err)
			}
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("error %T is not a *LineError", err)
			}
			return
		}
		if len(rows) == 0 {
			t.Fatal("no error and no rows")
		}
		for _, r := range rows {
			if (r.StreamID <= 0) != op.Creates() || (r.WorkspaceID <= 0 || bodyName(r.Body) == "") != !op.Creates() || r.Line < 2 {
				t.Fatalf("bad row %+v", r)
			}
			if err := r.check(op); err != nil {
				t.Fatalf("row %+v passed parsing but fails check: %v", r, err)
			}
		}
		// Round trip: write the rows back and parse them again.
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		cols := op.Columns()
		_ = w.Write(cols)
		for _, r := range rows {
			rec := make([]string, len(cols))
			for i, c := range cols {
				switch c {
				case ColStreamID:
					rec[i] = strconv.FormatInt(r.StreamID, 10)
				case ColJobID:
					rec[i] = strconv.FormatInt(r.JobID, 10)
				case ColStartDate:
					rec[i] = r.StartDate.String()
				case ColEndDate:
					rec[i] = r.EndDate.String()
				case ColName:
					rec[i] = r.Name
				case ColPatch:
					rec[i] = string(r.Patch)
				case ColWorkspaceID:
					rec[i] = strconv.FormatInt(r.WorkspaceID, 10)
				case ColJSON:
					rec[i] = string(r.Body)
				}
			}
			_ = w.Write(rec)
		}
		w.Flush()
		again, err := ParseCSV(&buf, "f.csv", op)
		if err != nil {
			t.Fatalf("round trip refused: %v\n%s", err, buf.String())
		}
		if len(again) != len(rows) {
			t.Fatalf("round trip: %d rows, want %d", len(again), len(rows))
		}
		for i := range rows {
			a, b := rows[i], again[i]
			a.Line, b.Line = 0, 0
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("round trip changed row %d: %+v → %+v", i, a, b)
			}
		}
	})
}

// FuzzParseSelectionHeader: any text either gives a selection whose declarations are
// valid, or an error naming the file and line. It never panics. Seeds:
// testdata/fuzz/FuzzParseSelectionHeader.
func FuzzParseSelectionHeader(f *testing.F) {
	f.Add("-- action: rerun\n-- param: pattern (required)\n-- max_rows: 500\nSELECT 1")
	f.Add("-- description: x\n-- param: d (default 7) days\nSELECT $d")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseSelectionHeader("x.sql", text)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "x.sql:") {
				t.Fatalf("error does not name the file and line: %v", err)
			}
			return
		}
		if s.Action != "" {
			if _, err := ParseOp(string(s.Action)); err != nil {
				t.Fatalf("invalid action %q accepted", s.Action)
			}
		}
		if s.MaxRows < 0 {
			t.Fatalf("negative max_rows %d", s.MaxRows)
		}
		seen := map[string]bool{}
		for _, p := range s.Params {
			if !paramName.MatchString(p.Name) || p.Name == ParamNow || p.Name == ParamToday || seen[p.Name] {
				t.Fatalf("invalid or duplicate parameter %q accepted", p.Name)
			}
			if p.Required && p.HasDefault {
				t.Fatalf("parameter %q both required and defaulted", p.Name)
			}
			seen[p.Name] = true
		}
		if s.SQL != text {
			t.Fatal("the SQL text was altered")
		}
	})
}

// FuzzSelectionReadOnly: whatever the text of a selection, running it in the sandbox
// never changes the database file or its folder: either it is refused, or it reads. Seeds: testdata/fuzz/FuzzSelectionReadOnly.
func FuzzSelectionReadOnly(f *testing.F) {
	for _, s := range []string{
		"SELECT * FROM t",
		"WITH x AS (SELECT a FROM t) SELECT * FROM x",
		"DELETE FROM t",
		"UPDATE t SET a = 0",
		"SELECT 1; DROP TABLE t",
		"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
		"ATTACH ':memory:' AS m",
		"COPY t TO '/tmp/x.csv'",
		"/* */ DELETE FROM t",
		"SELECT 1 -- ; DROP TABLE t\n",
		"SELECT 1 /* ; */; INSERT INTO t VALUES (9)",
		"PRAGMA version",
		"CREATE TABLE u AS SELECT 1",
		"SELECT $$; DROP TABLE t$$",
		"(SELECT 1); CHECKPOINT",
		"SELECT * FROM t WHERE a > $now",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	path := filepath.Join(dir, "store.duckdb")
	db, err := sql.Open("duckdb", path)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE t (a INTEGER); INSERT INTO t VALUES (1), (2), (3)`); err != nil {
		f.Fatal(err)
	}
	if err := db.Close(); err != nil {
		f.Fatal(err)
	}
	sb, err := load.OpenSandbox(context.Background(), path, load.SandboxOptions{Timeout: 5 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { sb.Close() })
	// The oracle is the file and its folder: the sandbox has no way to write either.
	snapshot := func(t *testing.T) string {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%v %x", names, sha256.Sum256(b))
	}
	var before string
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > 2000 {
			return
		}
		if before == "" {
			before = snapshot(t)
		}
		s := &Selection{Name: "fuzz", SQL: text}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = s.Run(ctx, sb, nil, time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC), 10)
		if got := snapshot(t); got != before {
			t.Fatalf("running %q changed the database: %s", text, got)
		}
	})
}
