package catalog

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

func TestParseIsStrict(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "tables:\n  t:\n    description: x\n    descripton: y\n", "descripton"},
		{"no description", "tables:\n  t:\n    columns: {a: b}\n", "has no description"},
		{"empty column", "tables:\n  t:\n    description: x\n    columns: {a: ''}\n", "empty description"},
		{"table and view", "tables:\n  t: {description: x}\nviews:\n  t: {description: y}\n", "both a table and a view"},
		{"bad freshness", "tables:\n  t: {description: x, freshness: {loaded_at_field: a, warn_after_hours: 5, error_after_hours: 1}}\n", "freshness"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	c, err := Parse([]byte(`
common: {run_id: the run}
tables:
  jobs: {description: jobs, columns: {id: job id, run_id: the run that wrote the job}}
  report_*: {description: a report, columns: {"*": an answer column, date_from: first day}}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ table, col, want string }{
		{"jobs", "id", "job id"},
		{"jobs", "run_id", "the run that wrote the job"}, // the table's own wins
		{"report_x", "run_id", "the run"},                // common before "*"
		{"report_x", "date_from", "first day"},
		{"report_x", "cost", "an answer column"},
		{"streams", "id", ""},
	} {
		if got := c.Column(tc.table, tc.col); got != tc.want {
			t.Errorf("Column(%s, %s) = %q, want %q", tc.table, tc.col, got, tc.want)
		}
	}
	if c.Lookup("report_x") == nil || c.Lookup("reports") != nil {
		t.Error("the glob report_* matches wrongly")
	}
}

// dbtFile is dbt's properties file as far as sources go (docs: reference/source-properties),
// decoded strictly: a key dbt does not know fails the test.
type dbtFile struct {
	Version int `yaml:"version"`
	Sources []struct {
		Name        string `yaml:"name"`
		Description string `yaml:"description"`
		Database    string `yaml:"database"`
		Schema      string `yaml:"schema"`
		Tables      []struct {
			Name          string `yaml:"name"`
			Description   string `yaml:"description"`
			LoadedAtField string `yaml:"loaded_at_field"`
			Freshness     *struct {
				WarnAfter  *dbtAfter `yaml:"warn_after"`
				ErrorAfter *dbtAfter `yaml:"error_after"`
			} `yaml:"freshness"`
			Columns []struct {
				Name        string `yaml:"name"`
				Description string `yaml:"description"`
			} `yaml:"columns"`
		} `yaml:"tables"`
	} `yaml:"sources"`
}

type dbtAfter struct {
	Count  int    `yaml:"count"`
	Period string `yaml:"period"`
}

// The dbt sources file has dbt's shape: version 2, one source with its schema, every
// table and column named and described, freshness rules whose loaded_at_field is a
// column of the table and whose periods dbt knows; internal tables left out.
func TestDBTSourcesShape(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	objs := []Object{
		{Name: "jobs", Kind: KindTable, Columns: []Column{{Name: "id", Type: "BIGINT"}, {Name: "last_seen", Type: "TIMESTAMP WITH TIME ZONE"}}},
		{Name: "runs", Kind: KindTable, Columns: []Column{{Name: "id", Type: "BIGINT"}, {Name: "finished", Type: "TIMESTAMP WITH TIME ZONE"}}},
		{Name: "jobs_enriched", Kind: KindView, Columns: []Column{{Name: "duration_s", Type: "DOUBLE"}}},
		{Name: "checkpoints", Kind: KindTable, Columns: []Column{{Name: "kind", Type: "VARCHAR"}}},
	}
	described, missing := c.Describe(objs)
	if len(missing) > 0 {
		t.Fatalf("missing descriptions: %v", missing)
	}
	var buf bytes.Buffer
	if err := WriteDBT(&buf, described, DBTOptions{Source: "drextract", Schema: "datorama"}); err != nil {
		t.Fatal(err)
	}
	var f dbtFile
	if err := yaml.UnmarshalWithOptions(buf.Bytes(), &f, yaml.DisallowUnknownField(), yaml.Strict()); err != nil {
		t.Fatalf("not dbt's shape: %v\n%s", err, buf.String())
	}
	if f.Version != 2 || len(f.Sources) != 1 || f.Sources[0].Name != "drextract" || f.Sources[0].Schema != "datorama" {
		t.Fatalf("header: %+v", f)
	}
	tables := map[string]bool{}
	fresh := map[string]string{}
	for _, tb := range f.Sources[0].Tables {
		tables[tb.Name] = true
		if tb.Description == "" {
			t.Errorf("table %s has no description", tb.Name)
		}
		cols := map[string]bool{}
		for _, col := range tb.Columns {
			cols[col.Name] = true
			if col.Name == "" || col.Description == "" {
				t.Errorf("table %s: column %+v", tb.Name, col)
			}
		}
		if tb.Freshness != nil {
			fresh[tb.Name] = tb.LoadedAtField
			if !cols[tb.LoadedAtField] {
				t.Errorf("table %s: loaded_at_field %q is not one of its columns", tb.Name, tb.LoadedAtField)
			}
			for _, a := range []*dbtAfter{tb.Freshness.WarnAfter, tb.Freshness.ErrorAfter} {
				if a == nil || a.Count <= 0 || (a.Period != "minute" && a.Period != "hour" && a.Period != "day") {
					t.Errorf("table %s: freshness %+v", tb.Name, a)
				}
			}
		}
	}
	if !tables["jobs"] || !tables["runs"] || !tables["jobs_enriched"] || tables["checkpoints"] {
		t.Errorf("tables %v: want jobs, runs, jobs_enriched and not the internal checkpoints", tables)
	}
	if fresh["jobs"] != "last_seen" || fresh["runs"] != "finished" {
		t.Errorf("freshness rules %v, want jobs on last_seen and runs on finished", fresh)
	}
}

func TestMarkdownAndJSON(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	described, _ := c.Describe([]Object{{Name: "streams", Kind: KindTable, Columns: []Column{{Name: "id", Type: "BIGINT"}}},
		{Name: "stream_health", Kind: KindView, Columns: []Column{{Name: "as_of", Type: "TIMESTAMP WITH TIME ZONE"}}}})
	var md bytes.Buffer
	if err := WriteMarkdown(&md, described); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Tables", "### streams", "| `id` | BIGINT | Data stream id. |", "## Views", "### stream_health"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, described); err != nil {
		t.Fatal(err)
	}
	var back []Described
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back) != 2 || back[1].Kind != KindView || back[0].Columns[0].Description != "Data stream id." {
		t.Errorf("json round trip: %v %+v", err, back)
	}
}
