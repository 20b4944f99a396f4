package catalog

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/goccy/go-yaml"
)

// WriteMarkdown writes the objects as a Markdown document: the tables, then the views,
// then drextract's internal bookkeeping, each with a table of its columns.
func WriteMarkdown(w io.Writer, objects []Described) error {
	var b strings.Builder
	b.WriteString("# The drextract store\n\n")
	b.WriteString("Tables keep deleted rows (`where not is_deleted`); `run_id` points at `runs`.\n")
	sections := []struct {
		title string
		keep  func(Described) bool
	}{
		{"Tables", func(d Described) bool { return d.Kind == KindTable && !d.Internal }},
		{"Views", func(d Described) bool { return d.Kind == KindView }},
		{"Internal tables", func(d Described) bool { return d.Internal }},
	}
	for _, s := range sections {
		first := true
		for _, d := range objects {
			if !s.keep(d) {
				continue
			}
			if first {
				fmt.Fprintf(&b, "\n## %s\n", s.title)
				first = false
			}
			fmt.Fprintf(&b, "\n### %s\n\n%s\n\n| column | type | description |\n|---|---|---|\n", d.Name, oneLine(d.Description))
			for _, c := range d.Columns {
				fmt.Fprintf(&b, "| `%s` | %s | %s |\n", c.Name, c.Type, mdCell(c.Description))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func mdCell(s string) string { return strings.ReplaceAll(oneLine(s), "|", `\|`) }

// WriteJSON writes the objects as a JSON array.
func WriteJSON(w io.Writer, objects []Described) error {
	if objects == nil {
		objects = []Described{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(objects)
}

// DBTOptions name the dbt source.
type DBTOptions struct {
	Source   string // the source's name, e.g. drextract
	Schema   string // the schema the tables are in, e.g. datorama
	Database string // optional
}

// DBTSources is a dbt sources.yml (dbt's "version: 2" properties file) with one source.
type DBTSources struct {
	Version int         `yaml:"version" json:"version"`
	Sources []DBTSource `yaml:"sources" json:"sources"`
}

// DBTSource is one dbt source.
type DBTSource struct {
	Name        string     `yaml:"name" json:"name"`
	Description string     `yaml:"description,omitempty" json:"description,omitempty"`
	Database    string     `yaml:"database,omitempty" json:"database,omitempty"`
	Schema      string     `yaml:"schema" json:"schema"`
	Tables      []DBTTable `yaml:"tables" json:"tables"`
}

// DBTTable is one table (or view) of a dbt source.
type DBTTable struct {
	Name          string        `yaml:"name" json:"name"`
	Description   string        `yaml:"description" json:"description"`
	LoadedAtField string        `yaml:"loaded_at_field,omitempty" json:"loaded_at_field,omitempty"`
	Freshness     *DBTFreshness `yaml:"freshness,omitempty" json:"freshness,omitempty"`
	Columns       []DBTColumn   `yaml:"columns" json:"columns"`
}

// DBTFreshness is dbt's freshness block.
type DBTFreshness struct {
	WarnAfter  DBTAfter `yaml:"warn_after" json:"warn_after"`
	ErrorAfter DBTAfter `yaml:"error_after" json:"error_after"`
}

// DBTAfter is a dbt duration: count and period (minute, hour or day).
type DBTAfter struct {
	Count  int    `yaml:"count" json:"count"`
	Period string `yaml:"period" json:"period"`
}

// DBTColumn is one column of a dbt table.
type DBTColumn struct {
	Name        string `yaml:"name" json:"name"`
	Description string `yaml:"description" json:"description"`
}

// DBT builds the dbt sources of the objects that are not internal.
func DBT(objects []Described, o DBTOptions) DBTSources {
	src := DBTSource{Name: o.Source, Database: o.Database, Schema: o.Schema,
		Description: "Datorama account data crawled and published by drextract.", Tables: []DBTTable{}}
	for _, d := range objects {
		if d.Internal {
			continue
		}
		t := DBTTable{Name: d.Name, Description: oneLine(d.Description), Columns: []DBTColumn{}}
		if f := d.Freshness; f != nil {
			t.LoadedAtField = f.LoadedAtField
			t.Freshness = &DBTFreshness{
				WarnAfter:  DBTAfter{Count: f.WarnAfterHours, Period: "hour"},
				ErrorAfter: DBTAfter{Count: f.ErrorAfterHours, Period: "hour"},
			}
		}
		for _, c := range d.Columns {
			t.Columns = append(t.Columns, DBTColumn{Name: c.Name, Description: oneLine(c.Description)})
		}
		src.Tables = append(src.Tables, t)
	}
	return DBTSources{Version: 2, Sources: []DBTSource{src}}
}

// WriteDBT writes DBT(objects, o) as YAML.
func WriteDBT(w io.Writer, objects []Described, o DBTOptions) error {
	out, err := yaml.MarshalWithOptions(DBT(objects, o), yaml.Indent(2), yaml.IndentSequence(true))
	if err != nil {
		return fmt.Errorf("writing dbt sources: %w", err)
	}
	_, err = w.Write(out)
	return err
}
