package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/drextract/drextract/load"
)

// renderAll prints res in every format.
func renderAll(t *testing.T, res *load.Result) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, f := range resultFormats {
		var b bytes.Buffer
		if err := writeResult(&b, f, res); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = b.String()
	}
	return out
}

// The renderings every command shares, on values as the DuckDB driver gives them.
func TestResultRenderings(t *testing.T) {
	ts := time.Date(2025, 3, 10, 9, 30, 0, 0, time.FixedZone("CET", 3600))
	res := &load.Result{
		Columns: []load.Column{
			{Name: "name", Type: "VARCHAR"}, {Name: "n", Type: "BIGINT"}, {Name: "x", Type: "DOUBLE"},
			{Name: "at", Type: "TIMESTAMP WITH TIME ZONE"}, {Name: "day", Type: "DATE"}, {Name: "doc", Type: "JSON"},
		},
		Rows: [][]any{
			{"日本語", int64(12), 1.5, ts, time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC), map[string]any{"a": []any{1.0, "b"}}},
			{"a,\"q\"\nb", nil, math.NaN(), ts.Add(1500 * time.Millisecond), nil, nil},
			{nil, int64(-3), math.Inf(-1), nil, nil, "plain"},
		},
		More: true,
	}
	got := renderAll(t, res)
	want := map[string]string{
		"table": "" +
			"name      n     x          at                      day         doc\n" +
			"--------  ----  ---------  ----------------------  ----------  -------------\n" +
			"日本語      12        1.5  2025-03-10T08:30:00Z    2025-03-10  {\"a\":[1,\"b\"]}\n" +
			"a,\"q\"\\nb  NULL        NaN  2025-03-10T08:30:01.5Z  NULL        NULL\n" +
			"NULL        -3  -Infinity  NULL                    NULL        plain\n" +
			"(3 rows; more not shown)\n",
		"csv": "" +
			"name,n,x,at,day,doc\n" +
			"日本語,12,1.5,2025-03-10T08:30:00Z,2025-03-10,\"{\"\"a\"\":[1,\"\"b\"\"]}\"\n" +
			"\"a,\"\"q\"\"\nb\",,NaN,2025-03-10T08:30:01.5Z,,\n" +
			",-3,-Infinity,,,plain\n",
		"json": "[\n" +
			`  {"name": "日本語", "n": 12, "x": 1.5, "at": "2025-03-10T08:30:00Z", "day": "2025-03-10", "doc": {"a":[1,"b"]}},` + "\n" +
			`  {"name": "a,\"q\"\nb", "n": null, "x": "NaN", "at": "2025-03-10T08:30:01.5Z", "day": null, "doc": null},` + "\n" +
			`  {"name": null, "n": -3, "x": "-Infinity", "at": null, "day": null, "doc": "plain"}` + "\n]\n",
	}
	for f, w := range want {
		if got[f] != w {
			t.Errorf("%s:\n%s\nwant:\n%s", f, got[f], w)
		}
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(got["json"]), &rows); err != nil || len(rows) != 3 {
		t.Errorf("the JSON does not parse: %v", err)
	}
}

// Values of a real DuckDB, through the one scanner: exact numbers, nested values, times.
func TestResultFromDuckDB(t *testing.T) {
	dir := qxStore(t, true)
	st, err := load.OpenReadOnly(context.Background(), filepath.Join(dir, load.ServingFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := load.Query(context.Background(), st.DB(), `SELECT
		CAST(170141183460469231731687303715884105727 AS HUGEINT) AS big, CAST(12.50 AS DECIMAL(6,2)) AS dec,
		[1, 2] AS list, {'k': 'v'} AS rec, TIME '13:45:00' AS tod, CAST('nan' AS DOUBLE) AS nan,
		'\x01\xff'::BLOB AS bin, TIMESTAMP '2025-01-02 03:04:05.25' AS ts`)
	if err != nil {
		t.Fatal(err)
	}
	got := renderAll(t, res)
	wantCSV := "big,dec,list,rec,tod,nan,bin,ts\n" +
		`170141183460469231731687303715884105727,12.5,"[1,2]","{""k"":""v""}",13:45:00,NaN,\x01ff,2025-01-02T03:04:05.25Z` + "\n"
	if got["csv"] != wantCSV {
		t.Errorf("csv:\n%s\nwant:\n%s", got["csv"], wantCSV)
	}
	wantJSON := "[\n" + `  {"big": 170141183460469231731687303715884105727, "dec": 12.5, "list": [1,2], "rec": {"k":"v"}, "tod": "13:45:00", "nan": "NaN", "bin": "\\x01ff", "ts": "2025-01-02T03:04:05.25Z"}` + "\n]\n"
	if got["json"] != wantJSON {
		t.Errorf("json:\n%s\nwant:\n%s", got["json"], wantJSON)
	}
}
