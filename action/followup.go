package action

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Outcomes (action_items.outcome).
const (
	OutcomeSucceeded = "succeeded"
	OutcomeFailed    = "failed"
	OutcomePending   = "pending"
	OutcomeNotSent   = "not_sent" // skipped, or refused before anything took effect
)

// FollowUpStats counts what a follow-up decided.
type FollowUpStats struct {
	Succeeded, Failed, Pending, NotSent int
}

// FollowUp fills in each action item's outcome from what the store now holds, so that
// `select * from action_items where outcome = 'failed'` answers "did my reruns work?".
// Call it after every crawl (the extract command does); it reads only the store, is
// idempotent, and never changes a decided outcome.
//
//   - reruns, rerun-alls and processes: the jobs the item created (from the answer, or
//     found by stream, days and "newer than what the store knew when planning"). All of
//     them SUCCESS → succeeded; any FAILURE → failed; otherwise pending. A job rerun
//     under its old id counts only once it started after the rerun was sent.
//   - renames, patches, puts, enable/disable, mappings: once a crawl saw the stream (or
//     mapping) after the item was sent, succeeded when the change is there, else failed.
//   - creations: succeeded once the API answered the created id (or reconciliation
//     found the entity in its workspace's listing).
//   - deletes: succeeded once the store shows the stream deleted (the run marks it
//     when the API confirmed); failed when a crawl lists it again after the delete.
//   - downloads: succeeded when the file was written.
//   - items that never went out: not_sent.
func FollowUp(ctx context.Context, db *sql.DB) (FollowUpStats, error) {
	var st FollowUpStats
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return st, fmt.Errorf("action follow-up: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	steps := []func(context.Context, *sql.Tx, *FollowUpStats) error{followJobs, followStreams, followMappings, followLifecycle, followRest}
	for _, step := range steps {
		if err := step(ctx, tx, &st); err != nil {
			return st, fmt.Errorf("action follow-up: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return st, fmt.Errorf("action follow-up: %w", err)
	}
	return st, nil
}

// openItems is the condition for items whose outcome is still to be decided and of
// which something went out.
const openItems = `(i.outcome IS NULL OR i.outcome = 'pending')
	AND (i.status = 'sent' OR (i.status = 'failed' AND EXISTS (
	     SELECT 1 FROM action_calls c WHERE c.action_run_id = i.action_run_id AND list_contains(i.call_nos, c.call_no) AND c.status = 'sent')))`

// jobItem is an open rerun, rerun-all or process item and the stored jobs that may be
// its own.
type jobItem struct {
	id       int64
	op       string
	expected sql.NullInt64
	ids      int // job ids the answer named
	cands    []jobCand
}

type jobCand struct {
	id     int64
	status string
	end    sql.NullTime
}

func followJobs(ctx context.Context, tx *sql.Tx, st *FollowUpStats) error {
	items, order, err := openJobItems(ctx, tx)
	if err != nil || len(items) == 0 {
		return err
	}
	if err := jobCandidates(ctx, tx, items); err != nil {
		return err
	}
	for _, id := range order {
		it := items[id]
		outcome, detail, at, ids := judgeJobs(it)
		count(st, outcome)
		var outAt any
		if outcome != OutcomePending && !at.IsZero() {
			outAt = at
		}
		var setIDs any
		if it.ids == 0 && len(ids) > 0 {
			setIDs = ids
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE action_items SET outcome = $2, outcome_at = $3, outcome_detail = $4, job_ids = coalesce($5::BIGINT[], job_ids)
			WHERE id = $1`, id, outcome, outAt, detail, setIDs); err != nil {
			return err
		}
	}
	return nil
}

// openJobItems reads the job-creating items whose outcome is open, in a stable order.
func openJobItems(ctx context.Context, tx *sql.Tx) (map[int64]*jobItem, []int64, error) {
	items := map[int64]*jobItem{}
	var order []int64
	rows, err := tx.QueryContext(ctx, `
		SELECT i.id, i.operation, i.expected_jobs, len(coalesce(i.job_ids, []::BIGINT[]))
		FROM action_items i
		WHERE i.operation IN ('rerun', 'rerun-all', 'process') AND `+openItems+`
		ORDER BY i.id`)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		it := &jobItem{}
		if err := rows.Scan(&it.id, &it.op, &it.expected, &it.ids); err != nil {
			return nil, nil, err
		}
		items[it.id] = it
		order = append(order, it.id)
	}
	return items, order, rows.Err()
}

// jobCandidates finds, for each open item, the stored jobs that are its own: the ones
// its answer named, or found by stream, days and "newer than what the store knew when
// planning"; a job rerun under its old id counts once it started after the send.
func jobCandidates(ctx context.Context, tx *sql.Tx, items map[int64]*jobItem) error {
	rows, err := tx.QueryContext(ctx, `
		WITH o AS (
		  SELECT i.id, i.operation, i.stream_id, coalesce(i.job_id, 0) AS job_id, i.start_date, i.end_date,
		         coalesce(i.known_max_job_id, 0) AS known_max, i.sending_at,
		         coalesce(i.job_ids, []::BIGINT[]) AS job_ids,
		         coalesce((SELECT flatten(list(coalesce(c.job_ids, []::BIGINT[]))) FROM action_calls c
		                   WHERE c.action_run_id = i.action_run_id AND list_contains(i.call_nos, c.call_no)), []::BIGINT[]) AS call_job_ids
		  FROM action_items i
		  WHERE i.operation IN ('rerun', 'rerun-all', 'process') AND `+openItems+`)
		SELECT o.id, j.id, coalesce(j.status, ''), j.end_execution_time
		FROM o JOIN jobs j ON j.stream_id = o.stream_id AND NOT j.is_deleted
		WHERE CASE
		  WHEN o.operation = 'rerun' THEN
		       (j.id = o.job_id AND coalesce(j.start_execution_time >= o.sending_at - to_microseconds($1::BIGINT), false))
		    OR (j.id <> o.job_id AND j.data_start_date = o.start_date AND j.data_end_date = o.end_date
		        AND (list_contains(o.job_ids, j.id) OR list_contains(o.call_job_ids, j.id) OR j.id > o.known_max))
		  WHEN o.operation = 'process' THEN
		       j.data_start_date BETWEEN o.start_date AND o.end_date AND j.data_end_date <= o.end_date
		       AND (list_contains(o.job_ids, j.id) OR list_contains(o.call_job_ids, j.id) OR j.id > o.known_max)
		  ELSE
		       j.data_start_date < CAST(o.sending_at AS DATE)
		       AND (j.id > o.known_max OR coalesce(j.start_execution_time >= o.sending_at - to_microseconds($1::BIGINT), false))
		  END
		ORDER BY o.id, j.id`, clockSkew.Microseconds())
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var iid int64
		var c jobCand
		if err := rows.Scan(&iid, &c.id, &c.status, &c.end); err != nil {
			return err
		}
		if it := items[iid]; it != nil {
			it.cands = append(it.cands, c)
		}
	}
	return rows.Err()
}

// judgeJobs decides an item's outcome from its jobs: any FAILURE → failed; all of them
// SUCCESS, and at least as many as it must have made → succeeded; otherwise pending. It
// returns when the last of them ended and their ids.
func judgeJobs(it *jobItem) (outcome, detail string, at time.Time, ids []int64) {
	if len(it.cands) == 0 {
		return OutcomePending, "no job of it in the store yet", at, nil
	}
	failed, done := 0, 0
	var parts []string
	for _, c := range it.cands {
		ids = append(ids, c.id)
		parts = append(parts, fmt.Sprintf("%d %s", c.id, c.status))
		switch c.status {
		case "FAILURE":
			failed++
			done++
		case "SUCCESS":
			done++
		}
		if c.end.Valid && c.end.Time.After(at) {
			at = c.end.Time
		}
	}
	// How many jobs must be there before the item can have succeeded: the ones the
	// answer named; for a process, every chunk's jobs; else at least one.
	want := max(1, it.ids)
	if it.op == string(OpProcess) && it.expected.Valid {
		want = max(want, int(it.expected.Int64))
	}
	detail = "jobs: " + strings.Join(parts, ", ")
	switch {
	case failed > 0:
		return OutcomeFailed, detail, at, ids
	case done == len(it.cands) && done >= want:
		return OutcomeSucceeded, detail, at, ids
	}
	return OutcomePending, detail, at, ids
}

func followStreams(ctx context.Context, tx *sql.Tx, st *FollowUpStats) error {
	type row struct {
		id                    int64
		op                    string
		name, patch           sql.NullString
		curName, curRaw       sql.NullString
		enabled, deleted      sql.NullBool
		lastSeen, sentAt, sAt sql.NullTime
	}
	rows, err := tx.QueryContext(ctx, `
		SELECT i.id, i.operation, i.name, CAST(i.patch AS VARCHAR), s.name, CAST(s.raw AS VARCHAR), s.enabled, s.is_deleted,
		       s.last_seen, i.sent_at, i.sending_at
		FROM action_items i JOIN streams s ON s.id = i.stream_id
		WHERE i.operation IN ('rename', 'patch', 'put', 'enable', 'disable') AND `+openItems)
	if err != nil {
		return err
	}
	var todo []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.op, &r.name, &r.patch, &r.curName, &r.curRaw, &r.enabled, &r.deleted, &r.lastSeen, &r.sentAt, &r.sAt); err != nil {
			rows.Close()
			return err
		}
		todo = append(todo, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range todo {
		sent := r.sentAt
		if !sent.Valid {
			sent = r.sAt
		}
		outcome, detail := OutcomePending, "no crawl has seen the stream since"
		if r.lastSeen.Valid && sent.Valid && !r.lastSeen.Time.Before(sent.Time) {
			ok := false
			switch r.op {
			case string(OpRename):
				ok = r.curName.String == r.name.String
				detail = fmt.Sprintf("the stream is named %q", r.curName.String)
			case string(OpEnable), string(OpDisable):
				ok = r.enabled.Valid && r.enabled.Bool == (r.op == string(OpEnable))
				detail = fmt.Sprintf("the stream's enabled is %v", r.enabled.Bool)
			default:
				var err error
				ok, err = applied(json.RawMessage(r.curRaw.String), json.RawMessage(r.patch.String))
				if err != nil {
					ok = false
				}
				detail = "the stream has the patched values"
				if !ok {
					detail = "the stream lacks some patched values: " + differing(r.curRaw.String, r.patch.String)
				}
			}
			switch {
			case r.deleted.Bool:
				outcome, detail = OutcomeFailed, "the stream is deleted"
			case ok:
				outcome = OutcomeSucceeded
			case r.lastSeen.Time.After(sent.Time):
				outcome = OutcomeFailed
			default:
				// Seen at the very instant it was sent: maybe before it. Wait for the next crawl.
				outcome, detail = OutcomePending, "no crawl has seen the stream since"
			}
		}
		count(st, outcome)
		var at any
		if outcome != OutcomePending {
			at = r.lastSeen.Time
		}
		if _, err := tx.ExecContext(ctx, `UPDATE action_items SET outcome = $2, outcome_at = $3, outcome_detail = $4 WHERE id = $1`,
			r.id, outcome, at, detail); err != nil {
			return err
		}
	}
	return nil
}

// differing names the top-level patch fields whose values the record does not have.
func differing(raw, patch string) string {
	var doc, p map[string]any
	_ = json.Unmarshal([]byte(raw), &doc)
	_ = json.Unmarshal([]byte(patch), &p)
	var keys []string
	for k, v := range p {
		b1, _ := json.Marshal(v)
		b2, _ := json.Marshal(doc[k])
		ok, _ := applied(b2, b1)
		if !ok || (v == nil) != (doc[k] == nil) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

func followMappings(ctx context.Context, tx *sql.Tx, st *FollowUpStats) error {
	rows, err := tx.QueryContext(ctx, `
		SELECT i.id, CAST(i.patch AS VARCHAR), CAST(m.raw AS VARCHAR), m.last_seen, coalesce(i.sent_at, i.sending_at)
		FROM action_items i JOIN mappings m ON m.stream_id = i.stream_id
		WHERE i.operation = 'mapping' AND `+openItems)
	if err != nil {
		return err
	}
	type row struct {
		id             int64
		patch, raw     sql.NullString
		seen, sentTime sql.NullTime
	}
	var todo []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.patch, &r.raw, &r.seen, &r.sentTime); err != nil {
			rows.Close()
			return err
		}
		todo = append(todo, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range todo {
		outcome, detail := OutcomePending, "no crawl has seen the mapping since"
		var at any
		if r.seen.Valid && r.sentTime.Valid && !r.seen.Time.Before(r.sentTime.Time) {
			ok, _ := applied(json.RawMessage(r.raw.String), json.RawMessage(r.patch.String))
			switch {
			case ok:
				outcome, detail, at = OutcomeSucceeded, "the mapping has the changes", r.seen.Time
			case r.seen.Time.After(r.sentTime.Time):
				outcome, detail, at = OutcomeFailed, "the mapping lacks some changes", r.seen.Time
			}
		}
		count(st, outcome)
		if _, err := tx.ExecContext(ctx, `UPDATE action_items SET outcome = $2, outcome_at = $3, outcome_detail = $4 WHERE id = $1`,
			r.id, outcome, at, detail); err != nil {
			return err
		}
	}
	return nil
}

// followLifecycle settles creations and deletions.
func followLifecycle(ctx context.Context, tx *sql.Tx, st *FollowUpStats) error {
	rows, err := tx.QueryContext(ctx, `
		SELECT i.id, i.operation, i.created_id, coalesce(i.sent_at, i.sending_at), s.is_deleted, s.deleted_at, s.last_seen
		FROM action_items i LEFT JOIN streams s ON i.operation = 'delete' AND s.id = i.stream_id
		WHERE (i.operation = 'delete' OR i.operation LIKE 'create-%') AND `+openItems)
	if err != nil {
		return err
	}
	type row struct {
		id                int64
		op                string
		created           sql.NullInt64
		sent, delAt, seen sql.NullTime
		deleted           sql.NullBool
	}
	var todo []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.op, &r.created, &r.sent, &r.deleted, &r.delAt, &r.seen); err != nil {
			rows.Close()
			return err
		}
		todo = append(todo, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range todo {
		outcome, detail := OutcomePending, ""
		var at any
		switch {
		case r.op != string(OpDelete) && r.created.Valid:
			outcome, detail, at = OutcomeSucceeded, fmt.Sprintf("created id %d", r.created.Int64), r.sent.Time
		case r.op != string(OpDelete):
			detail = "no created id known yet"
		case r.deleted.Bool:
			outcome, detail, at = OutcomeSucceeded, "the stream is deleted in the store", r.delAt.Time
		case r.seen.Valid && r.sent.Valid && r.seen.Time.After(r.sent.Time):
			outcome, detail, at = OutcomeFailed, "a crawl listed the stream after the delete", r.seen.Time
		default:
			detail = "no crawl has seen the stream's workspace since"
		}
		count(st, outcome)
		if _, err := tx.ExecContext(ctx, `UPDATE action_items SET outcome = $2, outcome_at = $3, outcome_detail = $4 WHERE id = $1`,
			r.id, outcome, at, detail); err != nil {
			return err
		}
	}
	return nil
}

// followRest settles downloads (the file was written when the item was sent) and items
// that never went out.
func followRest(ctx context.Context, tx *sql.Tx, st *FollowUpStats) error {
	res, err := tx.ExecContext(ctx, `
		UPDATE action_items SET outcome = 'succeeded', outcome_at = sent_at, outcome_detail = 'file written'
		WHERE operation = 'download' AND status = 'sent' AND outcome IS NULL`)
	if err != nil {
		return err
	}
	n, _ := res.RowsAffected()
	st.Succeeded += int(n)
	res, err = tx.ExecContext(ctx, `
		UPDATE action_items i SET outcome = 'not_sent', outcome_detail = coalesce(i.reason, i.status)
		WHERE i.outcome IS NULL AND (i.status = 'skipped' OR (i.status = 'failed' AND NOT EXISTS (
		      SELECT 1 FROM action_calls c WHERE c.action_run_id = i.action_run_id AND list_contains(i.call_nos, c.call_no) AND c.status = 'sent')))`)
	if err != nil {
		return err
	}
	n, _ = res.RowsAffected()
	st.NotSent += int(n)
	return nil
}

func count(st *FollowUpStats, outcome string) {
	switch outcome {
	case OutcomeSucceeded:
		st.Succeeded++
	case OutcomeFailed:
		st.Failed++
	case OutcomePending:
		st.Pending++
	case OutcomeNotSent:
		st.NotSent++
	}
}
