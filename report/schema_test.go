package report

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/sim"
)

func TestValueType(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`null`, typeNone}, {`12`, typeBigint}, {`-3`, typeBigint}, {`12.5`, typeDouble}, {`1e3`, typeDouble},
		{`99999999999999999999`, typeDouble}, {`"2021-06-01"`, typeDate}, {`"2021-06-01 00:00:00.0"`, typeDate},
		{`"2021-02-30"`, typeVarchar}, {`"2021-06-01 10:00:00.0"`, typeVarchar}, {`"12"`, typeVarchar},
		{`true`, typeVarchar}, {`{"a":1}`, typeVarchar}, {`"x"`, typeVarchar},
	} {
		if got := valueType(json.RawMessage(tc.in)); got != tc.want {
			t.Errorf("valueType(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestColumnName(t *testing.T) {
	used := map[string]bool{"report_run_id": true, "data_stream": true}
	for _, tc := range []struct{ in, want string }{
		{"Data Stream Total Rows", "data_stream_total_rows"}, {"Report Run ID", "report_run_id_2"}, {"Data  Stream!", "data_stream_2"},
		{"2nd Metric", "c_2nd_metric"}, {"€€", "column"}, {`Cost "net"; DROP`, "cost_net_drop"},
	} {
		if got := columnName(tc.in, used); got != tc.want {
			t.Errorf("columnName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestReconcile(t *testing.T) {
	stored := []column{
		{Header: "Date", Name: "date", Type: typeDate, Position: 0},
		{Header: "Rows", Name: "rows", Type: typeBigint, Position: 1},
		{Header: "Cost", Name: "cost", Type: typeDouble, Position: 2},
		{Header: "Note", Name: "note", Type: typeNone, Position: 3},
		{Header: "Label", Name: "label", Type: typeVarchar, Position: 4},
	}
	for _, tc := range []struct {
		name           string
		headers, types []string
		added, retyped []int
		widened        []string
		wantErr        bool
		wantStoredType string
	}{
		{name: "same", headers: []string{"Date", "Rows"}, types: []string{typeDate, typeBigint}},
		{name: "new column", headers: []string{"Date", "Clicks"}, types: []string{typeDate, typeBigint}, added: []int{5}},
		{name: "bigint widens to double", headers: []string{"Rows"}, types: []string{typeDouble}, retyped: []int{1}, widened: []string{"rows BIGINT→DOUBLE"}},
		{name: "double holds bigint", headers: []string{"Cost"}, types: []string{typeBigint}},
		{name: "all-null column takes a type", headers: []string{"Note"}, types: []string{typeDate}, retyped: []int{3}},
		{name: "varchar holds anything", headers: []string{"Label"}, types: []string{typeBigint}},
		{name: "nulls fit anything", headers: []string{"Rows", "Date"}, types: []string{typeNone, typeNone}},
		{name: "bigint to text", headers: []string{"Rows"}, types: []string{typeVarchar}, wantErr: true, wantStoredType: typeBigint},
		{name: "date to number", headers: []string{"Date"}, types: []string{typeBigint}, wantErr: true, wantStoredType: typeDate},
		{name: "double to date", headers: []string{"Cost"}, types: []string{typeDate}, wantErr: true, wantStoredType: typeDouble},
		{name: "duplicate header", headers: []string{"Rows", "Rows"}, types: []string{typeBigint, typeBigint}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := reconcile("report_t", stored, tc.headers, tc.types)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				var tce *TypeChangeError
				if tc.wantStoredType != "" && (!errors.As(err, &tce) || tce.Stored != tc.wantStoredType) {
					t.Errorf("err = %v, want a TypeChangeError from %s", err, tc.wantStoredType)
				}
				return
			}
			if !reflect.DeepEqual(ch.added, tc.added) || !reflect.DeepEqual(ch.retyped, tc.retyped) || !reflect.DeepEqual(ch.widened, tc.widened) {
				t.Errorf("added %v retyped %v widened %v, want %v %v %v", ch.added, ch.retyped, ch.widened, tc.added, tc.retyped, tc.widened)
			}
			if len(ch.cols) < len(stored) {
				t.Errorf("a column was dropped: %v", ch.cols)
			}
		})
	}
}

// answer builds a Query API answer from literal JSON rows.
func answer(t *testing.T, headers []string, rows ...string) *datorama.QueryResult {
	t.Helper()
	r := &datorama.QueryResult{Headers: headers}
	for _, row := range rows {
		var vals []json.RawMessage
		if err := json.Unmarshal([]byte(row), &vals); err != nil {
			t.Fatal(err)
		}
		r.Rows = append(r.Rows, vals)
	}
	return r
}

// Schema evolution on a real DuckDB file: a new column is added, a removed one is kept
// and NULL in later rows, BIGINT widens to DOUBLE, and a type change that cannot widen
// is reported and writes nothing.
func TestSchemaEvolution(t *testing.T) {
	e := newEnv(t, sim.Options{Workspaces: 1, Streams: 2})
	ctx := context.Background()
	db := e.store.DB()
	def := &config.Report{Name: "evolving", Workspace: 1, Table: "report_evolving", Mode: config.ModeAppend,
		Dimensions: []string{"Date", "Data Stream"}, Measurements: []string{"Rows"}}
	span := Span{From: mustDate(t, "2021-06-01"), To: mustDate(t, "2021-06-02")}
	steps := []struct {
		name    string
		result  *datorama.QueryResult
		wantErr string
		check   func(t *testing.T, w written)
	}{
		{name: "first", result: answer(t, []string{"Date", "Data Stream", "Rows"},
			`["2021-06-01 00:00:00.0", "a", 10]`, `["2021-06-02", "b", null]`),
			check: func(t *testing.T, w written) {
				want := map[string]string{"date": "DATE", "data_stream": "VARCHAR", "rows": "BIGINT"}
				for c, ty := range want {
					if got := columnTypes(t, db, "report_evolving")[c]; got != ty {
						t.Errorf("%s is %s, want %s", c, got, ty)
					}
				}
			}},
		{name: "new column", result: answer(t, []string{"Date", "Data Stream", "Rows", "Cost"}, `["2021-06-01", "a", 11, 1.5]`),
			check: func(t *testing.T, w written) {
				if !reflect.DeepEqual(w.added, []string{"cost"}) {
					t.Errorf("added %v, want [cost]", w.added)
				}
				if n := count(t, db, `SELECT count(*) FROM report_evolving WHERE cost IS NULL`); n != 2 {
					t.Errorf("%d earlier rows with NULL cost, want 2", n)
				}
			}},
		{name: "removed column", result: answer(t, []string{"Date", "Rows", "Cost"}, `["2021-06-02", 12, 2]`),
			check: func(t *testing.T, w written) {
				if n := count(t, db, `SELECT count(*) FROM report_evolving WHERE data_stream IS NULL AND rows = 12 AND cost = 2`); n != 1 {
					t.Errorf("the new row does not have a NULL data_stream")
				}
				if n := count(t, db, `SELECT count(*) FROM report_evolving WHERE data_stream IS NOT NULL`); n != 3 {
					t.Errorf("%d earlier rows kept their data_stream, want 3", n)
				}
			}},
		{name: "bigint widens", result: answer(t, []string{"Date", "Rows"}, `["2021-06-02", 12.25]`),
			check: func(t *testing.T, w written) {
				if got := columnTypes(t, db, "report_evolving")["rows"]; got != "DOUBLE" {
					t.Errorf("rows is %s after widening, want DOUBLE", got)
				}
				if n := count(t, db, `SELECT count(*) FROM report_evolving WHERE rows IN (10, 11, 12, 12.25)`); n != 4 {
					t.Errorf("%d rows kept their values through the widening, want 4", n)
				}
			}},
		{name: "type change", result: answer(t, []string{"Date", "Rows"}, `["2021-06-02", "lots"]`, `["2021-06-02", 1]`),
			wantErr: `column report_evolving.rows ("Rows") is DOUBLE but the answer now holds VARCHAR values`},
	}
	for i, s := range steps {
		runID, err := startRun(ctx, db, def, span, e.clk.Now())
		if err != nil {
			t.Fatal(err)
		}
		w, err := land(ctx, db, landing{def: def, span: span, runID: runID, result: s.result}, e.clk.Now())
		if s.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), s.wantErr) {
				t.Fatalf("step %d %s: err %v, want %q", i, s.name, err, s.wantErr)
			}
			if n := count(t, db, `SELECT count(*) FROM report_evolving WHERE report_run_id = $1`, runID); n != 0 {
				t.Errorf("the failed step wrote %d rows", n)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d %s: %v", i, s.name, err)
		}
		if s.check != nil {
			s.check(t, w)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM report_columns WHERE table_name = 'report_evolving'`); n != 4 {
		t.Errorf("report_columns holds %d columns, want 4", n)
	}
}

func mustDate(t testing.TB, s string) datorama.Date {
	t.Helper()
	d, err := datorama.ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
