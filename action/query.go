package action

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/drextract/drextract/load"
)

// UserSQL runs SQL drextract did not write — a selection's own text — where it can only
// read the store's tables. *load.Sandbox implements it; see StoreSandbox. Query returns at
// most limit rows (0: all) and sets More when there were more.
type UserSQL interface {
	Query(ctx context.Context, query string, args []sql.NamedArg, limit int) (*load.Result, error)
	Close() error
}

// StoreSandbox returns an Engine.OpenUserSQL over st: a sandbox on st's file when st is
// read-only, or, when st is the live read-write store, on a copy of it published to
// servingPath at that moment (load.Store.Sandbox), so a selection never acts on rows
// older than the store's.
func StoreSandbox(st *load.Store, servingPath string, opts load.SandboxOptions) func(context.Context) (UserSQL, error) {
	return func(ctx context.Context) (UserSQL, error) {
		sb, err := st.Sandbox(ctx, servingPath, opts)
		if err != nil {
			return nil, err
		}
		return sb, nil
	}
}

// ErrReadOnly is matched by the error for a selection that is anything but one reading
// statement, or uses a parameter its header does not declare: load.ErrRefused.
var ErrReadOnly = load.ErrRefused

// reworded is err with a message of its own: the sandbox's refusals, said of a selection.
type reworded struct {
	msg string
	err error
}

func (r *reworded) Error() string { return r.msg }
func (r *reworded) Unwrap() error { return r.err }

// Args returns the named arguments the selection runs with: each declared parameter
// from given (or its default; an optional one without default is NULL), plus $now and
// $today from now. A given name that is not declared, or a required one that is
// missing, is an error.
func (s *Selection) Args(given map[string]string, now time.Time) ([]sql.NamedArg, error) {
	declared := map[string]bool{}
	// Typed, because DuckDB cannot always infer a parameter's type from the query and
	// would take a Go time as TIMESTAMPTZ, where "$today - 7" must be date arithmetic.
	args := []sql.NamedArg{
		sql.Named(ParamNow, duckdb.Typed(now.UTC(), duckdb.TYPE_TIMESTAMP_TZ)),
		sql.Named(ParamToday, duckdb.Typed(todayOf(now), duckdb.TYPE_DATE)),
	}
	for _, p := range s.Params {
		declared[p.Name] = true
		v, ok := given[p.Name]
		switch {
		case ok:
			args = append(args, sql.Named(p.Name, v))
		case p.HasDefault:
			args = append(args, sql.Named(p.Name, p.Default))
		case p.Required:
			return nil, fmt.Errorf("selection %s needs parameter %q: add --param %s=VALUE", s.Name, p.Name, p.Name)
		default:
			args = append(args, sql.Named(p.Name, nil))
		}
	}
	var unknown []string
	for k := range given {
		if !declared[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("selection %s has no parameter %s (declared: %s)", s.Name, strings.Join(unknown, ", "), s.paramList())
	}
	return args, nil
}

func (s *Selection) paramList() string {
	names := []string{"$" + ParamNow, "$" + ParamToday}
	for _, p := range s.Params {
		names = append(names, "$"+p.Name)
	}
	return strings.Join(names, ", ")
}

func todayOf(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Run executes the selection's SQL through u, with its parameters filled from given
// and now, and reads at most limit rows (0: no limit), setting More when there were more.
// A statement that is refused, fails or uses an undeclared parameter is bad input
// (ErrBadInput); a timeout is not.
func (s *Selection) Run(ctx context.Context, u UserSQL, given map[string]string, now time.Time, limit int) (*load.Result, error) {
	args, err := s.Args(given, now)
	if err != nil {
		return nil, badInput(err)
	}
	res, err := u.Query(ctx, s.SQL, args, limit)
	var (
		refused *load.RefusedError
		param   *load.ParamError
		timeout *load.TimeoutError
	)
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &param) && param.Positional:
		return nil, badInput(&reworded{fmt.Sprintf("selection %s: use named parameters ($name), not ? or $%s", s.Name, param.Name), err})
	case errors.As(err, &param):
		return nil, badInput(&reworded{fmt.Sprintf("selection %s uses $%s, which its header does not declare (declared: %s)", s.Name, param.Name, s.paramList()), err})
	case errors.As(err, &refused):
		return nil, badInput(&reworded{fmt.Sprintf("selection %s refused: %s", s.Name, refused.Reason), err})
	case errors.As(err, &timeout), ctx.Err() != nil:
		return nil, fmt.Errorf("selection %s: %w", s.Name, err)
	}
	return nil, badInput(fmt.Errorf("selection %s: %w", s.Name, err))
}

// RowsFor turns a selection's result into input rows of op. Every column op needs must
// be there (the error names the missing ones); other columns are ignored, so a
// selection may show context such as names next to the ids. A value that does not
// parse refuses the whole result, naming the row and column.
func RowsFor(op Op, name string, res *load.Result) ([]Row, error) {
	want := op.Columns()
	pos := make(map[string]int, len(res.Columns))
	for i, c := range res.Columns {
		pos[strings.ToLower(c.Name)] = i
	}
	var missing []string
	idx := make([]int, len(want))
	for i, w := range want {
		p, ok := pos[w]
		if !ok {
			missing = append(missing, w)
		}
		idx[i] = p
	}
	if len(missing) > 0 {
		return nil, &MissingColumnError{Selection: name, Op: op, Missing: missing, Have: res.Names()}
	}
	rows := make([]Row, 0, len(res.Rows))
	dup := newDupChecker(op)
	for n, vals := range res.Rows {
		r := Row{Line: n + 1}
		for i, col := range want {
			text, ok := valueText(vals[idx[i]])
			if !ok {
				return nil, fmt.Errorf("selection %s, row %d: %s is NULL", name, n+1, col)
			}
			if err := r.setField(col, text); err != nil {
				return nil, fmt.Errorf("selection %s, row %d: %w", name, n+1, err)
			}
		}
		if err := r.check(op); err != nil {
			return nil, fmt.Errorf("selection %s, row %d: %w", name, n+1, err)
		}
		if prev, msg := dup.add(r); prev > 0 {
			return nil, fmt.Errorf("selection %s, row %d: %s (row %d)", name, n+1, msg, prev)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// MissingColumnError says a selection lacks a column its action needs.
type MissingColumnError struct {
	Selection string
	Op        Op
	Missing   []string
	Have      []string
}

func (e *MissingColumnError) Error() string {
	what := "column"
	if len(e.Missing) > 1 {
		what = "columns"
	}
	return fmt.Sprintf("selection %s lacks %s %s that action %s needs (needs %s; it returns %s)",
		e.Selection, what, strings.Join(quoteAll(e.Missing), ", "), e.Op,
		strings.Join(e.Op.Columns(), ", "), strings.Join(e.Have, ", "))
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}
