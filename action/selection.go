package action

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	drsql "github.com/drextract/drextract/sql"
)

// Selection is a named read-only query whose rows feed an operation. Its header comment
// declares what it is for:
//
//	-- description: failed jobs of the last 24 h not yet rerun
//	-- action: rerun
//	-- param: pattern (required) the regular expression names must match
//	-- param: days (default 7)
//	-- max_rows: 500
//
// The body refers to parameters as $name. $now (the current instant, TIMESTAMPTZ) and
// $today (the current UTC day, DATE) are always available and come from drextract's
// clock, never from DuckDB's now(): under the simulator time is simulated.
type Selection struct {
	Name        string
	Source      string // "built-in" or the file's path
	Description string
	Action      Op // "" when the selection declares none (act then needs --action)
	Params      []Param
	MaxRows     int // 0: DefaultMaxRows
	SQL         string
}

// Param is a declared selection parameter.
type Param struct {
	Name        string
	Required    bool
	Default     string
	HasDefault  bool
	Description string
}

// DefaultMaxRows is the row guard of a selection whose header sets none.
const DefaultMaxRows = 1000

// Parameters filled from the clock; a header may not declare them.
const (
	ParamNow   = "now"
	ParamToday = "today"
)

// ErrUnknownSelection is matched by the error for a name that is neither built in nor a
// file in the selections folder.
var ErrUnknownSelection = errors.New("unknown selection")

var (
	headerLine = regexp.MustCompile(`^--\s*([A-Za-z_][A-Za-z0-9_-]*)\s*:\s*(.*?)\s*$`)
	paramName  = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)
	selName    = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
)

// Header keys a selection may declare.
const (
	keyDescription = "description"
	keyAction      = "action"
	keyParam       = "param"
	keyMaxRows     = "max_rows"
)

// ParseSelectionHeader reads the header comment block of a selection's text: the
// comment and blank lines before the first line of SQL. A line "-- key: value" must use
// a known key (description, action, param, max_rows); other comment lines are prose.
// Errors name the line.
func ParseSelectionHeader(name, text string) (*Selection, error) {
	s := &Selection{Name: name, SQL: text}
	seen := map[string]int{}
	params := map[string]bool{}
	lines := strings.Split(text, "\n")
	for i, raw := range lines {
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, "--") {
			break // the SQL begins
		}
		m := headerLine.FindStringSubmatch(line)
		if m == nil {
			continue // prose
		}
		key, val := strings.ToLower(m[1]), m[2]
		lineErr := func(format string, a ...any) error {
			return &LineError{File: name, Line: i + 1, Msg: fmt.Sprintf(format, a...)}
		}
		switch key {
		case keyDescription:
			if s.Description != "" {
				s.Description += " "
			}
			s.Description += val
		case keyAction:
			if p, dup := seen[key]; dup {
				return nil, lineErr("action declared twice (also line %d)", p)
			}
			if v := strings.ToLower(val); v == "none" || v == "" {
				break
			}
			op, err := ParseOp(val)
			if err != nil {
				return nil, lineErr("%v", err)
			}
			s.Action = op
		case keyMaxRows:
			if p, dup := seen[key]; dup {
				return nil, lineErr("max_rows declared twice (also line %d)", p)
			}
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 || n > 10_000_000 {
				return nil, lineErr("max_rows: %q is not a positive count", clip(val))
			}
			s.MaxRows = n
		case keyParam:
			p, err := parseParam(val)
			if err != nil {
				return nil, lineErr("param: %v", err)
			}
			if params[p.Name] {
				return nil, lineErr("param %q declared twice", p.Name)
			}
			params[p.Name] = true
			s.Params = append(s.Params, p)
		default:
			return nil, lineErr("unknown header key %q (known: description, action, param, max_rows)", key)
		}
		if _, ok := seen[key]; !ok {
			seen[key] = i + 1
		}
	}
	return s, nil
}

// parseParam reads "NAME [(required)|(default VALUE)] [description]".
func parseParam(v string) (Param, error) {
	v = strings.TrimSpace(v)
	name, rest, _ := strings.Cut(v, " ")
	name = strings.TrimSpace(name)
	if open := strings.IndexByte(name, '('); open >= 0 { // "pattern(required)"
		rest = name[open:] + " " + rest
		name = name[:open]
	}
	if !paramName.MatchString(name) {
		return Param{}, fmt.Errorf("%q is not a parameter name (lower case letters, digits, _)", clip(name))
	}
	if name == ParamNow || name == ParamToday {
		return Param{}, fmt.Errorf("%q is filled from the clock and cannot be declared", name)
	}
	p := Param{Name: name}
	rest = strings.TrimSpace(rest)
	if strings.HasPrefix(rest, "(") {
		end := strings.IndexByte(rest, ')')
		if end < 0 {
			return Param{}, fmt.Errorf("%s: unclosed parenthesis", name)
		}
		inner := strings.TrimSpace(rest[1:end])
		rest = strings.TrimSpace(rest[end+1:])
		switch {
		case inner == "required":
			p.Required = true
		case inner == "optional":
		case strings.HasPrefix(inner, "default "), inner == "default":
			p.HasDefault = true
			p.Default = strings.TrimSpace(strings.TrimPrefix(inner, "default"))
		default:
			return Param{}, fmt.Errorf("%s: want (required), (optional) or (default VALUE), got (%s)", name, clip(inner))
		}
	}
	p.Description = strings.TrimLeft(rest, "—–-: ")
	return p, nil
}

// Catalog is the set of selections drextract knows: the built-ins and the .sql files of
// the user's selections folder. It is read once and safe for concurrent use.
type Catalog struct {
	byName map[string]*Selection
}

// LoadCatalog reads the built-in selections and, when dir is not empty, every NAME.sql
// in dir. A user file may not reuse a built-in name (which one runs would be a
// surprise). A missing dir is not an error when dir is the default: pass "" to skip.
func LoadCatalog(dir string) (*Catalog, error) {
	c := &Catalog{byName: map[string]*Selection{}}
	if err := c.addFS(drsql.Selections, "selections", "built-in"); err != nil {
		return nil, fmt.Errorf("built-in selections: %w", err)
	}
	if dir == "" {
		return c, nil
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err := c.addFS(os.DirFS(dir), ".", dir); err != nil {
		return nil, fmt.Errorf("selections in %s: %w", dir, err)
	}
	return c, nil
}

func (c *Catalog) addFS(fsys fs.FS, root, source string) error {
	entries, err := fs.ReadDir(fsys, root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		name := strings.TrimSuffix(e.Name(), ".sql")
		if !selName.MatchString(name) {
			return fmt.Errorf("%s: selection names use lower case letters, digits, '-', '_' and '.'", e.Name())
		}
		b, err := fs.ReadFile(fsys, pathJoin(root, e.Name()))
		if err != nil {
			return err
		}
		where := source
		if source != "built-in" {
			where = filepath.Join(source, e.Name())
		}
		s, err := ParseSelectionHeader(where, string(b))
		if err != nil {
			return err
		}
		s.Name, s.Source = name, where
		if old, dup := c.byName[name]; dup {
			return fmt.Errorf("%s: selection %q is already defined (%s)", where, name, old.Source)
		}
		c.byName[name] = s
	}
	return nil
}

func pathJoin(root, name string) string {
	if root == "." {
		return name
	}
	return root + "/" + name
}

// Get returns the named selection, or an error matching ErrUnknownSelection.
func (c *Catalog) Get(name string) (*Selection, error) {
	s, ok := c.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w %q (known: %s)", ErrUnknownSelection, name, strings.Join(c.Names(), ", "))
	}
	return s, nil
}

// Has reports whether the name is known; config validation uses it.
func (c *Catalog) Has(name string) bool { _, ok := c.byName[name]; return ok }

// Names returns every selection name, sorted.
func (c *Catalog) Names() []string {
	out := make([]string, 0, len(c.byName))
	for n := range c.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// BuiltinNames returns the names of the selections compiled into drextract.
func BuiltinNames() []string {
	c := &Catalog{byName: map[string]*Selection{}}
	if err := c.addFS(drsql.Selections, "selections", "built-in"); err != nil {
		return nil
	}
	return c.Names()
}
