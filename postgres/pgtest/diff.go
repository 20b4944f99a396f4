package pgtest

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drextract/drextract/load"
)

// Diff compares every table the store publishes, and every analyst view, with the same
// table or view in schema, row by row (as multisets: order aside), and returns the
// differences, at most a few per table; nil when they are equal. JSON is compared
// parsed, times as instants, dates as days.
func Diff(ctx context.Context, store *load.Store, conn *pgx.Conn, schema string) ([]string, error) {
	tables, err := store.PublishTables(ctx)
	if err != nil {
		return nil, err
	}
	views, err := load.Views()
	if err != nil {
		return nil, err
	}
	type object struct {
		name string
		cols []load.ColumnSchema
	}
	var objs []object
	for _, t := range tables {
		objs = append(objs, object{t.Name, t.Columns})
	}
	for _, v := range views {
		cols, err := viewColumns(ctx, store.DB(), v.Name)
		if err != nil {
			return nil, err
		}
		objs = append(objs, object{v.Name, cols})
	}
	var diffs []string
	for _, o := range objs {
		want, err := duckRows(ctx, store.DB(), o.name, o.cols)
		if err != nil {
			return nil, err
		}
		got, err := pgRows(ctx, conn, schema, o.name, o.cols)
		if err != nil {
			diffs = append(diffs, fmt.Sprintf("%s: %v", o.name, err))
			continue
		}
		diffs = append(diffs, compare(o.name, want, got)...)
	}
	return diffs, nil
}

func viewColumns(ctx context.Context, db *sql.DB, view string) ([]load.ColumnSchema, error) {
	rows, err := db.QueryContext(ctx, `SELECT column_name, data_type FROM duckdb_columns()
		WHERE database_name = current_database() AND schema_name = 'main' AND table_name = $1 ORDER BY column_index`, view)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []load.ColumnSchema
	for rows.Next() {
		var c load.ColumnSchema
		if err := rows.Scan(&c.Name, &c.Type); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func compare(name string, want, got []string) []string {
	var diffs []string
	if len(want) != len(got) {
		diffs = append(diffs, fmt.Sprintf("%s: the store has %d rows, PostgreSQL %d", name, len(want), len(got)))
	}
	wm := map[string]int{}
	for _, r := range want {
		wm[r]++
	}
	for _, r := range got {
		wm[r]--
	}
	var missing, extra []string
	for r, n := range wm {
		for ; n > 0; n-- {
			missing = append(missing, r)
		}
		for ; n < 0; n++ {
			extra = append(extra, r)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	for _, r := range missing[:min(3, len(missing))] {
		diffs = append(diffs, fmt.Sprintf("%s: missing in PostgreSQL: %s", name, clip(r)))
	}
	for _, r := range extra[:min(3, len(extra))] {
		diffs = append(diffs, fmt.Sprintf("%s: only in PostgreSQL: %s", name, clip(r)))
	}
	return diffs
}

func clip(s string) string {
	if len(s) > 300 {
		return s[:120] + " … " + s[len(s)-300:]
	}
	return s
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func duckRows(ctx context.Context, db *sql.DB, name string, cols []load.ColumnSchema) ([]string, error) {
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = quote(c.Name)
		if c.Type == "JSON" {
			sel[i] = "CAST(" + sel[i] + " AS VARCHAR)"
		}
	}
	rows, err := db.QueryContext(ctx, fmt.Sprintf("SELECT %s FROM %s", strings.Join(sel, ", "), quote(name)))
	if err != nil {
		return nil, fmt.Errorf("reading %s from the store: %w", name, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, render(vals, cols))
	}
	return out, rows.Err()
}

func pgRows(ctx context.Context, conn *pgx.Conn, schema, name string, cols []load.ColumnSchema) ([]string, error) {
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = quote(c.Name)
		if c.Type == "JSON" {
			sel[i] += "::text"
		}
	}
	rows, err := conn.Query(ctx, fmt.Sprintf("SELECT %s FROM %s.%s", strings.Join(sel, ", "), quote(schema), quote(name)))
	if err != nil {
		return nil, fmt.Errorf("reading %s from PostgreSQL: %w", name, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, err
		}
		out = append(out, render(vals, cols))
	}
	return out, rows.Err()
}

// render is a row as comparable text.
func render(vals []any, cols []load.ColumnSchema) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		parts[i] = cols[i].Name + "=" + value(v, cols[i].Type)
	}
	return strings.Join(parts, " | ")
}

func value(v any, typ string) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case string:
		if typ == "JSON" {
			return canonicalJSON(x)
		}
		return strconv.Quote(x)
	case []byte:
		return strconv.Quote(string(x))
	case time.Time:
		if typ == "DATE" {
			return x.Format(time.DateOnly)
		}
		return x.UTC().Format(time.RFC3339Nano)
	case float64:
		return strconv.FormatFloat(x, 'g', 12, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'g', 6, 32)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = value(e, strings.TrimSuffix(typ, "[]"))
		}
		return "[" + strings.Join(parts, ",") + "]"
	case bool, int64, int32, int16, int8, int, uint8, uint16, uint32, uint64:
		return fmt.Sprint(x)
	}
	return fmt.Sprintf("%T:%v", v, v)
}

func canonicalJSON(s string) string {
	d := json.NewDecoder(bytes.NewReader([]byte(s)))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return "invalid JSON " + strconv.Quote(s)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
