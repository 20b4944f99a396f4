package action

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseSelectionHeader(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		want    *Selection // Name/SQL are not compared
		wantErr string
	}{
		{
			name: "full header",
			text: "-- description: Failed jobs\n-- description: of the day.\n-- action: rerun\n-- param: pattern (required) the regex\n-- param: days (default 7)\n-- param: note (optional)\n-- max_rows: 500\nSELECT 1",
			want: &Selection{Description: "Failed jobs of the day.", Action: OpRerun, MaxRows: 500, Params: []Param{
				{Name: "pattern", Required: true, Description: "the regex"},
				{Name: "days", HasDefault: true, Default: "7"},
				{Name: "note"},
			}},
		},
		{name: "prose lines and blank lines", text: "-- Some prose without a key\n\n-- action: process\nSELECT 1", want: &Selection{Action: OpProcess}},
		{name: "action none", text: "-- action: none\nSELECT 1", want: &Selection{}},
		{name: "header ends at SQL", text: "SELECT 1\n-- action: nonsense", want: &Selection{}},
		{name: "param without space before paren", text: "-- param: pattern(required)\nSELECT 1", want: &Selection{Params: []Param{{Name: "pattern", Required: true}}}},
		{name: "default with spaces", text: "-- param: label (default a b) — what it is\nSELECT 1", want: &Selection{Params: []Param{{Name: "label", HasDefault: true, Default: "a b", Description: "what it is"}}}},
		{name: "unknown key", text: "-- action: rerun\n-- acton: rerun\nSELECT 1", wantErr: `x.sql:2: unknown header key "acton"`},
		{name: "unknown action", text: "-- action: explode\nSELECT 1", wantErr: `x.sql:1: unknown action "explode"`},
		{name: "action twice", text: "-- action: rerun\n-- action: rerun-all\nSELECT 1", wantErr: "x.sql:2: action declared twice (also line 1)"},
		{name: "bad max_rows", text: "-- max_rows: lots\nSELECT 1", wantErr: `x.sql:1: max_rows: "lots" is not a positive count`},
		{name: "zero max_rows", text: "-- max_rows: 0\nSELECT 1", wantErr: "x.sql:1: max_rows"},
		{name: "bad param name", text: "-- param: Pattern\nSELECT 1", wantErr: `x.sql:1: param: "Pattern" is not a parameter name`},
		{name: "reserved param", text: "-- param: now\nSELECT 1", wantErr: `x.sql:1: param: "now" is filled from the clock`},
		{name: "param twice", text: "-- param: a\n-- param: a\nSELECT 1", wantErr: `x.sql:2: param "a" declared twice`},
		{name: "bad param option", text: "-- param: a (mandatory)\nSELECT 1", wantErr: "x.sql:1: param: a: want (required), (optional) or (default VALUE)"},
		{name: "unclosed paren", text: "-- param: a (required\nSELECT 1", wantErr: "x.sql:1: param: a: unclosed parenthesis"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseSelectionHeader("x.sql", tt.text)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := *s
			got.Name, got.SQL = "", ""
			if !reflect.DeepEqual(&got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, *tt.want)
			}
		})
	}
}

func TestBuiltinSelections(t *testing.T) {
	c, err := LoadCatalog("")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Op{"failed-jobs-24h": OpRerun, "failed-streams": OpRerunAll, "stale-streams-7d": OpProcess, "names-not-matching": ""}
	for name, op := range want {
		s, err := c.Get(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if s.Action != op {
			t.Errorf("%s: action %q, want %q", name, s.Action, op)
		}
		if s.Description == "" || s.Source != "built-in" {
			t.Errorf("%s: description %q, source %q", name, s.Description, s.Source)
		}
	}
	if got := BuiltinNames(); !slices.Equal(got, []string{"failed-jobs-24h", "failed-streams", "names-not-matching", "stale-streams-7d"}) {
		t.Errorf("BuiltinNames = %v", got)
	}
	if p := mustGet(t, c, "names-not-matching").Params; len(p) != 1 || p[0].Name != "pattern" || !p[0].Required {
		t.Errorf("names-not-matching params = %+v", p)
	}
	if _, err := c.Get("nope"); err == nil || !strings.Contains(err.Error(), "unknown selection") {
		t.Errorf("Get(nope) = %v", err)
	}
}

func mustGet(t *testing.T, c *Catalog, name string) *Selection {
	t.Helper()
	s, err := c.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestUserSelections(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("my-streams.sql", "-- action: disable\nSELECT id AS stream_id FROM streams")
	write("notes.txt", "ignored")
	c, err := LoadCatalog(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := mustGet(t, c, "my-streams")
	if s.Action != OpDisable || s.Source != filepath.Join(dir, "my-streams.sql") {
		t.Fatalf("got %+v", s)
	}
	if !c.Has("failed-streams") || !c.Has("my-streams") || c.Has("notes") {
		t.Fatalf("names = %v", c.Names())
	}
	if _, err := LoadCatalog(filepath.Join(dir, "missing")); err != nil {
		t.Fatalf("a missing folder is no error: %v", err)
	}

	write("failed-streams.sql", "SELECT 1")
	if _, err := LoadCatalog(dir); err == nil || !strings.Contains(err.Error(), `selection "failed-streams" is already defined (built-in)`) {
		t.Fatalf("shadowing a built-in: %v", err)
	}
	os.Remove(filepath.Join(dir, "failed-streams.sql"))
	write("broken.sql", "-- action: frobnicate\nSELECT 1")
	if _, err := LoadCatalog(dir); err == nil || !strings.Contains(err.Error(), "broken.sql:1: unknown action") {
		t.Fatalf("broken header: %v", err)
	}
}
