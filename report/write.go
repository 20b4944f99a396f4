package report

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/drextract/drextract/load"
	"strings"
	"time"

	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
)

// landing is one definition's answer on its way into its table.
type landing struct {
	def     *config.Report
	span    Span
	runID   int64
	result  *datorama.QueryResult
	batched bool
}

// written is what land did.
type written struct {
	rows, replaced int64
	added, widened []string
}

// startRun records a run as running and returns its id.
func startRun(ctx context.Context, db *sql.DB, def *config.Report, span Span, now time.Time) (int64, error) {
	var id int64
	err := db.QueryRowContext(ctx,
		`INSERT INTO report_runs (report, table_name, workspace, date_from, date_to, mode, started, status)
		 VALUES ($1, $2, $3, CAST($4 AS DATE), CAST($5 AS DATE), $6, $7, 'running') RETURNING report_run_id`,
		def.Name, def.Table, def.Workspace, span.From.String(), span.To.String(), mode(def), now).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("recording the run: %w", err)
	}
	return id, nil
}

// failRun marks a run failed. It uses its own context so a cancelled run is still
// recorded as such.
func failRun(db *sql.DB, runID int64, now time.Time, cause error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := db.ExecContext(ctx,
		`UPDATE report_runs SET status = 'failed', finished = $2, error = $3 WHERE report_run_id = $1`,
		runID, now, cause.Error())
	return err
}

func mode(def *config.Report) string {
	if def.Mode == "" {
		return config.ModeReplace
	}
	return def.Mode
}

// land writes one answer into its table in one transaction: schema changes, the
// replaced range, the rows and the run's ok status commit together or not at all.
func land(ctx context.Context, db *sql.DB, l landing, now time.Time) (w written, err error) {
	table := l.def.Table
	if !strings.HasPrefix(table, "report_") || config.ReservedReportTables[table] {
		return w, fmt.Errorf("table %q: a report table must start with report_ and not be report_runs or report_columns", table)
	}
	res := l.result
	types := inferTypes(len(res.Headers), res.Rows)
	for i, row := range res.Rows {
		if len(row) != len(res.Headers) {
			return w, fmt.Errorf("answer row %d has %d values for %d headers", i, len(row), len(res.Headers))
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return w, fmt.Errorf("writing %s: %w", table, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	stored, err := storedColumns(ctx, tx, table)
	if err != nil {
		return w, err
	}
	ch, err := reconcile(table, stored, res.Headers, types)
	if err != nil {
		return w, err
	}
	if err := applySchema(ctx, tx, table, ch, l.runID, &w); err != nil {
		return w, err
	}
	if mode(l.def) == config.ModeReplace {
		if w.replaced, err = replaceRange(ctx, tx, table, l.def, ch, l.span); err != nil {
			return w, err
		}
	}
	if w.rows, err = insertRows(ctx, tx, table, ch, l, now); err != nil {
		return w, err
	}
	headers, _ := json.Marshal(res.Headers)
	if _, err := tx.ExecContext(ctx,
		`UPDATE report_runs SET status = 'ok', finished = $2, row_count = $3, replaced = $4, columns = $5, batched = $6
		 WHERE report_run_id = $1`, l.runID, now, w.rows, w.replaced, string(headers), l.batched); err != nil {
		return w, fmt.Errorf("recording the run: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return w, fmt.Errorf("committing %s: %w", table, err)
	}
	return w, nil
}

func storedColumns(ctx context.Context, tx *sql.Tx, table string) ([]column, error) {
	rows, err := tx.QueryContext(ctx,
		`SELECT header, column_name, type, position FROM report_columns WHERE table_name = $1 ORDER BY position`, table)
	if err != nil {
		return nil, fmt.Errorf("reading the schema of %s: %w", table, err)
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.Header, &c.Name, &c.Type, &c.Position); err != nil {
			return nil, fmt.Errorf("reading the schema of %s: %w", table, err)
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// applySchema creates the table when new, adds and retypes columns, and stores the
// schema. Columns are only ever added or retyped, never dropped.
func applySchema(ctx context.Context, tx *sql.Tx, table string, ch schemaChange, runID int64, w *written) error {
	q := load.QuoteIdent(table)
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+q+` (
		report_run_id BIGINT NOT NULL, date_from DATE NOT NULL, date_to DATE NOT NULL, loaded_at TIMESTAMPTZ NOT NULL)`); err != nil {
		return fmt.Errorf("creating %s: %w", table, err)
	}
	for _, i := range ch.added {
		c := ch.cols[i]
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`ALTER TABLE %s ADD COLUMN %s %s`, q, load.QuoteIdent(c.Name), sqlType(c.Type))); err != nil {
			return fmt.Errorf("adding column %s to %s: %w", c.Name, table, err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO report_columns (table_name, header, column_name, type, position, added_run) VALUES ($1, $2, $3, $4, $5, $6)`,
			table, c.Header, c.Name, c.Type, c.Position, runID); err != nil {
			return fmt.Errorf("storing the schema of %s: %w", table, err)
		}
		w.added = append(w.added, c.Name)
	}
	for _, i := range ch.retyped {
		c := ch.cols[i]
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`ALTER TABLE %s ALTER COLUMN %s SET DATA TYPE %s`, q, load.QuoteIdent(c.Name), sqlType(c.Type))); err != nil {
			return fmt.Errorf("changing column %s of %s to %s: %w", c.Name, table, c.Type, err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE report_columns SET type = $3 WHERE table_name = $1 AND header = $2`,
			table, c.Header, c.Type); err != nil {
			return fmt.Errorf("storing the schema of %s: %w", table, err)
		}
	}
	w.widened = ch.widened
	return nil
}

// dateColumn is the column of the definition's Date (or Day) dimension when it is typed
// DATE, or "".
func dateColumn(def *config.Report, ch schemaChange) string {
	for _, d := range def.Dimensions {
		if !strings.EqualFold(d, "Date") && !strings.EqualFold(d, "Day") {
			continue
		}
		for _, c := range ch.cols {
			if c.Header == d && c.Type == typeDate {
				return c.Name
			}
		}
	}
	return ""
}

// replaceRange deletes what this run replaces: with a Date dimension, every row dated
// inside the span (whatever run wrote it); without one, the rows of earlier runs over
// exactly the same span, since a total over another span is a different figure.
func replaceRange(ctx context.Context, tx *sql.Tx, table string, def *config.Report, ch schemaChange, span Span) (int64, error) {
	var res sql.Result
	var err error
	if col := dateColumn(def, ch); col != "" {
		res, err = tx.ExecContext(ctx, fmt.Sprintf(`DELETE FROM %s WHERE %s BETWEEN CAST($1 AS DATE) AND CAST($2 AS DATE)`,
			load.QuoteIdent(table), load.QuoteIdent(col)), span.From.String(), span.To.String())
	} else {
		res, err = tx.ExecContext(ctx, fmt.Sprintf(`DELETE FROM %s WHERE date_from = CAST($1 AS DATE) AND date_to = CAST($2 AS DATE)`,
			load.QuoteIdent(table)), span.From.String(), span.To.String())
	}
	if err != nil {
		return 0, fmt.Errorf("replacing %s in %s: %w", span, table, err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// insertBatchValues caps the bound values of one INSERT statement.
const insertBatchValues = 4000

// insertRows inserts the answer's rows in multi-row INSERTs of the transaction.
func insertRows(ctx context.Context, tx *sql.Tx, table string, ch schemaChange, l landing, now time.Time) (int64, error) {
	rows := l.result.Rows
	if len(rows) == 0 {
		return 0, nil
	}
	names := []string{"report_run_id", "date_from", "date_to", "loaded_at"}
	casts := []string{"BIGINT", "DATE", "DATE", "TIMESTAMPTZ"}
	for _, ci := range ch.headers {
		names = append(names, load.QuoteIdent(ch.cols[ci].Name))
		casts = append(casts, sqlType(ch.cols[ci].Type))
	}
	tuple := make([]string, len(casts))
	per := max(1, insertBatchValues/len(casts))
	var stmt *sql.Stmt
	stmtRows := 0
	defer func() {
		if stmt != nil {
			stmt.Close()
		}
	}()
	args := make([]any, 0, per*len(casts))
	for start := 0; start < len(rows); start += per {
		chunk := rows[start:min(len(rows), start+per)]
		if stmt == nil || stmtRows != len(chunk) {
			if stmt != nil {
				stmt.Close()
			}
			var b strings.Builder
			fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", load.QuoteIdent(table), strings.Join(names, ", "))
			n := 1
			for r := range chunk {
				for i, c := range casts {
					tuple[i] = fmt.Sprintf("CAST($%d AS %s)", n, c)
					n++
				}
				if r > 0 {
					b.WriteString(", ")
				}
				b.WriteString("(" + strings.Join(tuple, ", ") + ")")
			}
			var err error
			if stmt, err = tx.PrepareContext(ctx, b.String()); err != nil {
				return 0, fmt.Errorf("inserting into %s: %w", table, err)
			}
			stmtRows = len(chunk)
		}
		args = args[:0]
		for r, row := range chunk {
			args = append(args, l.runID, l.span.From.String(), l.span.To.String(), now)
			for h, ci := range ch.headers {
				v, err := convert(row[h], ch.cols[ci].Type)
				if err != nil {
					return 0, fmt.Errorf("answer row %d, %q: %w", start+r, l.result.Headers[h], err)
				}
				args = append(args, v)
			}
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return 0, fmt.Errorf("inserting into %s: %w", table, err)
		}
	}
	return int64(len(rows)), nil
}

var errNoStore = errors.New("report: no store")
