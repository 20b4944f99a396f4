package action

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/drextract/drextract/load"
)

// LogFilter selects the items Log returns. Zero values select everything.
type LogFilter struct {
	RunID int64
	Since time.Time // runs started at or after
}

// Log returns the action log, one row per item with its run, in run and item order. Its
// columns replace the old client's job_log (reruns and processes: job ids created,
// outcome) and update_log (renames and patches: the change and whether it took) CSVs:
// run_id, run_started, selection, operation, started_by, run_status, item_id, row_no,
// workspace_id, stream_id, job_id, start_date, end_date, name, patch, status, reason,
// job_ids, sending_at, sent_at, outcome, outcome_at, outcome_detail.
func Log(ctx context.Context, db *sql.DB, f LogFilter) (*load.Result, error) {
	var since any
	if !f.Since.IsZero() {
		since = f.Since.UTC()
	}
	var run any
	if f.RunID > 0 {
		run = f.RunID
	}
	res, err := load.Query(ctx, db, `
		SELECT r.id AS run_id, r.started AS run_started, r.selection, i.operation,
		       coalesce(r.started_by, '') AS started_by, r.status AS run_status,
		       i.id AS item_id, i.row_no, i.workspace_id, i.stream_id, i.job_id, i.start_date, i.end_date, i.name,
		       i.patch, i.status, i.reason, coalesce(i.job_ids, []::BIGINT[]) AS job_ids,
		       i.sending_at, i.sent_at, i.outcome, i.outcome_at, i.outcome_detail
		FROM action_items i JOIN action_runs r ON r.id = i.action_run_id
		WHERE ($1::BIGINT IS NULL OR r.id = $1) AND ($2::TIMESTAMPTZ IS NULL OR r.started >= $2)
		ORDER BY r.id, i.id`, run, since)
	if err != nil {
		return nil, fmt.Errorf("reading the action log: %w", err)
	}
	return res, nil
}

// RunSummary is one action run, for `drextract actions runs`.
type RunSummary struct {
	ID                           int64
	Started                      time.Time
	Finished                     *time.Time
	Selection, Operation, By     string
	Status                       string
	Items, Sent, Failed, Skipped int
	Calls                        int
	Error                        string
}

// Runs returns the newest action runs, newest first.
func Runs(ctx context.Context, db *sql.DB, limit int) ([]RunSummary, error) {
	if limit <= 0 {
		limit = 20
	}
	rows, err := db.QueryContext(ctx, `
		SELECT id, started, finished, selection, operation, coalesce(started_by, ''), status, coalesce(rows_total, 0),
		       coalesce(items_sent, 0), coalesce(items_failed, 0), coalesce(items_skipped, 0), coalesce(calls_sent, 0), coalesce(error, '')
		FROM action_runs ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("reading action runs: %w", err)
	}
	defer rows.Close()
	var out []RunSummary
	for rows.Next() {
		var r RunSummary
		var fin sql.NullTime
		if err := rows.Scan(&r.ID, &r.Started, &fin, &r.Selection, &r.Operation, &r.By, &r.Status, &r.Items,
			&r.Sent, &r.Failed, &r.Skipped, &r.Calls, &r.Error); err != nil {
			return nil, fmt.Errorf("reading action runs: %w", err)
		}
		if fin.Valid {
			t := fin.Time
			r.Finished = &t
		}
		out = append(out, r)
	}
	return out, rows.Err()
}
