package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// Column names a result column and its DuckDB type (e.g. "BIGINT", "TIMESTAMPTZ", "JSON").
type Column struct {
	Name string
	Type string
}

// Result is a whole query result. Values are as the DuckDB driver scans them: int64 (and
// the other integer widths), float64, string, bool, time.Time, []byte, nil, *big.Int for
// HUGEINT, and parsed JSON, lists and structs (maps, slices) for nested columns.
type Result struct {
	Columns []Column
	Rows    [][]any
	// More is set when the query had more rows than the limit it was read with.
	More bool
}

// Names returns the column names in order.
func (r *Result) Names() []string {
	out := make([]string, len(r.Columns))
	for i, c := range r.Columns {
		out[i] = c.Name
	}
	return out
}

// errEnough stops a scan once a limit is reached; it never leaves this package.
var errEnough = errors.New("enough rows")

// Query runs one of drextract's own statements on db and returns all its rows. It is for
// SQL drextract wrote: SQL a person wrote goes through a Sandbox.
func Query(ctx context.Context, db *sql.DB, query string, args ...any) (*Result, error) {
	rs, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	err = ScanRows(rs, func(c []Column) error { res.Columns = c; return nil },
		func(row []any) error { res.Rows = append(res.Rows, row); return nil })
	if err != nil {
		return nil, err
	}
	return res, nil
}

// collect returns the header and row callbacks that gather at most limit rows (0: all)
// into res, stopping the scan with errEnough at the row after the limit.
func collect(res *Result, limit int) (func([]Column) error, func([]any) error) {
	return func(c []Column) error { res.Columns = c; return nil },
		func(row []any) error {
			if limit > 0 && len(res.Rows) == limit {
				res.More = true
				return errEnough
			}
			res.Rows = append(res.Rows, row)
			return nil
		}
}

// ScanRows is drextract's one row scanner. It reads rs to its end: header once with the
// columns, then row for every row in order, with a fresh slice each time. An error from
// either callback stops the scan and is returned as it is. ScanRows closes rs.
func ScanRows(rs *sql.Rows, header func([]Column) error, row func([]any) error) error {
	defer rs.Close()
	types, err := rs.ColumnTypes()
	if err != nil {
		return fmt.Errorf("reading result columns: %w", err)
	}
	cols := make([]Column, len(types))
	for i, t := range types {
		cols[i] = Column{Name: t.Name(), Type: t.DatabaseTypeName()}
	}
	if err := header(cols); err != nil {
		return err
	}
	for rs.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rs.Scan(ptrs...); err != nil {
			return fmt.Errorf("reading result row: %w", err)
		}
		if err := row(vals); err != nil {
			return err
		}
	}
	return rs.Err()
}
