package action

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseCSV(t *testing.T) {
	tests := []struct {
		name    string
		op      Op
		in      string
		want    int    // rows, when no error
		wantErr string // substring of the error, "" for success
	}{
		{"rename ok", OpRename, "stream_id,name\n101,Alpha\n102,\"Beta, Inc\"\n", 2, ""},
		{"columns in any order", OpRename, "name,stream_id\nAlpha,101\n", 1, ""},
		{"header case and spaces", OpRename, " Stream_ID , Name \n101,Alpha\n", 1, ""},
		{"BOM", OpRename, "\ufeffstream_id,name\n101,Alpha\n", 1, ""},
		{"CRLF", OpProcess, "stream_id,start_date,end_date\r\n101,2021-06-01,2021-06-30\r\n", 1, ""},
		{"empty name", OpRename, "stream_id,name\n101,Alpha\n102,  \n", 0, "f.csv:3: name: empty name"},
		{"wrong column count", OpRename, "stream_id,name\n101,Alpha\n102,Beta,extra\n", 0, "f.csv:3: wrong number of columns"},
		{"too few columns", OpRename, "stream_id,name\n101\n", 0, "f.csv:2: wrong number of columns"},
		{"bad id", OpRename, "stream_id,name\nabc,Alpha\n", 0, `f.csv:2: stream_id: "abc" is not an id`},
		{"negative id", OpRerun, "stream_id,job_id\n101,-5\n", 0, "f.csv:2: job_id: -5 is not a positive id"},
		{"bad date", OpProcess, "stream_id,start_date,end_date\n101,2021-13-01,2021-06-30\n", 0, `f.csv:2: start_date: "2021-13-01" is not a day`},
		{"slash date", OpProcess, "stream_id,start_date,end_date\n101,06/01/2021,2021-06-30\n", 0, "f.csv:2: start_date"},
		{"end before start", OpProcess, "stream_id,start_date,end_date\n101,2021-06-30,2021-06-01\n", 0, "f.csv:2: end_date 2021-06-01 is before start_date 2021-06-30"},
		{"overlapping ranges", OpProcess, "stream_id,start_date,end_date\n101,2021-06-01,2021-06-10\n101,2021-06-10,2021-06-20\n", 0, "f.csv:3: stream 101: range 2021-06-10..2021-06-20 overlaps 2021-06-01..2021-06-10 (line 2)"},
		{"disjoint ranges", OpProcess, "stream_id,start_date,end_date\n101,2021-06-01,2021-06-10\n101,2021-06-11,2021-06-20\n", 2, ""},
		{"duplicate stream", OpRename, "stream_id,name\n101,A\n102,B\n101,C\n", 0, "f.csv:4: stream 101 is listed twice (line 2)"},
		{"duplicate job", OpRerun, "stream_id,job_id\n101,5\n101,5\n", 0, "f.csv:3: job 5 of stream 101 is listed twice (line 2)"},
		{"bad JSON patch", OpPatch, "stream_id,patch\n101,{not json}\n", 0, "f.csv:2: patch: bad JSON patch"},
		{"patch not object", OpPatch, "stream_id,patch\n101,[1]\n", 0, "f.csv:2: patch: bad JSON patch"},
		{"patch null", OpPatch, "stream_id,patch\n101,null\n", 0, "f.csv:2: patch: patch is not a JSON object"},
		{"patch empty object", OpPatch, "stream_id,patch\n101,{}\n", 0, "f.csv:2: patch: empty patch object"},
		{"patch changes id", OpPatch, "stream_id,patch\n101,\"{\"\"id\"\":5}\"\n", 0, `f.csv:2: patch: patch must not change "id"`},
		{"patch ok", OpPatch, "stream_id,patch\n101,\"{\"\"enabled\"\":false, \"\"name\"\":\"\"x\"\"}\"\n", 1, ""},
		{"missing header column", OpRename, "stream_id\n101\n", 0, `f.csv:1: header lacks column "name"`},
		{"unexpected header column", OpRerunAll, "stream_id,comment\n101,x\n", 0, `f.csv:1: unexpected column "comment"`},
		{"duplicate header column", OpRerunAll, "stream_id,stream_id\n101,101\n", 0, `f.csv:1: column "stream_id" appears twice`},
		{"empty file", OpRename, "", 0, "f.csv:1: empty file"},
		{"header only", OpRename, "stream_id,name\n", 0, "f.csv:2: no rows after the header"},
		{"bare quote", OpRename, "stream_id,name\n101,Al\"pha\n", 0, "f.csv:2: bare \" in non-quoted-field"},
		{"multi-line quoted name refused", OpRename, "stream_id,name\n101,\"A\nB\"\n", 0, "f.csv:2: name: contains a line break"},
		{"blank lines keep the numbering", OpRerunAll, "stream_id\n101\n\n102\nx\n", 0, "f.csv:5: stream_id"},
		{"timestamp midnight accepted", OpProcess, "stream_id,start_date,end_date\n101,2021-06-01 00:00:00,2021-06-02\n", 1, ""},
		{"timestamp with time refused", OpProcess, "stream_id,start_date,end_date\n101,2021-06-01 10:00:00,2021-06-02\n", 0, "f.csv:2: start_date"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := ParseCSV(strings.NewReader(tt.in), "f.csv", tt.op)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("want error %q, got %d rows", tt.wantErr, len(rows))
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tt.wantErr)
				}
				var le *LineError
				if !errors.As(err, &le) {
					t.Fatalf("error %T is not a *LineError", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(rows) != tt.want {
				t.Fatalf("got %d rows, want %d", len(rows), tt.want)
			}
		})
	}
}

func TestParseCSVValues(t *testing.T) {
	in := "stream_id,patch\n101,\"{\"\"name\"\": \"\"x\"\", \"\"config\"\": {\"\"a\"\": 1.50}}\"\n"
	rows, err := ParseCSV(strings.NewReader(in), "p.csv", OpPatch)
	if err != nil {
		t.Fatal(err)
	}
	if rows[0].StreamID != 101 || rows[0].Line != 2 {
		t.Fatalf("row = %+v", rows[0])
	}
	// The patch is compacted but keeps its number text.
	if got := string(rows[0].Patch); got != `{"name":"x","config":{"a":1.50}}` {
		t.Fatalf("patch = %s", got)
	}
	if !json.Valid(rows[0].Patch) {
		t.Fatal("patch is not valid JSON")
	}
}

func TestParseCSVLineOfEachRow(t *testing.T) {
	in := "stream_id,start_date,end_date\n\n101,2021-06-01,2021-06-02\n\n\n102,2021-06-01,2021-06-02\n"
	rows, err := ParseCSV(strings.NewReader(in), "f.csv", OpProcess)
	if err != nil {
		t.Fatal(err)
	}
	if rows[0].Line != 3 || rows[1].Line != 6 {
		t.Fatalf("lines = %d, %d; want 3, 6", rows[0].Line, rows[1].Line)
	}
}

// Creations read a JSON body per line: with --workspace the file has the json column
// only; through act it names the workspace too. A body must be an object with a name,
// without an id, naming no other workspace; a name twice in a workspace refuses the file.
func TestParseCreateCSV(t *testing.T) {
	tests := []struct {
		name    string
		op      Op
		ws      int64 // 0: ParseCSV with the workspace_id column
		in      string
		want    int
		wantErr string
	}{
		{"json column", OpCreateStream, 7, "json\n\"{\"\"name\"\":\"\"A\"\",\"\"dataSourceId\"\":412}\"\n\"{\"\"name\"\":\"\"B\"\"}\"\n", 2, ""},
		{"workspace column", OpCreatePattern, 0, "workspace_id,json\n7,\"{\"\"name\"\":\"\"A\"\"}\"\n8,\"{\"\"name\"\":\"\"A\"\"}\"\n", 2, ""},
		{"same workspace in the body", OpCreateCalc, 7, "json\n\"{\"\"name\"\":\"\"A\"\",\"\"workspaceId\"\":\"\"7\"\"}\"\n", 1, ""},
		{"other workspace in the body", OpCreateCalc, 7, "json\n\"{\"\"name\"\":\"\"A\"\",\"\"workspaceId\"\":8}\"\n", 0, "f.csv:2: json: workspaceId 8 differs from the workspace 7"},
		{"no name", OpCreateStream, 7, "json\n\"{\"\"dataSourceId\"\":412}\"\n", 0, `f.csv:2: json: "name" must be a non-empty string`},
		{"an id", OpCreateStream, 7, "json\n\"{\"\"name\"\":\"\"A\"\",\"\"id\"\":5}\"\n", 0, `f.csv:2: json: "id" is assigned by the API`},
		{"not an object", OpCreateStream, 7, "json\n[1]\n", 0, "f.csv:2: json: not a JSON object"},
		{"name twice", OpCreateStream, 7, "json\n\"{\"\"name\"\":\"\"A\"\"}\"\n\"{\"\"name\"\":\"\"A\"\",\"\"x\"\":1}\"\n", 0, `f.csv:3: a stream named "A" in workspace 7 is listed twice (line 2)`},
		{"workspace column with --workspace", OpCreateStream, 7, "workspace_id,json\n7,\"{\"\"name\"\":\"\"A\"\"}\"\n", 0, `f.csv:1: unexpected column "workspace_id"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rows []Row
			var err error
			if tt.ws > 0 {
				rows, err = ParseCreateCSV(strings.NewReader(tt.in), "f.csv", tt.op, tt.ws)
			} else {
				rows, err = ParseCSV(strings.NewReader(tt.in), "f.csv", tt.op)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || len(rows) != tt.want {
				t.Fatalf("%d rows, %v; want %d", len(rows), err, tt.want)
			}
			for _, r := range rows {
				if r.WorkspaceID <= 0 || bodyName(r.Body) == "" {
					t.Errorf("row %+v lacks its workspace or name", r)
				}
			}
		})
	}
}

// The workspace goes in front of a body that lacks it; a body that has it is sent as
// given.
func TestWithWorkspace(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"name":"A","x":[1,2]}`, `{"workspaceId":7,"name":"A","x":[1,2]}`},
		{`{"workspaceId":7,"name":"A"}`, `{"workspaceId":7,"name":"A"}`},
		{`{"name":"A","workspaceId":"7"}`, `{"name":"A","workspaceId":"7"}`},
	} {
		got := string(withWorkspace([]byte(tc.in), 7))
		if got != tc.want || !json.Valid([]byte(got)) {
			t.Errorf("withWorkspace(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
