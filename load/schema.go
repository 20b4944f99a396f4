package load

import (
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strings"

	"github.com/drextract/drextract/catalog"
	"github.com/drextract/drextract/clock"
	drsql "github.com/drextract/drextract/sql"
)

// View is an analyst view: its name and the SELECT that defines it, in SQL that DuckDB
// and PostgreSQL both run (sql/views/NAME.sql).
type View struct {
	Name string
	SQL  string
}

// Views returns the analyst views in name order.
func Views() ([]View, error) {
	entries, err := fs.ReadDir(drsql.Views, "views")
	if err != nil {
		return nil, fmt.Errorf("reading views: %w", err)
	}
	var out []View
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".sql")
		if e.IsDir() || !ok {
			continue
		}
		b, err := fs.ReadFile(drsql.Views, path.Join("views", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("reading view %s: %w", name, err)
		}
		out = append(out, View{Name: name, SQL: strings.TrimSpace(string(b))})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// syncViews (re)creates each view whose source differs from the one it was made from
// (schema_views), and reports whether it changed anything.
func (s *Store) syncViews(ctx context.Context) (bool, error) {
	views, err := Views()
	if err != nil {
		return false, err
	}
	applied := map[string]string{}
	rows, err := s.db.QueryContext(ctx, `SELECT name, source_md5 FROM schema_views`)
	if err != nil {
		return false, fmt.Errorf("reading schema_views: %w", err)
	}
	for rows.Next() {
		var n, h string
		if err := rows.Scan(&n, &h); err != nil {
			rows.Close()
			return false, fmt.Errorf("reading schema_views: %w", err)
		}
		applied[n] = h
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("reading schema_views: %w", err)
	}
	changed := false
	for _, v := range views {
		h := md5Hex(v.SQL)
		if applied[v.Name] == h {
			continue
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return changed, fmt.Errorf("creating view %s: %w", v.Name, err)
		}
		_, err = tx.ExecContext(ctx, fmt.Sprintf("CREATE OR REPLACE VIEW %s AS\n%s", QuoteIdent(v.Name), v.SQL))
		if err == nil {
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_views (name, source_md5, applied_at) VALUES ($1, $2, $3)
				ON CONFLICT (name) DO UPDATE SET source_md5 = excluded.source_md5, applied_at = excluded.applied_at`,
				v.Name, h, s.clock.Now().UTC())
		}
		if err == nil {
			err = tx.Commit()
		}
		if err != nil {
			_ = tx.Rollback()
			return changed, fmt.Errorf("creating view %s: %w", v.Name, err)
		}
		changed = true
		s.log.Info("created view", "view", v.Name)
	}
	return changed, nil
}

// Objects lists the store's tables and views (main schema) with their columns and
// DuckDB types, tables first, each group in name order.
func (s *Store) Objects(ctx context.Context) ([]catalog.Object, error) {
	return objects(ctx, s.db)
}

func objects(ctx context.Context, db queryer) ([]catalog.Object, error) {
	rows, err := db.QueryContext(ctx, `
		SELECT c.table_name, CASE WHEN t.table_name IS NULL THEN 'view' ELSE 'table' END, c.column_name, c.data_type
		FROM duckdb_columns() c
		LEFT JOIN duckdb_tables() t ON t.database_name = c.database_name AND t.schema_name = c.schema_name
		     AND t.table_name = c.table_name
		WHERE c.database_name = current_database() AND c.schema_name = 'main' AND NOT c.internal
		  AND (t.table_name IS NOT NULL OR c.table_name IN (
		       SELECT view_name FROM duckdb_views() WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal))
		ORDER BY 2, 1, c.column_index`)
	if err != nil {
		return nil, fmt.Errorf("listing the store's tables and views: %w", err)
	}
	defer rows.Close()
	var out []catalog.Object
	for rows.Next() {
		var table, kind, col, typ string
		if err := rows.Scan(&table, &kind, &col, &typ); err != nil {
			return nil, fmt.Errorf("listing the store's tables and views: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Name != table {
			out = append(out, catalog.Object{Name: table, Kind: kind})
		}
		o := &out[len(out)-1]
		o.Columns = append(o.Columns, catalog.Column{Name: col, Type: typ})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing the store's tables and views: %w", err)
	}
	return out, nil
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// SyncComments sets the COMMENT of every table, view and column to its description in
// sql/catalog.yaml where it differs, and checkpoints when it changed any (DuckDB's WAL
// replay of catalog changes followed by writes is not to be trusted). Open calls it;
// call it again after tables were created at run time (report tables), before publishing.
// Objects the catalog does not describe keep their comment.
func (s *Store) SyncComments(ctx context.Context) error {
	if s.readOnly {
		return errReadOnly
	}
	changed, err := s.syncComments(ctx)
	if err != nil {
		return err
	}
	if changed {
		s.checkpoint(ctx)
	}
	return nil
}

func (s *Store) syncComments(ctx context.Context) (bool, error) {
	cat, err := catalog.Load()
	if err != nil {
		return false, err
	}
	current := map[string]string{} // "t" or "t.c" → comment
	rows, err := s.db.QueryContext(ctx, `
		SELECT table_name, NULL, coalesce(comment, '') FROM duckdb_tables()
		WHERE database_name = current_database() AND schema_name = 'main' AND NOT temporary
		UNION ALL
		SELECT view_name, NULL, coalesce(comment, '') FROM duckdb_views()
		WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal
		UNION ALL
		SELECT table_name, column_name, coalesce(comment, '') FROM duckdb_columns()
		WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal`)
	if err != nil {
		return false, fmt.Errorf("reading comments: %w", err)
	}
	for rows.Next() {
		var t, comment string
		var c sql.NullString
		if err := rows.Scan(&t, &c, &comment); err != nil {
			rows.Close()
			return false, fmt.Errorf("reading comments: %w", err)
		}
		key := t
		if c.Valid {
			key += "." + c.String
		}
		current[key] = comment
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("reading comments: %w", err)
	}
	objs, err := objects(ctx, s.db)
	if err != nil {
		return false, err
	}
	described, _ := cat.Describe(objs)
	var stmts []string
	for _, d := range described {
		kind := "TABLE"
		if d.Kind == catalog.KindView {
			kind = "VIEW"
		}
		if d.Description != "" && current[d.Name] != d.Description {
			stmts = append(stmts, fmt.Sprintf("COMMENT ON %s %s IS %s", kind, QuoteIdent(d.Name), QuoteString(d.Description)))
		}
		for _, c := range d.Columns {
			if c.Description != "" && current[d.Name+"."+c.Name] != c.Description {
				stmts = append(stmts, fmt.Sprintf("COMMENT ON COLUMN %s.%s IS %s", QuoteIdent(d.Name), QuoteIdent(c.Name), QuoteString(c.Description)))
			}
		}
	}
	if len(stmts) == 0 {
		return false, nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("setting comments: %w", err)
	}
	for _, st := range stmts {
		if _, err := tx.ExecContext(ctx, st); err != nil {
			_ = tx.Rollback()
			return false, fmt.Errorf("setting comments (%.80s): %w", st, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("setting comments: %w", err)
	}
	return true, nil
}

// hasTable tells whether the main schema has a base table called name.
func (s *Store) hasTable(ctx context.Context, name string) bool {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_tables()
		WHERE database_name = current_database() AND schema_name = 'main' AND table_name = $1`, name).Scan(&n)
	return err == nil && n > 0
}

// FreshObjects lists the tables and views of a store as this binary makes it (every
// migration and view applied to an empty in-memory database), for describing the store
// without one at hand.
func FreshObjects(ctx context.Context) ([]catalog.Object, error) {
	db, err := openDB("")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	sub, err := fs.Sub(drsql.Migrations, "migrations")
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, path: ":memory:", clock: clock.Real{}, log: slog.New(slog.DiscardHandler)}
	if _, err := migrate(ctx, db, sub, s.clock, s.log); err != nil {
		return nil, err
	}
	if _, err := s.syncViews(ctx); err != nil {
		return nil, err
	}
	return objects(ctx, db)
}
