package catalog

import (
	"bytes"
	"fmt"
	"path"
	"sort"
	"sync"

	"github.com/goccy/go-yaml"

	drsql "github.com/drextract/drextract/sql"
)

// Kinds of objects.
const (
	KindTable = "table"
	KindView  = "view"
)

// Catalog is a parsed catalog.yaml. It is read-only once parsed and safe for concurrent
// use.
type Catalog struct {
	common map[string]string
	exact  map[string]*Entry // tables and views by name
	globs  []*Entry          // entries whose name holds a *, in name order
}

// Entry is the description of one table or view (or of every table a glob matches).
type Entry struct {
	Name        string            `yaml:"-"`
	Kind        string            `yaml:"-"`
	Description string            `yaml:"description"`
	Internal    bool              `yaml:"internal"`
	Freshness   *Freshness        `yaml:"freshness"`
	Columns     map[string]string `yaml:"columns"`
}

// Freshness is a dbt freshness rule: how stale the newest loaded_at_field may be.
type Freshness struct {
	LoadedAtField   string `yaml:"loaded_at_field" json:"loaded_at_field"`
	WarnAfterHours  int    `yaml:"warn_after_hours" json:"warn_after_hours"`
	ErrorAfterHours int    `yaml:"error_after_hours" json:"error_after_hours"`
}

type file struct {
	Common map[string]string `yaml:"common"`
	Tables map[string]*Entry `yaml:"tables"`
	Views  map[string]*Entry `yaml:"views"`
}

var (
	embedded     *Catalog
	embeddedErr  error
	embeddedOnce sync.Once
)

// Load returns the catalog embedded from sql/catalog.yaml, parsed once.
func Load() (*Catalog, error) {
	embeddedOnce.Do(func() { embedded, embeddedErr = Parse(drsql.Catalog) })
	return embedded, embeddedErr
}

// Parse reads a catalog strictly: unknown keys, a table or view without a description,
// an empty column description and a malformed freshness rule are errors.
func Parse(data []byte) (*Catalog, error) {
	var f file
	if err := yaml.UnmarshalWithOptions(data, &f, yaml.DisallowUnknownField(), yaml.Strict()); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	c := &Catalog{common: f.Common, exact: map[string]*Entry{}}
	for kind, m := range map[string]map[string]*Entry{KindTable: f.Tables, KindView: f.Views} {
		for name, e := range m {
			if e == nil || e.Description == "" {
				return nil, fmt.Errorf("catalog: %s %s has no description", kind, name)
			}
			if _, dup := c.exact[name]; dup {
				return nil, fmt.Errorf("catalog: %s is both a table and a view", name)
			}
			for col, d := range e.Columns {
				if d == "" {
					return nil, fmt.Errorf("catalog: column %s.%s has an empty description", name, col)
				}
			}
			if fr := e.Freshness; fr != nil && (fr.LoadedAtField == "" || fr.WarnAfterHours <= 0 || fr.ErrorAfterHours < fr.WarnAfterHours) {
				return nil, fmt.Errorf("catalog: %s: freshness wants loaded_at_field and 0 < warn_after_hours <= error_after_hours", name)
			}
			e.Name, e.Kind = name, kind
			if _, err := path.Match(name, ""); err != nil {
				return nil, fmt.Errorf("catalog: %s is not a valid name pattern: %w", name, err)
			}
			if bytes.ContainsAny([]byte(name), "*?[") {
				c.globs = append(c.globs, e)
			} else {
				c.exact[name] = e
			}
		}
	}
	for col, d := range f.Common {
		if d == "" {
			return nil, fmt.Errorf("catalog: common column %s has an empty description", col)
		}
	}
	sort.Slice(c.globs, func(i, j int) bool { return c.globs[i].Name < c.globs[j].Name })
	return c, nil
}

// Lookup returns the entry describing the table or view called name: its own, or the
// first glob that matches it; nil when none does.
func (c *Catalog) Lookup(name string) *Entry {
	if e, ok := c.exact[name]; ok {
		return e
	}
	for _, e := range c.globs {
		if ok, _ := path.Match(e.Name, name); ok {
			return e
		}
	}
	return nil
}

// Column returns the description of column col of the table or view called table: the
// entry's own, else the common one, else the entry's "*"; "" when there is none.
func (c *Catalog) Column(table, col string) string {
	e := c.Lookup(table)
	if e != nil {
		if d, ok := e.Columns[col]; ok {
			return d
		}
	}
	if d, ok := c.common[col]; ok {
		return d
	}
	if e != nil {
		return e.Columns["*"]
	}
	return ""
}

// Object is a table or view as a store has it.
type Object struct {
	Name    string   `json:"name"`
	Kind    string   `json:"kind"` // KindTable or KindView
	Columns []Column `json:"columns"`
}

// Column is a column of an Object: its name and its database type.
type Column struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Description string `json:"description"`
}

// Described is an Object with its descriptions.
type Described struct {
	Object
	Description string     `json:"description"`
	Internal    bool       `json:"internal,omitempty"`
	Freshness   *Freshness `json:"freshness,omitempty"`
}

// Describe pairs objects with their descriptions, in the order given. missing lists what
// has no description ("table" or "table.column"); such objects and columns keep an empty
// one.
func (c *Catalog) Describe(objects []Object) (out []Described, missing []string) {
	for _, o := range objects {
		d := Described{Object: Object{Name: o.Name, Kind: o.Kind}}
		if e := c.Lookup(o.Name); e != nil {
			d.Description, d.Internal, d.Freshness = e.Description, e.Internal, e.Freshness
		} else {
			missing = append(missing, o.Name)
		}
		for _, col := range o.Columns {
			col.Description = c.Column(o.Name, col.Name)
			if col.Description == "" {
				missing = append(missing, o.Name+"."+col.Name)
			}
			d.Columns = append(d.Columns, col)
		}
		out = append(out, d)
	}
	return out, missing
}
