package action

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/ratelimit"
)

// clockSkew is how far Datorama's clock may be behind ours when a job's start time is
// compared with the moment we sent a request. The SQL of the follow-up and the pending
// cap takes it as a parameter (microseconds, to_microseconds) so this is its one source.
const clockSkew = 5 * time.Minute

// evidenceStreams is how many streams of an interrupted batch call are read before
// concluding it did not reach the API: a batch call reaches all its streams or none.
const evidenceStreams = 3

// storedCall is a call as the audit tables hold it.
type storedCall struct {
	RunID       int64
	No          int
	Op          Op
	WorkspaceID int64
	StreamIDs   []int64
	Start, End  datorama.Date
	Body        json.RawMessage
	SendingAt   time.Time
	Items       []storedItem
}

type storedItem struct {
	ID         int64
	StreamID   int64
	JobID      int64
	Start, End datorama.Date
	KnownMax   int64
}

// Reconcile settles what earlier runs left open, before anything new is sent. A call
// left 'sending' (the process died, or the answer was lost, between the request and
// its record) is looked up at the API (see lookAt): for job-creating calls, the jobs of
// its streams are read and a job created after the send for the same days means it was
// sent; for stream and mapping changes, the current record is read and compared; a
// deleted stream answers 404; a created entity is found by name in its workspace's
// listing. It is never resent blindly. Runs that died are then closed as interrupted, their unsent calls
// skipped. Reconcile returns what it settled; an error means some call is still open,
// and the caller must not send anything.
func (e *Engine) Reconcile(ctx context.Context) ([]string, error) {
	calls, err := e.loadCalls(ctx, `status = 'sending'`)
	if err != nil {
		return nil, err
	}
	var notes []string
	for _, c := range calls {
		if e.Client == nil {
			return notes, fmt.Errorf("call %d of action run %d is in an unknown state and there is no API client to check it", c.No, c.RunID)
		}
		note, _, err := e.settle(ctx, c)
		if err != nil {
			return notes, fmt.Errorf("call %d of action run %d may have been sent; checking at the API failed: %w", c.No, c.RunID, err)
		}
		notes = append(notes, note)
	}
	closed, err := e.closeDeadRuns(ctx)
	if err != nil {
		return notes, err
	}
	notes = append(notes, closed...)
	return notes, nil
}

// reconcileOne settles one call of the current run whose answer was lost.
func (e *Engine) reconcileOne(ctx context.Context, runID int64, no int) (bool, []int64, error) {
	calls, err := e.loadCalls(ctx, fmt.Sprintf(`action_run_id = %d AND call_no = %d AND status = 'sending'`, runID, no))
	if err != nil || len(calls) == 0 {
		return false, nil, err
	}
	_, ids, err := e.settle(ctx, calls[0])
	if err != nil {
		return false, nil, err
	}
	var st string
	if err := e.DB.QueryRowContext(ctx, `SELECT status FROM action_calls WHERE action_run_id = $1 AND call_no = $2`, runID, no).Scan(&st); err != nil {
		return false, nil, err
	}
	return st == StatusSent, ids, nil
}

// settle finds out whether c took effect, records it, and stores what it changed.
func (e *Engine) settle(ctx context.Context, c storedCall) (string, []int64, error) {
	ctx = ratelimit.WithPriority(ctx, ratelimit.Interactive)
	ctx = datorama.WithWorkspace(ctx, c.WorkspaceID)
	v, err := e.lookAt(ctx, c)
	if err != nil {
		return "", nil, err
	}
	var all []int64
	for _, sid := range c.StreamIDs {
		all = append(all, v.share[sid]...)
	}
	var note string
	switch {
	case !v.sent:
		note = fmt.Sprintf("reconciled: not sent (%s: no trace of it)", v.how)
	case c.Op.CreatesJobs():
		note = fmt.Sprintf("reconciled: sent (%s; found jobs %v)", v.how, all)
	case c.Op.Creates():
		note = fmt.Sprintf("reconciled: sent (%s: found it, id %d)", v.how, v.answer.CreatedID)
	default:
		note = fmt.Sprintf("reconciled: sent (%s: the change is there)", v.how)
	}
	e.log().InfoContext(ctx, "settled an interrupted action call", "run", c.RunID, "call", c.No, "result", note)
	err = (&audit{db: e.DB, now: e.clock().Now}).inTx(ctx, func(tx *sql.Tx) error {
		status, errText := StatusSent, any(nil)
		var sentAt any = e.clock().Now().UTC()
		if !v.sent {
			status, errText, sentAt = StatusFailed, note, nil
		}
		if _, err := tx.ExecContext(ctx, `
			UPDATE action_calls SET status = $3, reconciled = $4, job_ids = $5, sent_at = $6, error = $7
			WHERE action_run_id = $1 AND call_no = $2`, c.RunID, c.No, status, note, all, sentAt, errText); err != nil {
			return err
		}
		for _, it := range c.Items {
			if ids := v.share[it.StreamID]; len(ids) > 0 {
				if _, err := tx.ExecContext(ctx, `
					UPDATE action_items SET job_ids = list_concat(coalesce(job_ids, []::BIGINT[]), $2::BIGINT[]) WHERE id = $1`,
					it.ID, ids); err != nil {
					return err
				}
			}
			if v.sent && v.answer.CreatedID != 0 {
				if _, err := tx.ExecContext(ctx, `UPDATE action_items SET created_id = $2 WHERE id = $1`, it.ID, v.answer.CreatedID); err != nil {
					return err
				}
			}
		}
		ids := make([]int64, len(c.Items))
		for i, it := range c.Items {
			ids[i] = it.ID
		}
		return settleItems(ctx, tx, c.RunID, ids, false)
	})
	if err != nil {
		return "", nil, err
	}
	if v.sent {
		e.storeAfter(ctx, c.Op, c.WorkspaceID, c.StreamIDs, v.answer)
	}
	return note, all, nil
}

// verdict is what the API shows of a call whose answer was lost.
type verdict struct {
	sent  bool
	how   string            // what was read to tell
	share map[int64][]int64 // job-creating calls: stream → the jobs that show it was sent
	// answer stands in for the lost answer: the records just read, for the write-back.
	answer *Answer
}

// lookAt reads, at the API, whether c took effect. Each operation leaves its own trace:
// jobs created after the send for the same days; the change in the stream's or the
// mapping's record; a deleted stream answering 404; a created entity in its workspace's
// listing, by name. A download leaves none and counts as not sent (reading twice is
// harmless). An error means the API could not tell, and c stays in doubt.
func (e *Engine) lookAt(ctx context.Context, c storedCall) (verdict, error) {
	v := verdict{share: map[int64][]int64{}, answer: &Answer{Sent: true}}
	switch {
	case c.Op.CreatesJobs():
		checked := 0
		for _, sid := range c.StreamIDs {
			if checked == evidenceStreams && len(v.share) == 0 {
				break
			}
			jobs, err := e.listJobs(ctx, sid)
			if err != nil {
				return v, err
			}
			checked++
			var items []storedItem
			for _, it := range c.Items {
				if it.StreamID == sid {
					items = append(items, it)
				}
			}
			if ids := evidence(c, sid, items, jobs); len(ids) > 0 {
				v.share[sid] = ids
				for _, j := range jobs {
					if slices.Contains(ids, j.ID) {
						j.DataStreamID = datorama.FlexInt64(sid)
						v.answer.Jobs = append(v.answer.Jobs, j)
					}
				}
			}
		}
		v.sent, v.how = len(v.share) > 0, fmt.Sprintf("read the jobs of %d stream(s)", checked)
	case c.Op == OpMapping:
		m, err := e.Client.Mappings.Get(ctx, c.StreamIDs[0])
		if err != nil {
			return v, err
		}
		v.answer.Mapping, v.how = m, "read the mapping"
		v.sent, err = applied(m.Raw, c.Body)
		return v, err
	case c.Op == OpDownload:
		v.how = "a download leaves no trace; the file was not kept"
	case c.Op == OpDelete:
		_, err := e.Client.Streams.Get(ctx, c.StreamIDs[0])
		switch {
		case datorama.IsNotFound(err):
			v.sent = true
		case err != nil:
			return v, err
		}
		v.how = "read the stream"
	case c.Op.Creates():
		return e.lookForCreated(ctx, c)
	default:
		st, err := e.Client.Streams.Get(ctx, c.StreamIDs[0])
		if err != nil {
			return v, err
		}
		v.answer.Stream, v.how = st, "read the stream"
		v.sent, err = applied(st.Raw, c.Body)
		return v, err
	}
	return v, nil
}

// lookForCreated looks for what a creation would have created in its workspace's
// listing: an entity with the body's name, created no earlier than the send (allowing
// for clock skew; an entity without a createTime counts). Planning refused a name the
// workspace already had, so a match is the creation; of several, the newest is taken.
func (e *Engine) lookForCreated(ctx context.Context, c storedCall) (verdict, error) {
	v := verdict{share: map[int64][]int64{}, answer: &Answer{Sent: true}, how: "listed the workspace's " + c.Op.entity() + "s"}
	name := bodyName(c.Body)
	since := c.SendingAt.Add(-clockSkew)
	match := func(n string, created datorama.Timestamp, id int64) bool {
		return n == name && (created.IsZero() || !created.Before(since)) && id > v.answer.CreatedID
	}
	switch c.Op {
	case OpCreateStream:
		list, err := e.Client.Streams.List(ctx, c.WorkspaceID)
		if err != nil {
			return v, err
		}
		for i := range list {
			if s := &list[i]; match(s.Name, s.CreateTime, s.ID) {
				v.answer.Stream, v.answer.CreatedID = s, s.ID
			}
		}
	case OpCreatePattern:
		list, err := e.Client.Metadata.Patterns(ctx, c.WorkspaceID)
		if err != nil {
			return v, err
		}
		for i := range list {
			if p := &list[i]; match(p.Name, p.CreateTime, p.ID) {
				v.answer.Pattern, v.answer.CreatedID = p, p.ID
			}
		}
	case OpCreateCalc:
		list, err := e.Client.Metadata.CalculatedMeasurements(ctx, c.WorkspaceID)
		if err != nil {
			return v, err
		}
		for i := range list {
			if m := &list[i]; match(m.Name, m.CreateTime, m.ID) {
				v.answer.Calc, v.answer.CreatedID = m, m.ID
			}
		}
	}
	v.sent = v.answer.CreatedID != 0
	return v, nil
}

// evidence returns the ids of the jobs that show c reached the API for one stream.
// Job ids grow over time, so a job newer than the newest the store knew when planning
// appeared later; days must match, because scheduled runs create jobs too. When the API
// reruns a job under its old id, the job itself shows it: unfinished again (it was
// finished when planned), or started after the send.
func evidence(c storedCall, streamID int64, items []storedItem, jobs []datorama.Job) []int64 {
	knownMax := int64(0)
	for _, it := range items {
		knownMax = max(knownMax, it.KnownMax)
	}
	startedAfter := func(j *datorama.Job) bool {
		return !j.StartExecutionTime.IsZero() && !j.StartExecutionTime.Before(c.SendingAt.Add(-clockSkew))
	}
	sendDay := datorama.DateOf(c.SendingAt.UTC())
	var out []int64
	for i := range jobs {
		j := &jobs[i]
		if sid := int64(j.DataStreamID); sid != 0 && sid != streamID {
			continue
		}
		newer := j.ID > knownMax // with nothing stored every job counts: a false "sent" is the safe mistake
		ok := false
		switch c.Op {
		case OpRerun:
			for _, it := range items {
				sameDays := !it.Start.IsZero() && j.DataStartDate.Equal(it.Start.Time) && j.DataEndDate.Equal(it.End.Time)
				if j.ID == it.JobID && (!datorama.IsFinal(j.Status) || startedAfter(j)) {
					ok = true
				} else if j.ID != it.JobID && sameDays && (newer || startedAfter(j)) {
					ok = true
				}
			}
		case OpRerunAll:
			past := !j.DataStartDate.IsZero() && j.DataStartDate.Before(sendDay.Time)
			ok = past && (newer || startedAfter(j) || (j.ID <= knownMax && !datorama.IsFinal(j.Status)))
		case OpProcess:
			ok = (newer || startedAfter(j)) && j.DataStartDate.Equal(c.Start.Time) && !j.DataEndDate.After(c.End.Time)
		}
		if ok {
			out = append(out, j.ID)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// applied reports whether every field of patch already has its value in doc (a merge
// would change nothing).
func applied(doc json.RawMessage, patch json.RawMessage) (bool, error) {
	merged, err := MergePatch(doc, patch)
	if err != nil {
		return false, err
	}
	var a, b any
	if err := json.Unmarshal(merged, &a); err != nil {
		return false, err
	}
	if len(doc) == 0 {
		doc = json.RawMessage("{}")
	}
	if err := json.Unmarshal(doc, &b); err != nil {
		return false, err
	}
	return reflect.DeepEqual(a, b), nil
}

// listJobs reads every job of a stream. It reads pages until an empty one rather than
// stopping at a short page, because the API may cap the page size without saying so:
// one extra call (and its confirmations), but no job missed. The reading and its
// defences are the client's (AllToEmptyPage): a fault that empties or repeats a page
// here would make a sent call look unsent, and a later plan send it again. A listing
// that cannot be completed is an error, never a shorter list.
func (e *Engine) listJobs(ctx context.Context, streamID int64) ([]datorama.Job, error) {
	var out []datorama.Job
	for j, err := range e.Client.Jobs.AllToEmptyPage(ctx, streamID, e.pageSize()) {
		if err != nil {
			return nil, err
		}
		out = append(out, *j)
	}
	return out, nil
}

// settleItems recomputes the status of items from their calls: all sent → sent; some
// still open → unchanged; else failed (saying how many calls went out) or skipped.
// With interrupted, calls still 'planned' count as skipped.
func settleItems(ctx context.Context, tx *sql.Tx, runID int64, itemIDs []int64, interrupted bool) error {
	if len(itemIDs) == 0 {
		return nil
	}
	calls := map[int64][2]string{} // call_no → status, error
	var sentAt = map[int64]sql.NullTime{}
	rows, err := tx.QueryContext(ctx, `SELECT call_no, status, coalesce(error, ''), sent_at FROM action_calls WHERE action_run_id = $1`, runID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var no int64
		var st, msg string
		var at sql.NullTime
		if err := rows.Scan(&no, &st, &msg, &at); err != nil {
			rows.Close()
			return err
		}
		calls[no] = [2]string{st, msg}
		sentAt[no] = at
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, id := range itemIDs {
		var nos []any
		var cur string
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(call_nos, []::BIGINT[]), status FROM action_items WHERE id = $1`, id).Scan(&nos, &cur); err != nil {
			return err
		}
		if cur == StatusSkipped {
			continue
		}
		sent, open, total := 0, 0, len(nos)
		var last time.Time
		firstErr, firstStatus := "", ""
		for _, v := range nos {
			no := toInt64(v)
			st := calls[no]
			switch st[0] {
			case StatusSent:
				sent++
				if t := sentAt[no]; t.Valid && t.Time.After(last) {
					last = t.Time
				}
			case StatusSending:
				open++
			case StatusPlanned:
				if interrupted {
					if firstErr == "" {
						firstErr, firstStatus = "not sent: the run was interrupted", StatusSkipped
					}
				} else {
					open++
				}
			default:
				if firstErr == "" {
					firstErr, firstStatus = st[1], st[0]
				}
			}
		}
		var status, reason string
		var at any
		switch {
		case open > 0:
			continue
		case total > 0 && sent == total:
			status, at = StatusSent, last
		case sent > 0:
			status, reason = StatusFailed, fmt.Sprintf("partly sent: %d of %d calls; %s", sent, total, firstErr)
		default:
			status, reason = firstStatus, firstErr
			if status == "" {
				status = StatusFailed
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE action_items SET status = $2, reason = coalesce($3, reason), sent_at = coalesce($4, sent_at) WHERE id = $1`,
			id, status, nullStr(reason), at); err != nil {
			return err
		}
	}
	return nil
}

func toInt64(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case int32:
		return int64(x)
	case int:
		return int64(x)
	case int16:
		return int64(x)
	case float64:
		return int64(x)
	}
	return 0
}

// closeDeadRuns closes runs still marked running: the lock guarantees no run of this
// store is alive while Reconcile runs, so they died. Their unsent calls are skipped.
func (e *Engine) closeDeadRuns(ctx context.Context) ([]string, error) {
	rows, err := e.DB.QueryContext(ctx, `SELECT id FROM action_runs WHERE status = 'running' ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("reading action runs: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	a := &audit{db: e.DB, now: e.clock().Now}
	var notes []string
	for _, id := range ids {
		err := a.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `UPDATE action_calls SET status = 'skipped', error = 'not sent: the run was interrupted' WHERE action_run_id = $1 AND status = 'planned'`, id); err != nil {
				return err
			}
			var items []int64
			r, err := tx.QueryContext(ctx, `SELECT id FROM action_items WHERE action_run_id = $1 AND status IN ('planned', 'sending')`, id)
			if err != nil {
				return err
			}
			for r.Next() {
				var iid int64
				if err := r.Scan(&iid); err != nil {
					r.Close()
					return err
				}
				items = append(items, iid)
			}
			r.Close()
			return settleItems(ctx, tx, id, items, true)
		})
		if err != nil {
			return notes, fmt.Errorf("closing interrupted action run %d: %w", id, err)
		}
		if err := a.finishRun(ctx, id, RunInterrupted, "the process ended before the run finished; settled by a later run"); err != nil {
			return notes, err
		}
		notes = append(notes, fmt.Sprintf("action run %d had been interrupted; closed it", id))
	}
	return notes, nil
}

// loadCalls reads calls matching where (a fixed SQL condition) with their items.
func (e *Engine) loadCalls(ctx context.Context, where string) ([]storedCall, error) {
	rows, err := e.DB.QueryContext(ctx, `
		SELECT action_run_id, call_no, operation, coalesce(workspace_id, 0), coalesce(stream_ids, []::BIGINT[]), start_date, end_date,
		       coalesce(CAST(request AS VARCHAR), ''), coalesce(sending_at, TIMESTAMPTZ '1970-01-01 00:00:00+00')
		FROM action_calls WHERE `+where+` ORDER BY action_run_id, call_no`)
	if err != nil {
		return nil, fmt.Errorf("reading open action calls: %w", err)
	}
	var out []storedCall
	for rows.Next() {
		var c storedCall
		var op, body string
		var streams []any
		var start, end sql.NullTime
		if err := rows.Scan(&c.RunID, &c.No, &op, &c.WorkspaceID, &streams, &start, &end, &body, &c.SendingAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading open action calls: %w", err)
		}
		c.Op = Op(op)
		for _, v := range streams {
			c.StreamIDs = append(c.StreamIDs, toInt64(v))
		}
		if start.Valid {
			c.Start = datorama.DateOf(start.Time)
		}
		if end.Valid {
			c.End = datorama.DateOf(end.Time)
		}
		if body != "" {
			c.Body = json.RawMessage(body)
		}
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		c := &out[i]
		r, err := e.DB.QueryContext(ctx, `
			SELECT id, coalesce(stream_id, 0), coalesce(job_id, 0), start_date, end_date, coalesce(known_max_job_id, 0)
			FROM action_items WHERE action_run_id = $1 AND list_contains(call_nos, $2) ORDER BY id`, c.RunID, c.No)
		if err != nil {
			return nil, fmt.Errorf("reading the items of action call %d: %w", c.No, err)
		}
		for r.Next() {
			var it storedItem
			var start, end sql.NullTime
			if err := r.Scan(&it.ID, &it.StreamID, &it.JobID, &start, &end, &it.KnownMax); err != nil {
				r.Close()
				return nil, err
			}
			if start.Valid {
				it.Start = datorama.DateOf(start.Time)
			}
			if end.Valid {
				it.End = datorama.DateOf(end.Time)
			}
			c.Items = append(c.Items, it)
		}
		r.Close()
		if err := r.Err(); err != nil {
			return nil, err
		}
		if len(c.StreamIDs) == 0 && !c.Op.Creates() {
			return nil, fmt.Errorf("action call %d of run %d names no stream", c.No, c.RunID)
		}
	}
	return out, nil
}
