package action

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/drextract/drextract/datorama"
)

// audit writes action_runs, action_calls and action_items. Every write that must survive
// a crash is its own committed transaction: the 'sending' mark is durable before the
// request leaves. It is used by one goroutine.
type audit struct {
	db  *sql.DB
	now func() time.Time
}

// Run statuses (action_runs.status).
const (
	RunRunning        = "running"
	RunOK             = "ok"
	RunPartial        = "partial" // some items failed or were not sent
	RunFailed         = "failed"
	RunQuotaExhausted = "quota_exhausted"
	RunInterrupted    = "interrupted"
	RunDryRun         = "dry_run" // never stored: a dry run writes nothing
)

func nullDate(d datorama.Date) any {
	if d.IsZero() {
		return nil
	}
	return d.Time
}

func nullInt(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullJSON(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// planJSON is the plan as stored in action_runs.plan.
func planJSON(p *Plan) []byte {
	type call struct {
		No           int     `json:"no"`
		Method       string  `json:"method"`
		Path         string  `json:"path"`
		Workspace    int64   `json:"workspace_id"`
		Streams      int     `json:"streams"`
		Jobs         int     `json:"jobs,omitempty"`
		Start        string  `json:"start_date,omitempty"`
		End          string  `json:"end_date,omitempty"`
		ExpectedJobs int     `json:"expected_jobs,omitempty"`
		StreamIDs    []int64 `json:"stream_ids,omitempty"`
	}
	out := struct {
		Op       string         `json:"operation"`
		Rows     int            `json:"rows"`
		Planned  int            `json:"planned"`
		Skipped  map[string]int `json:"skipped"`
		APICalls int            `json:"api_calls"`
		Estimate string         `json:"estimate"`
		Warnings []string       `json:"warnings,omitempty"`
		Calls    []call         `json:"calls"`
	}{Op: string(p.Op), Rows: len(p.Items), Planned: p.Planned(), Skipped: p.Skipped, APICalls: p.APICalls, Estimate: p.Estimate.String(), Warnings: p.Warnings}
	for _, c := range p.Calls {
		m, path := c.Endpoint()
		cc := call{No: c.No, Method: m, Path: path, Workspace: c.WorkspaceID, Streams: len(c.StreamIDs), Jobs: len(c.JobIDs),
			Start: c.Start.String(), End: c.End.String(), ExpectedJobs: c.ExpectedJobs}
		if len(c.StreamIDs) <= 20 {
			cc.StreamIDs = c.StreamIDs
		}
		out.Calls = append(out.Calls, cc)
	}
	b, _ := json.Marshal(out)
	return b
}

// startRun records the run, its calls (planned) and its items (planned or skipped) in
// one transaction, and returns the run id.
func (a *audit) startRun(ctx context.Context, p *Plan) (int64, error) {
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("recording the action run: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	o := p.Options
	params, _ := json.Marshal(struct {
		Params    map[string]string `json:"params,omitempty"`
		MaxCalls  int               `json:"max_calls,omitempty"`
		MaxRows   int               `json:"max_rows,omitempty"`
		ChunkDays int               `json:"chunk_days,omitempty"`
		QueueMax  int               `json:"queue_max,omitempty"`
		Cooldown  string            `json:"cooldown,omitempty"`
		ForcePut  bool              `json:"force_put,omitempty"`
		MaxDelete int               `json:"max_delete,omitempty"`
		Force     bool              `json:"force,omitempty"`
	}{p.Params, o.MaxCalls, o.MaxRows, o.ChunkDays, o.QueueMax, o.Cooldown.String(), o.ForcePut, deleteLimit(p), o.Force})
	var runID int64
	err = tx.QueryRowContext(ctx, `
		INSERT INTO action_runs (selection, source, operation, parameters, started_by, plan, rows_total,
		                         items_planned, items_skipped, items_sent, items_failed, calls_planned, calls_sent, started, status)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, 0, $10, 0, $11, 'running') RETURNING id`,
		p.Source.label(), p.Source.Kind, string(p.Op), string(params), nullStr(p.StartedBy), string(planJSON(p)),
		len(p.Items), p.Planned(), len(p.Items)-p.Planned(), len(p.Calls), a.now().UTC()).Scan(&runID)
	if err != nil {
		return 0, fmt.Errorf("recording the action run: %w", err)
	}
	callStmt, err := tx.PrepareContext(ctx, `
		INSERT INTO action_calls (action_run_id, call_no, operation, workspace_id, method, path, stream_ids, start_date, end_date, request, status)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'planned')`)
	if err != nil {
		return 0, fmt.Errorf("recording the action calls: %w", err)
	}
	defer callStmt.Close()
	for _, c := range p.Calls {
		m, path := c.Endpoint()
		if _, err := callStmt.ExecContext(ctx, runID, c.No, string(c.Op), c.WorkspaceID, m, path, c.StreamIDs,
			nullDate(c.Start), nullDate(c.End), nullJSON(c.RequestBody())); err != nil {
			return 0, fmt.Errorf("recording action call %d: %w", c.No, err)
		}
	}
	itemStmt, err := tx.PrepareContext(ctx, `
		INSERT INTO action_items (action_run_id, row_no, operation, workspace_id, stream_id, job_id, start_date, end_date, name, patch,
		                          request, call_nos, known_max_job_id, expected_jobs, status, reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) RETURNING id`)
	if err != nil {
		return 0, fmt.Errorf("recording the action items: %w", err)
	}
	defer itemStmt.Close()
	for _, it := range p.Items {
		start, end := it.Row.StartDate, it.Row.EndDate
		if it.Op == OpRerun || it.Op == OpDownload {
			start, end = it.JobStart, it.JobEnd
		}
		var expected any
		if it.ExpectedJobs > 0 {
			expected = it.ExpectedJobs
		}
		name := it.Row.Name
		if it.Op.Creates() {
			name = bodyName(it.Row.Body)
		}
		if err := itemStmt.QueryRowContext(ctx, runID, it.Row.Line, string(it.Op), nullInt(it.WorkspaceID), nullInt(it.Row.StreamID),
			nullInt(it.Row.JobID), nullDate(start), nullDate(end), nullStr(name), nullJSON(it.Row.Patch),
			string(rowJSON(it.Row)), it.callNos(), nullInt(it.KnownMaxJobID), expected, it.Status, nullStr(it.Reason)).Scan(&it.id); err != nil {
			return 0, fmt.Errorf("recording action item (row %d): %w", it.Row.Line, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("recording the action run: %w", err)
	}
	return runID, nil
}

// deleteLimit is the delete limit a plan ran under, for its parameters (0: not a delete).
func deleteLimit(p *Plan) int {
	if p.Op != OpDelete {
		return 0
	}
	return p.Options.withDefaults().MaxDelete
}

// rowJSON is the input row as given.
func rowJSON(r Row) []byte {
	if r.Body != nil {
		b, _ := json.Marshal(map[string]any{ColWorkspaceID: r.WorkspaceID, ColJSON: r.Body})
		return b
	}
	m := map[string]any{ColStreamID: r.StreamID}
	if r.JobID != 0 {
		m[ColJobID] = r.JobID
	}
	if !r.StartDate.IsZero() {
		m[ColStartDate] = r.StartDate.String()
		m[ColEndDate] = r.EndDate.String()
	}
	if r.Name != "" {
		m[ColName] = r.Name
	}
	if len(r.Patch) > 0 {
		m[ColPatch] = r.Patch
	}
	b, _ := json.Marshal(m)
	return b
}

// markSending makes the calls and their items 'sending', in one committed transaction,
// before any of the requests leaves.
func (a *audit) markSending(ctx context.Context, runID int64, calls []*Call) error {
	at := a.now().UTC()
	return a.inTx(ctx, func(tx *sql.Tx) error {
		var items []int64
		for _, c := range calls {
			if _, err := tx.ExecContext(ctx, `UPDATE action_calls SET status = 'sending', sending_at = $3 WHERE action_run_id = $1 AND call_no = $2`,
				runID, c.No, at); err != nil {
				return err
			}
			c.status = StatusSending
			for _, it := range c.Items {
				items = append(items, it.id)
				it.Status = StatusSending
			}
		}
		_, err := tx.ExecContext(ctx, `
			UPDATE action_items SET status = 'sending', sending_at = coalesce(sending_at, $2)
			WHERE id IN (SELECT unnest($1::BIGINT[]))`, items, at)
		return err
	})
}

// record stores what a batch came to, in one transaction: sent calls with their answer
// and job ids; calls refused for certain as failed, or skipped when never attempted or
// stopped by the quota; calls whose outcome is unknown stay 'sending'.
func (a *audit) record(ctx context.Context, runID int64, calls []*Call, res []Result) error {
	at := a.now().UTC()
	return a.inTx(ctx, func(tx *sql.Tx) error {
		for i, c := range calls {
			r := res[i]
			var err error
			switch {
			case r.Err == nil:
				ans := r.Answer
				if ans == nil {
					ans = &Answer{Sent: true}
				}
				err = a.sentTx(ctx, tx, runID, c, ans, at)
			case errors.Is(r.Err, ErrNotAttempted), errors.Is(r.Err, datorama.ErrQuotaExhausted):
				err = a.notSentTx(ctx, tx, runID, c, StatusSkipped, "not sent: "+r.Err.Error())
			case OutcomeUnknown(r.Err):
				// stays 'sending' until reconciled
			default:
				err = a.notSentTx(ctx, tx, runID, c, StatusFailed, r.Err.Error())
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// sentTx records an answer: the call 'sent' with the job ids it created, each item's
// share of the jobs, and items whose every call is now sent become 'sent'.
func (a *audit) sentTx(ctx context.Context, tx *sql.Tx, runID int64, c *Call, ans *Answer, at time.Time) error {
	c.status = StatusSent
	jobIDs := make([]int64, 0, len(ans.Jobs))
	for _, j := range ans.Jobs {
		jobIDs = append(jobIDs, j.ID)
	}
	share := attribute(c, ans.Jobs)
	if _, err := tx.ExecContext(ctx, `
		UPDATE action_calls SET status = 'sent', sent_at = $3, response = $4, job_ids = $5, error = NULL
		WHERE action_run_id = $1 AND call_no = $2`, runID, c.No, at, nullJSON(ans.Body), jobIDs); err != nil {
		return err
	}
	for _, it := range c.Items {
		ids := share[it]
		status := StatusSent
		for _, oc := range it.calls {
			if oc.status != StatusSent {
				status = StatusSending
			}
		}
		it.Status = status
		var resp any
		if len(c.Items) == 1 {
			resp = nullJSON(ans.Body)
		} else if len(ids) > 0 {
			b, _ := json.Marshal(map[string]any{"call_no": c.No, "job_ids": ids})
			resp = string(b)
		}
		var sentAt any
		if status == StatusSent {
			sentAt = at
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE action_items SET status = $2, sent_at = $3, job_ids = list_concat(coalesce(job_ids, []::BIGINT[]), $4::BIGINT[]),
			       response = coalesce($5, response), created_id = coalesce($6, created_id)
			WHERE id = $1`, it.id, status, sentAt, ids, resp, nullInt(ans.CreatedID)); err != nil {
			return err
		}
	}
	return nil
}

// markNotSent settles calls that will not be sent, in one transaction.
func (a *audit) markNotSent(ctx context.Context, runID int64, calls []*Call, status, reason string) error {
	return a.inTx(ctx, func(tx *sql.Tx) error {
		for _, c := range calls {
			if err := a.notSentTx(ctx, tx, runID, c, status, reason); err != nil {
				return err
			}
		}
		return nil
	})
}

// notSentTx settles a call that did not (or certainly did not) take effect: failed with
// the error, or skipped with the reason. An item already partly sent by another call
// becomes failed, saying so.
func (a *audit) notSentTx(ctx context.Context, tx *sql.Tx, runID int64, c *Call, status, reason string) error {
	c.status = status
	if _, err := tx.ExecContext(ctx, `UPDATE action_calls SET status = $3, error = $4 WHERE action_run_id = $1 AND call_no = $2`,
		runID, c.No, status, reason); err != nil {
		return err
	}
	for _, it := range c.Items {
		st, why := status, reason
		sent := 0
		for _, oc := range it.calls {
			if oc.status == StatusSent {
				sent++
			}
		}
		if sent > 0 {
			st, why = StatusFailed, fmt.Sprintf("partly sent: %d of %d calls; call %d: %s", sent, len(it.calls), c.No, reason)
		}
		if it.Status == StatusFailed && st == StatusSkipped {
			continue // keep the first failure
		}
		it.Status, it.Reason = st, why
		if _, err := tx.ExecContext(ctx, `UPDATE action_items SET status = $2, reason = $3 WHERE id = $1`, it.id, st, why); err != nil {
			return err
		}
	}
	return nil
}

// finishRun stores the run's end and its counts, computed from the items.
func (a *audit) finishRun(ctx context.Context, runID int64, status, errText string) error {
	// Recorded also when the caller's context ended: that is how the run ends.
	_, err := a.db.ExecContext(context.WithoutCancel(ctx), `
		UPDATE action_runs SET
		  finished = $2, status = $3, error = $4,
		  items_sent    = (SELECT count(*) FROM action_items WHERE action_run_id = $1 AND status = 'sent'),
		  items_failed  = (SELECT count(*) FROM action_items WHERE action_run_id = $1 AND status = 'failed'),
		  items_skipped = (SELECT count(*) FROM action_items WHERE action_run_id = $1 AND status = 'skipped'),
		  calls_sent    = (SELECT count(*) FROM action_calls WHERE action_run_id = $1 AND status = 'sent')
		WHERE id = $1`, runID, a.now().UTC(), status, nullStr(errText))
	if err != nil {
		return fmt.Errorf("recording the end of action run %d: %w", runID, err)
	}
	return nil
}

func (a *audit) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	// The audit must be written even when the caller's context ends: that is exactly
	// when a half-done call has to be remembered.
	ctx = context.WithoutCancel(ctx)
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("action audit: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if err := fn(tx); err != nil {
		return fmt.Errorf("action audit: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("action audit: %w", err)
	}
	return nil
}

// attribute shares a call's created jobs among its items. A job names its stream
// (dataStreamId) or is matched by its days; when nothing tells, a lone item takes them
// all and otherwise the follow-up attributes them from the jobs table.
func attribute(c *Call, jobs []datorama.Job) map[*Item][]int64 {
	out := map[*Item][]int64{}
	if len(jobs) == 0 {
		return out
	}
	if len(c.Items) == 1 {
		for _, j := range jobs {
			out[c.Items[0]] = append(out[c.Items[0]], j.ID)
		}
		return out
	}
	for _, j := range jobs {
		for _, it := range c.Items {
			if sid := int64(j.DataStreamID); sid != 0 && sid != it.Row.StreamID {
				continue
			}
			match := false
			switch c.Op {
			case OpRerun:
				match = j.ID == it.Row.JobID || (!it.JobStart.IsZero() && j.DataStartDate.Equal(it.JobStart.Time) && j.DataEndDate.Equal(it.JobEnd.Time))
			case OpProcess:
				match = int64(j.DataStreamID) == it.Row.StreamID
			}
			if match {
				out[it] = append(out[it], j.ID)
				break
			}
		}
	}
	return out
}
