package load

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
)

// Column names a result column and its DuckDB type (e.g. "BIGINT", "TIMESTAMPTZ", "JSON").
type Column struct {
	Name string
	Type string
}

// Query runs one read-only statement (CheckReadOnly, confirmed by DuckDB's parser) and
// returns all its rows. Values are as the DuckDB driver scans them: int64, float64,
// string, bool, time.Time, []byte, nil, and parsed JSON (maps, slices) for JSON columns.
// Use QueryEach for results too large to hold.
func Query(ctx context.Context, db *sql.DB, query string, args ...any) (cols []string, rows [][]any, err error) {
	err = QueryEach(ctx, db, query, args, func(c []Column) error {
		for _, col := range c {
			cols = append(cols, col.Name)
		}
		return nil
	}, func(row []any) error {
		rows = append(rows, row)
		return nil
	})
	return cols, rows, err
}

// QueryEach runs one read-only statement, calls header once with the columns and then
// row for every row, in order. The slice passed to row is fresh for each call. An error
// from either callback stops the query and is returned.
func QueryEach(ctx context.Context, db *sql.DB, query string, args []any,
	header func([]Column) error, row func([]any) error) error {
	if err := CheckReadOnly(query); err != nil {
		return err
	}
	if err := confirmSelect(ctx, db, query); err != nil {
		return err
	}
	rs, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("running query: %w", err)
	}
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
	if err := rs.Err(); err != nil {
		return fmt.Errorf("running query: %w", err)
	}
	return nil
}

// confirmSelect asks DuckDB's own parser, which serialises SELECT statements only,
// whether query is exactly one SELECT. A query the parser rejects for another reason
// (a syntax error) is left to fail when it runs.
func confirmSelect(ctx context.Context, db *sql.DB, query string) error {
	var out string
	if err := db.QueryRowContext(ctx, `SELECT CAST(json_serialize_sql(CAST($1 AS VARCHAR)) AS VARCHAR)`, query).Scan(&out); err != nil {
		return fmt.Errorf("checking query: %w", err)
	}
	var res struct {
		Error        bool              `json:"error"`
		ErrorMessage string            `json:"error_message"`
		Statements   []json.RawMessage `json:"statements"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return fmt.Errorf("checking query: %w", err)
	}
	switch {
	case res.Error && strings.Contains(res.ErrorMessage, "Only SELECT"):
		return &ReadOnlyError{Reason: "DuckDB's parser says this is not a SELECT statement", Offset: -1}
	case !res.Error && len(res.Statements) != 1:
		return &ReadOnlyError{Reason: fmt.Sprintf("DuckDB's parser found %d statements", len(res.Statements)), Offset: -1}
	}
	return nil
}
