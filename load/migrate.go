package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"sort"
	"strconv"

	"github.com/drextract/drextract/clock"
	drsql "github.com/drextract/drextract/sql"
)

type migration struct {
	version int
	name    string
	file    string
}

var migrationName = regexp.MustCompile(`^(\d{4})_([a-z0-9_]+)\.sql$`)

// ErrSchemaTooNew is returned (wrapped in a *SchemaTooNewError) when the store was
// written by a newer drextract.
var ErrSchemaTooNew = errors.New("store schema is newer than this drextract")

// SchemaTooNewError names the store's schema version and the newest one this binary knows.
type SchemaTooNewError struct {
	Store, Known int
}

func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("store schema version %04d is newer than this drextract knows (%04d): upgrade drextract; this binary will not open the store",
		e.Store, e.Known)
}

func (e *SchemaTooNewError) Unwrap() error { return ErrSchemaTooNew }

// listMigrations reads NNNN_name.sql files from fsys, sorted by version.
func listMigrations(fsys fs.FS) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("reading migrations: %w", err)
	}
	var ms []migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		m := migrationName.FindStringSubmatch(e.Name())
		if m == nil {
			continue // README and the like
		}
		v, _ := strconv.Atoi(m[1])
		if prev, dup := seen[v]; dup {
			return nil, fmt.Errorf("migrations %s and %s share version %d", prev, e.Name(), v)
		}
		seen[v] = e.Name()
		ms = append(ms, migration{version: v, name: m[2], file: e.Name()})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// migrate applies every migration of fsys the store lacks, in version order, each in its
// own transaction with its schema_migrations row. It refuses a store whose newest applied
// version is beyond the newest in fsys. It returns the store's version afterwards.
func migrate(ctx context.Context, db *sql.DB, fsys fs.FS, clk clock.Clock, log *slog.Logger) (int, error) {
	ms, err := listMigrations(fsys)
	if err != nil {
		return 0, err
	}
	known := 0
	if len(ms) > 0 {
		known = ms[len(ms)-1].version
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       VARCHAR NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL)`); err != nil {
		return 0, fmt.Errorf("creating schema_migrations: %w", err)
	}
	applied := map[int]bool{}
	rows, err := db.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return 0, fmt.Errorf("reading schema_migrations: %w", err)
	}
	current := 0
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return 0, fmt.Errorf("reading schema_migrations: %w", err)
		}
		applied[v] = true
		current = max(current, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("reading schema_migrations: %w", err)
	}
	if current > known {
		return current, &SchemaTooNewError{Store: current, Known: known}
	}
	appliedAny := false
	for _, m := range ms {
		if applied[m.version] {
			continue
		}
		body, err := fs.ReadFile(fsys, m.file)
		if err != nil {
			return current, fmt.Errorf("reading migration %s: %w", m.file, err)
		}
		if err := applyMigration(ctx, db, m, string(body), clk); err != nil {
			return current, err
		}
		current = max(current, m.version)
		log.Info("applied migration", "version", m.version, "name", m.name)
		appliedAny = true
	}
	if appliedAny {
		// Fold the migrations into the file at once: DuckDB 1.5 cannot replay a WAL that
		// holds an ALTER TABLE … ADD COLUMN followed by writes to that table ("Calling
		// DatabaseManager::GetDefaultDatabase with no default database set"), so a kill
		// before the next checkpoint would leave a store that does not open.
		if _, err := db.ExecContext(ctx, "CHECKPOINT"); err != nil {
			return current, fmt.Errorf("checkpointing after migrations: %w", err)
		}
	}
	return current, nil
}

func applyMigration(ctx context.Context, db *sql.DB, m migration, body string, clk clock.Clock) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: %w", m.file, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err := tx.ExecContext(ctx, body); err != nil {
		return fmt.Errorf("migration %s: %w", m.file, err)
	}
	if step := migrationSteps[m.version]; step != nil {
		if err := step(ctx, tx); err != nil {
			return fmt.Errorf("migration %s: %w", m.file, err)
		}
	}
	if _, err := tx.ExecContext(ctx,
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`,
		m.version, m.name, clk.Now()); err != nil {
		return fmt.Errorf("recording migration %s: %w", m.file, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing migration %s: %w", m.file, err)
	}
	return nil
}

// migrationSteps are the parts of migrations that SQL alone cannot say, run after the
// migration's file in its transaction.
var migrationSteps = map[int]func(ctx context.Context, tx *sql.Tx) error{
	21: renameReportRunID,
}

// renameReportRunID renames run_id to report_run_id in every report_* result table: the
// report package creates them at run time, so the migration's file cannot name them.
func renameReportRunID(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `
		SELECT table_name FROM duckdb_columns()
		WHERE database_name = current_database() AND schema_name = 'main'
		  AND table_name LIKE 'report\_%' ESCAPE '\' AND column_name = 'run_id'
		  AND table_name NOT IN ('report_runs', 'report_columns')
		ORDER BY table_name`)
	if err != nil {
		return fmt.Errorf("listing report tables: %w", err)
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return fmt.Errorf("listing report tables: %w", err)
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing report tables: %w", err)
	}
	for _, t := range tables {
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`ALTER TABLE %s RENAME COLUMN run_id TO report_run_id`, QuoteIdent(t))); err != nil {
			return fmt.Errorf("renaming run_id of %s: %w", t, err)
		}
	}
	return nil
}

// schemaVersion returns the newest migration applied to the store (0 for an empty file).
func (s *Store) schemaVersion(ctx context.Context) (int, error) {
	var v sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("reading schema version: %w", err)
	}
	return int(v.Int64), nil
}

// KnownSchemaVersion is the newest store schema version this binary has a migration for.
func KnownSchemaVersion() int {
	sub, err := fs.Sub(drsql.Migrations, "migrations")
	if err != nil {
		return 0
	}
	ms, err := listMigrations(sub)
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}
