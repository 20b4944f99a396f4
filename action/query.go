package action

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/drextract/drextract/load"
)

// Table is what a selection returned: its columns and rows as the driver gave them.
type Table struct {
	Columns []string
	Rows    [][]any
	// More is set when the selection had more rows than the limit it was run with.
	More bool
}

// ErrReadOnly is matched by the error for a selection that is anything but a single
// SELECT or WITH statement.
var ErrReadOnly = errors.New("selections must be a single SELECT or WITH statement")

// Args returns the named arguments the selection runs with: each declared parameter
// from given (or its default; an optional one without default is NULL), plus $now and
// $today from now. A given name that is not declared, or a required one that is
// missing, is an error.
func (s *Selection) Args(given map[string]string, now time.Time) ([]any, error) {
	declared := map[string]bool{}
	// Typed, because DuckDB cannot always infer a parameter's type from the query and
	// would take a Go time as TIMESTAMPTZ, where "$today - 7" must be date arithmetic.
	args := []any{
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

// Run executes the selection on db, read-only: the text must pass load.CheckReadOnly and
// DuckDB must see a SELECT; it runs inside a READ ONLY transaction that is rolled back.
// It reads at most limit rows (0: no limit) and sets More when there were more.
func (s *Selection) Run(ctx context.Context, db *sql.DB, given map[string]string, now time.Time, limit int) (*Table, error) {
	if err := load.CheckReadOnly(s.SQL); err != nil {
		return nil, badInput(fmt.Errorf("selection %s refused: %w: %w", s.Name, ErrReadOnly, err))
	}
	args, err := s.Args(given, now)
	if err != nil {
		return nil, badInput(err)
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("selection %s: %w", s.Name, err)
	}
	defer conn.Close()
	if err := s.checkStatement(ctx, conn); err != nil {
		return nil, badInput(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION READ ONLY"); err != nil {
		return nil, fmt.Errorf("selection %s: starting a read-only transaction: %w", s.Name, err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK") //nolint:errcheck // nothing was written
	rows, err := conn.QueryContext(ctx, s.SQL, args...)
	if err != nil {
		return nil, badInput(fmt.Errorf("selection %s: %w", s.Name, err))
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, fmt.Errorf("selection %s: %w", s.Name, err)
	}
	res := &Table{Columns: cols}
	for rows.Next() {
		if limit > 0 && len(res.Rows) == limit {
			res.More = true
			break
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("selection %s, row %d: %w", s.Name, len(res.Rows)+1, err)
		}
		res.Rows = append(res.Rows, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("selection %s: %w", s.Name, err)
	}
	return res, nil
}

// checkStatement prepares the text to ask DuckDB itself what it is (one SELECT) and
// which parameters it uses: DuckDB binds an unknown $name by position, so a typo in a
// parameter name would silently take another parameter's value.
func (s *Selection) checkStatement(ctx context.Context, conn *sql.Conn) error {
	known := map[string]bool{ParamNow: true, ParamToday: true}
	for _, p := range s.Params {
		known[p.Name] = true
	}
	return conn.Raw(func(dc any) error {
		pc, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("selection %s: the driver cannot prepare statements", s.Name)
		}
		st, err := pc.PrepareContext(ctx, s.SQL)
		if err != nil {
			return fmt.Errorf("selection %s: %w", s.Name, err)
		}
		defer st.Close()
		ds, ok := st.(*duckdb.Stmt)
		if !ok {
			return nil // another driver: CheckReadOnly already ran
		}
		typ, err := ds.StatementType()
		if err != nil {
			return fmt.Errorf("selection %s: %w", s.Name, err)
		}
		if typ != duckdb.STATEMENT_TYPE_SELECT {
			return fmt.Errorf("selection %s refused: %w (DuckDB reads it as statement type %d)", s.Name, ErrReadOnly, typ)
		}
		for i := 1; i <= ds.NumInput(); i++ {
			name, err := ds.ParamName(i)
			if err != nil {
				return fmt.Errorf("selection %s: %w", s.Name, err)
			}
			if !known[name] {
				if name == "" || (name[0] >= '0' && name[0] <= '9') {
					return fmt.Errorf("selection %s: use named parameters ($name), not ? or $%s", s.Name, name)
				}
				return fmt.Errorf("selection %s uses $%s, which its header does not declare (declared: %s)", s.Name, name, s.paramList())
			}
		}
		return nil
	})
}

// RowsFor turns a selection's result into input rows of op. Every column op needs must
// be there (the error names the missing ones); other columns are ignored, so a
// selection may show context such as names next to the ids. A value that does not
// parse refuses the whole result, naming the row and column.
func RowsFor(op Op, name string, res *Table) ([]Row, error) {
	want := op.Columns()
	pos := make(map[string]int, len(res.Columns))
	for i, c := range res.Columns {
		pos[strings.ToLower(c)] = i
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
		return nil, &MissingColumnError{Selection: name, Op: op, Missing: missing, Have: res.Columns}
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
