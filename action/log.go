package action

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// LogFilter selects the items WriteLog exports. Zero values select everything.
type LogFilter struct {
	RunID int64
	Since time.Time // runs started at or after
}

// logColumns are the export's columns, in order: one line per item, with its run. They
// replace the old client's job_log (reruns and processes: job ids created, outcome) and
// update_log (renames and patches: the change and whether it took) CSVs.
var logColumns = []string{
	"run_id", "run_started", "selection", "operation", "started_by", "run_status",
	"item_id", "row_no", "workspace_id", "stream_id", "job_id", "start_date", "end_date", "name", "patch",
	"status", "reason", "job_ids", "sending_at", "sent_at", "outcome", "outcome_at", "outcome_detail",
}

// WriteLog writes the action log as "csv" (with a header line) or "json" (an array of
// objects) and returns how many items it wrote.
func WriteLog(ctx context.Context, db *sql.DB, w io.Writer, format string, f LogFilter) (int, error) {
	if format != "csv" && format != "json" {
		return 0, fmt.Errorf("unknown format %q (csv or json)", format)
	}
	var since any
	if !f.Since.IsZero() {
		since = f.Since.UTC()
	}
	var run any
	if f.RunID > 0 {
		run = f.RunID
	}
	rows, err := db.QueryContext(ctx, `
		SELECT r.id, r.started, r.selection, i.operation, coalesce(r.started_by, ''), r.status,
		       i.id, i.row_no, i.workspace_id, i.stream_id, i.job_id, i.start_date, i.end_date, i.name, CAST(i.patch AS VARCHAR),
		       i.status, i.reason, coalesce(i.job_ids, []::BIGINT[]), i.sending_at, i.sent_at, i.outcome, i.outcome_at, i.outcome_detail
		FROM action_items i JOIN action_runs r ON r.id = i.action_run_id
		WHERE ($1::BIGINT IS NULL OR r.id = $1) AND ($2::TIMESTAMPTZ IS NULL OR r.started >= $2)
		ORDER BY r.id, i.id`, run, since)
	if err != nil {
		return 0, fmt.Errorf("reading the action log: %w", err)
	}
	defer rows.Close()
	var cw *csv.Writer
	if format == "csv" {
		cw = csv.NewWriter(w)
		if err := cw.Write(logColumns); err != nil {
			return 0, err
		}
	} else if _, err := io.WriteString(w, "[\n"); err != nil {
		return 0, err
	}
	n := 0
	for rows.Next() {
		var (
			runID, itemID                          int64
			started                                time.Time
			sel, op, by, runStatus, status         string
			rowNo                                  sql.NullInt64
			ws, stream, job                        sql.NullInt64
			start, end, sendingAt, sentAt, outAt   sql.NullTime
			name, patch, reason, outcome, outcDeta sql.NullString
			jobIDs                                 []any
		)
		if err := rows.Scan(&runID, &started, &sel, &op, &by, &runStatus, &itemID, &rowNo, &ws, &stream, &job, &start, &end,
			&name, &patch, &status, &reason, &jobIDs, &sendingAt, &sentAt, &outcome, &outAt, &outcDeta); err != nil {
			return n, fmt.Errorf("reading the action log: %w", err)
		}
		ids := make([]string, len(jobIDs))
		for i, v := range jobIDs {
			ids[i] = strconv.FormatInt(toInt64(v), 10)
		}
		vals := []string{
			strconv.FormatInt(runID, 10), started.UTC().Format(time.RFC3339), sel, op, by, runStatus,
			strconv.FormatInt(itemID, 10), nInt(rowNo), nInt(ws), nInt(stream), nInt(job), nDate(start), nDate(end),
			name.String, patch.String, status, reason.String, strings.Join(ids, " "), nTime(sendingAt), nTime(sentAt),
			outcome.String, nTime(outAt), outcDeta.String,
		}
		if cw != nil {
			if err := cw.Write(vals); err != nil {
				return n, err
			}
		} else {
			obj := make(map[string]any, len(vals))
			for i, c := range logColumns {
				switch {
				case vals[i] == "":
					obj[c] = nil
				case c == "job_ids":
					list := make([]int64, len(jobIDs))
					for k, v := range jobIDs {
						list[k] = toInt64(v)
					}
					obj[c] = list
				case c == "patch":
					obj[c] = json.RawMessage(vals[i])
				case c == "run_id" || c == "item_id" || c == "row_no" || c == "workspace_id" || c == "stream_id" || c == "job_id":
					v, _ := strconv.ParseInt(vals[i], 10, 64)
					obj[c] = v
				default:
					obj[c] = vals[i]
				}
			}
			if len(jobIDs) == 0 {
				obj["job_ids"] = []int64{}
			}
			b, err := json.Marshal(orderedObject{keys: logColumns, m: obj})
			if err != nil {
				return n, err
			}
			sep := ",\n"
			if n == 0 {
				sep = ""
			}
			if _, err := io.WriteString(w, sep+"  "+string(b)); err != nil {
				return n, err
			}
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("reading the action log: %w", err)
	}
	if cw != nil {
		cw.Flush()
		return n, cw.Error()
	}
	nl := "\n"
	if n == 0 {
		nl = ""
	}
	_, err = io.WriteString(w, nl+"]\n")
	return n, err
}

// orderedObject marshals a map with its keys in a fixed order, so the JSON log reads
// like the CSV.
type orderedObject struct {
	keys []string
	m    map[string]any
}

func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		vb, err := json.Marshal(o.m[k])
		if err != nil {
			return nil, err
		}
		b.Write(kb)
		b.WriteByte(':')
		b.Write(vb)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

func nInt(v sql.NullInt64) string {
	if !v.Valid {
		return ""
	}
	return strconv.FormatInt(v.Int64, 10)
}

func nDate(v sql.NullTime) string {
	if !v.Valid {
		return ""
	}
	return v.Time.Format("2006-01-02")
}

func nTime(v sql.NullTime) string {
	if !v.Valid {
		return ""
	}
	return v.Time.UTC().Format(time.RFC3339)
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

func writeCSV(w io.Writer, res *Table) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(res.Columns); err != nil {
		return err
	}
	for _, row := range res.Rows {
		rec := make([]string, len(row))
		for i, v := range row {
			rec[i], _ = valueText(v)
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func writeJSON(w io.Writer, res *Table) error {
	if _, err := io.WriteString(w, "["); err != nil {
		return err
	}
	for n, row := range res.Rows {
		obj := make(map[string]any, len(row))
		for i, v := range row {
			if t, ok := v.(time.Time); ok {
				s, _ := valueText(t)
				obj[res.Columns[i]] = s
				continue
			}
			obj[res.Columns[i]] = v
		}
		b, err := json.Marshal(orderedObject{keys: res.Columns, m: obj})
		if err != nil {
			return err
		}
		sep := ",\n  "
		if n == 0 {
			sep = "\n  "
		}
		if _, err := io.WriteString(w, sep+string(b)); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, "\n]\n")
	return err
}
