package load

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
)

// createStaging creates the connection's temporary staging tables, one per entity plus
// the id list of complete listings. They live as long as the write connection.
func createStaging(ctx context.Context, conn *sql.Conn) error {
	for _, e := range entities {
		if _, err := conn.ExecContext(ctx, e.sql.createStaging); err != nil {
			return fmt.Errorf("creating staging table for %s: %w", e.table, err)
		}
	}
	if _, err := conn.ExecContext(ctx, createIDsSQL); err != nil {
		return fmt.Errorf("creating staging id table: %w", err)
	}
	return nil
}

// createIDsSQL creates (or empties, by creating anew) the id list of complete listings.
const createIDsSQL = "CREATE OR REPLACE TEMP TABLE " + idsTable + " (entity VARCHAR, parent BIGINT, id BIGINT, _obs TIMESTAMPTZ)"

// statusChangesSQL records each staged job whose stored status differs from the staged
// one (as classified). A job seen for the first time is not a transition and is not
// recorded: jobs.first_seen holds when it was first seen.
const statusChangesSQL = `INSERT INTO job_status_changes (job_id, stream_id, old_status, new_status, seen_at, run_id)
	SELECT id, stream_id, _old_status, status, _obs, $1 FROM stg_jobs
	WHERE _existed AND _old_status IS DISTINCT FROM status`

// checkpointSQL upserts n checkpoints in one statement.
func checkpointSQL(n int) string {
	var rows []string
	for i := range n {
		p := 5 * i
		rows = append(rows, fmt.Sprintf("($%d, $%d, CAST($%d AS JSON), $%d, $%d)", p+1, p+2, p+3, p+4, p+5))
	}
	return `INSERT INTO checkpoints (kind, parent_id, state, run_id, updated_at) VALUES ` +
		strings.Join(rows, ", ") + ` ON CONFLICT (kind, parent_id) DO UPDATE SET
		state = excluded.state, run_id = excluded.run_id, updated_at = excluded.updated_at`
}

// Write applies one batch and its checkpoint in one transaction (see Sink); it is
// WriteBatches of one batch.
func (s *Store) Write(ctx context.Context, runID int64, b Batch) error {
	return s.WriteBatches(ctx, runID, []Batch{b})
}

// WriteBatches applies batches in order, with their checkpoints, in one transaction (see
// Sink). Concurrent calls are serialised. Rows are staged with the Appender and merged
// with a few set-based statements per entity for all the batches at once, never one per
// row or per batch: they are compared with the stored rows, job status changes and SCD2
// versions are recorded, new rows are inserted, changed ones replaced (first_seen kept),
// unchanged ones only get last_seen and run_id moved on, and, for a Complete batch, the
// parent's rows the listing no longer has are marked deleted. Repeated rows in a batch
// count once (the last wins). A row whose Raw is not valid JSON fails the whole call, as
// does a batch whose rows do not match its Entity or a job of another stream than the
// batch's ParentID.
func (s *Store) WriteBatches(ctx context.Context, runID int64, bs []Batch) error {
	if s.readOnly {
		return errReadOnly
	}
	if len(bs) == 0 {
		return nil
	}
	what := func() string {
		if len(bs) == 1 {
			return fmt.Sprintf("writing %s batch of parent %d", bs[0].Entity, bs[0].ParentID)
		}
		return fmt.Sprintf("writing %d batches", len(bs))
	}
	now := s.clock.Now()
	for i := range bs {
		if err := checkBatch(&bs[i]); err != nil {
			return fmt.Errorf("%s: %w", what(), err)
		}
	}
	units := splitUnits(bs, now)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wconn == nil {
		return fmt.Errorf("%s: store is closed", what())
	}
	// A temporary table is never checkpointed, so the rows a DELETE removes stay in it:
	// over a million-job crawl they filled the memory_limit and spilled gigabytes to
	// <store>.tmp/. Creating the staging tables anew drops them; outside the transaction,
	// since DDL inside it made every write about half as fast.
	if err := s.resetStaging(ctx, units); err != nil {
		return fmt.Errorf("%s: %w", what(), err)
	}
	err := s.inTx(ctx, func() error {
		for i, u := range units {
			if i > 0 {
				if err := s.clearStaging(ctx, units[i-1]); err != nil {
					return err
				}
			}
			if err := s.stageUnit(u); err != nil {
				return err
			}
			for _, e := range u.order {
				if err := s.merge(ctx, e, u.byEntity[e], runID); err != nil {
					return err
				}
			}
		}
		if err := s.storeCheckpoints(ctx, bs, runID); err != nil {
			return err
		}
		if s.beforeCommit != nil {
			return s.beforeCommit(ctx)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what(), err)
	}
	return nil
}

// checkBatch refuses a batch of an unknown entity, with rows of another entity, or with a
// job of another stream than its parent.
func checkBatch(b *Batch) error {
	e, ok := entities[b.Entity]
	if !ok {
		return fmt.Errorf("unknown entity %q", b.Entity)
	}
	if n := filled(b); n > 1 || (n == 1 && e.rows(b) == 0) {
		return fmt.Errorf("%s batch of parent %d carries rows of another entity", b.Entity, b.ParentID)
	}
	for _, j := range b.Jobs {
		if j.StreamID != 0 && j.StreamID != b.ParentID {
			return fmt.Errorf("jobs batch of stream %d: job %d belongs to stream %d", b.ParentID, j.ID, j.StreamID)
		}
	}
	return nil
}

// unit is batches merged by one set of statements: per entity, no two of its batches
// share a parent or a row key, so merging them at once is the same as merging them one
// after the other.
type unit struct {
	order    []*entity // entities in the order they first appear
	byEntity map[*entity][]*stagedBatch
	complete bool // some batch is Complete
}

// stagedBatch is a batch with its observation time settled.
type stagedBatch struct {
	*Batch
	obs time.Time
}

// splitUnits cuts bs into consecutive units. A batch whose parent or keys its entity
// already has in the current unit starts a new one: a page read twice, or a listing
// followed by a row it lacked, must behave as if written one after the other. A crawl's
// group of pages has one batch per stream and so stays one unit.
func splitUnits(bs []Batch, now time.Time) []*unit {
	var units []*unit
	var cur *unit
	var parents map[*entity]map[int64]bool
	var keys map[*entity]map[rowKey]bool
	for i := range bs {
		b := &bs[i]
		e := entities[b.Entity]
		obs := b.ObservedAt
		if obs.IsZero() {
			obs = now
		}
		sb := &stagedBatch{Batch: b, obs: obs.UTC()}
		n := e.rows(b)
		acts := n > 0 || b.Complete
		conflict := false
		if cur != nil && acts {
			conflict = parents[e][b.ParentID]
			if !conflict && !e.parentScoped {
				for j := 0; j < n && !conflict; j++ {
					conflict = keys[e][e.key(b, j)]
				}
			}
		}
		if cur == nil || conflict {
			cur = &unit{byEntity: map[*entity][]*stagedBatch{}}
			units = append(units, cur)
			parents = map[*entity]map[int64]bool{}
			keys = map[*entity]map[rowKey]bool{}
		}
		if !acts {
			continue // a checkpoint alone: stored after the units
		}
		if _, ok := cur.byEntity[e]; !ok {
			cur.order = append(cur.order, e)
			parents[e] = map[int64]bool{}
			keys[e] = map[rowKey]bool{}
		}
		cur.byEntity[e] = append(cur.byEntity[e], sb)
		cur.complete = cur.complete || b.Complete
		parents[e][b.ParentID] = true
		if !e.parentScoped {
			for j := range n {
				keys[e][e.key(b, j)] = true
			}
		}
	}
	return units
}

// resetStaging creates anew, empty, the staging tables the units fill.
func (s *Store) resetStaging(ctx context.Context, units []*unit) error {
	done := map[string]bool{}
	for _, u := range units {
		stmts := make([]string, 0, len(u.order)+1)
		for _, e := range u.order {
			stmts = append(stmts, e.sql.createStaging)
		}
		if u.complete {
			stmts = append(stmts, createIDsSQL)
		}
		for _, q := range stmts {
			if done[q] {
				continue
			}
			done[q] = true
			if _, err := s.wconn.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("resetting staging: %w", err)
			}
		}
	}
	return nil
}

// clearStaging creates anew, inside the transaction, the staging tables the previous
// unit filled. Not a DELETE: DuckDB 1.5 then plans with the deleted rows' statistics
// ("Perfect hash aggregate: aggregate group 10 exceeded total groups 4"). A group of
// more than one unit is rare (a crawl's group has one page per stream).
func (s *Store) clearStaging(ctx context.Context, u *unit) error {
	stmts := make([]string, 0, len(u.order)+1)
	for _, e := range u.order {
		stmts = append(stmts, e.sql.createStaging)
	}
	if u.complete {
		stmts = append(stmts, createIDsSQL)
	}
	for _, q := range stmts {
		if _, err := s.wconn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("clearing staging: %w", err)
		}
	}
	return nil
}

// stageUnit fills the staging tables, which are empty, with the unit's rows and, for
// complete listings, stg_ids with a marker per listing and every id an int-keyed
// listing holds. It runs inside the write transaction (the Appender joins it), which
// saves a commit per batch.
func (s *Store) stageUnit(u *unit) error {
	return s.wconn.Raw(func(dc any) error {
		conn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		for _, e := range u.order {
			if err := appendTo(conn, e.sql.stagingTable, func(a *duckdb.Appender) error {
				return appendRows(a, e, u.byEntity[e])
			}); err != nil {
				return err
			}
		}
		if !u.complete {
			return nil
		}
		return appendTo(conn, idsTable, func(a *duckdb.Appender) error {
			for _, e := range u.order {
				for _, b := range u.byEntity[e] {
					if err := appendIDs(a, e, b); err != nil {
						return err
					}
				}
			}
			return nil
		})
	})
}

// appendTo runs fill on an Appender for the temporary table and closes it, which flushes.
func appendTo(conn driver.Conn, table string, fill func(*duckdb.Appender) error) error {
	a, err := duckdb.NewAppender(conn, "temp", "main", table)
	if err != nil {
		return fmt.Errorf("appender for %s: %w", table, err)
	}
	err = fill(a)
	if cerr := a.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("flushing %s: %w", table, cerr)
	}
	return err
}

// appendRows appends the rows of e's batches to its staging table, keeping only the last
// row of each key within a batch (a repeated page must not make one statement update a
// row twice), each with its batch's observation time and parent.
func appendRows(a *duckdb.Appender, e *entity, bs []*stagedBatch) error {
	var vals []driver.Value
	for _, b := range bs {
		n := e.rows(b.Batch)
		var last map[rowKey]int // the last index of each key, when some key repeats
		seen := make(map[rowKey]int, n)
		for i := range n {
			k := e.key(b.Batch, i)
			if _, dup := seen[k]; dup {
				last = seen
			}
			seen[k] = i
		}
		for i := range n {
			if last != nil && last[e.key(b.Batch, i)] != i {
				continue
			}
			vals = e.values(b.Batch, i, vals[:0])
			var validFrom driver.Value = b.obs
			if e.validFrom != nil {
				if t := e.validFrom(b.Batch, i); !t.IsZero() {
					validFrom = t.UTC()
				}
			}
			vals = append(vals, b.obs, b.ParentID, validFrom, false, true, nil, nil)
			if err := a.AppendRow(vals...); err != nil {
				return fmt.Errorf("staging %s row %d of parent %d: %w", e.table, i, b.ParentID, err)
			}
		}
	}
	return nil
}

// appendIDs appends a Complete batch's marker row and, for an int-keyed entity, the ids
// of its rows and of AllIDs, each once.
func appendIDs(a *duckdb.Appender, e *entity, b *stagedBatch) error {
	if !b.Complete {
		return nil
	}
	if err := a.AppendRow(e.table, b.ParentID, nil, b.obs); err != nil {
		return fmt.Errorf("staging the listing of %s of parent %d: %w", e.table, b.ParentID, err)
	}
	if !e.intID {
		return nil
	}
	n := e.rows(b.Batch)
	seen := make(map[int64]struct{}, n+len(b.AllIDs))
	add := func(id int64) error {
		if _, dup := seen[id]; dup {
			return nil
		}
		seen[id] = struct{}{}
		if err := a.AppendRow(e.table, b.ParentID, id, b.obs); err != nil {
			return fmt.Errorf("staging id %d of %s of parent %d: %w", id, e.table, b.ParentID, err)
		}
		return nil
	}
	for i := range n {
		if err := add(e.key(b.Batch, i).id); err != nil {
			return err
		}
	}
	for _, id := range b.AllIDs {
		if err := add(id); err != nil {
			return err
		}
	}
	return nil
}

// merge runs the set-based statements of one entity's staged batches inside the write
// transaction. Only new and changed rows are written; an unchanged row just has
// last_seen and run_id moved on, so re-reading a page costs little.
func (s *Store) merge(ctx context.Context, e *entity, bs []*stagedBatch, runID int64) error {
	exec := func(what, query string) (int64, error) {
		st, err := s.stmt(ctx, query)
		if err != nil {
			return 0, fmt.Errorf("%s of %s: preparing %s: %w", e.table, parentsOf(bs), what, err)
		}
		var res sql.Result
		if strings.Contains(query, "$1") {
			res, err = st.ExecContext(ctx, runID)
		} else {
			res, err = st.ExecContext(ctx)
		}
		if err != nil {
			return 0, fmt.Errorf("%s of %s: %s: %w", e.table, parentsOf(bs), what, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("%s of %s: %s: %w", e.table, parentsOf(bs), what, err)
		}
		return n, nil
	}
	rows, complete := 0, false
	for _, b := range bs {
		rows += e.rows(b.Batch)
		complete = complete || b.Complete
	}
	if rows > 0 {
		existing, err := exec("comparing with stored rows", e.sql.classify)
		if err != nil {
			return err
		}
		added, changed, unchanged := int64(rows), int64(0), int64(0)
		if existing > 0 { // otherwise every staged row is new, and counting is a wasted query
			st, err := s.stmt(ctx, e.sql.counts)
			if err != nil {
				return fmt.Errorf("%s of %s: preparing row counts: %w", e.table, parentsOf(bs), err)
			}
			if err := st.QueryRowContext(ctx).Scan(&added, &changed, &unchanged); err != nil {
				return fmt.Errorf("%s of %s: counting changed rows: %w", e.table, parentsOf(bs), err)
			}
		}
		var steps []struct{ what, query string }
		add := func(what, query string) { steps = append(steps, struct{ what, query string }{what, query}) }
		if e.history && added+changed > 0 {
			add("dating new history versions", e.sql.validFrom)
			add("closing changed history versions", e.sql.historyClose)
			add("opening history versions", e.sql.historyInsert)
		}
		if e.table == Jobs && changed > 0 {
			add("recording job status changes", statusChangesSQL)
		}
		if changed > 0 {
			add("removing changed rows", e.sql.deleteChanged)
		}
		if added+changed > 0 {
			add("inserting rows", e.sql.insert)
		}
		if unchanged > 0 {
			add("touching unchanged rows", e.sql.touchUnchanged)
		}
		for _, st := range steps {
			if _, err := exec(st.what, st.query); err != nil {
				return err
			}
		}
	}
	if complete {
		if e.history {
			if _, err := exec("closing history of deleted rows", e.sql.historyDelete); err != nil {
				return err
			}
		}
		if _, err := exec("marking missing rows deleted", e.sql.deleteMissing); err != nil {
			return err
		}
	}
	return nil
}

// parentsOf names the parents of batches for an error message.
func parentsOf(bs []*stagedBatch) string {
	if len(bs) == 1 {
		return fmt.Sprintf("parent %d", bs[0].ParentID)
	}
	ids := make([]string, 0, len(bs))
	for _, b := range bs {
		ids = append(ids, strconv.FormatInt(b.ParentID, 10))
	}
	return "parents " + strings.Join(ids, ", ")
}

// storeCheckpoints stores the batches' checkpoints in one statement; of two for the same
// kind and parent the later wins.
func (s *Store) storeCheckpoints(ctx context.Context, bs []Batch, runID int64) error {
	type cpKey struct {
		kind   string
		parent int64
	}
	idx := map[cpKey]int{}
	var args []any
	for i := range bs {
		cp := bs[i].Checkpoint
		if cp == nil {
			continue
		}
		at := cp.UpdatedAt
		if at.IsZero() {
			at = bs[i].ObservedAt
		}
		if at.IsZero() {
			at = s.clock.Now()
		}
		var state any
		if len(cp.State) > 0 {
			state = string(cp.State)
		}
		row := []any{cp.Kind, cp.ParentID, state, runID, at.UTC()}
		k := cpKey{cp.Kind, cp.ParentID}
		if j, ok := idx[k]; ok {
			copy(args[5*j:], row)
			continue
		}
		idx[k] = len(idx)
		args = append(args, row...)
	}
	if len(idx) == 0 {
		return nil
	}
	st, err := s.stmt(ctx, checkpointSQL(len(idx)))
	if err != nil {
		return fmt.Errorf("preparing checkpoints: %w", err)
	}
	if _, err := st.ExecContext(ctx, args...); err != nil {
		return fmt.Errorf("storing checkpoints: %w", err)
	}
	return nil
}

// inTx runs fn in a transaction on the write connection. Callers hold s.mu. The rollback
// runs even when ctx is already cancelled, so the connection is left clean.
func (s *Store) inTx(ctx context.Context, fn func() error) (err error) {
	if _, err := s.wconn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	defer func() {
		if err != nil {
			if _, rerr := s.wconn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
				err = errors.Join(err, fmt.Errorf("rolling back: %w", rerr))
			}
		}
	}()
	if err := fn(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := s.wconn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("committing: %w", err)
	}
	return nil
}

// StartRun records a run as running and returns its id.
func (s *Store) StartRun(ctx context.Context, r RunStart) (int64, error) {
	if s.readOnly {
		return 0, errReadOnly
	}
	started := r.Started
	if started.IsZero() {
		started = s.clock.Now()
	}
	var id int64
	err := s.db.QueryRowContext(ctx,
		`INSERT INTO runs (schedule, kind, started, status) VALUES ($1, $2, $3, $4) RETURNING id`,
		r.Schedule, r.Kind, started.UTC(), RunRunning).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("recording start of %s run: %w", r.Kind, err)
	}
	return id, nil
}

// FinishRun records how a run ended. Rows and Incomplete are stored as JSON.
func (s *Store) FinishRun(ctx context.Context, runID int64, r RunEnd) error {
	if s.readOnly {
		return errReadOnly
	}
	finished := r.Finished
	if finished.IsZero() {
		finished = s.clock.Now()
	}
	rows, err := json.Marshal(r.Rows)
	if err != nil {
		return fmt.Errorf("finishing run %d: %w", runID, err)
	}
	incomplete := r.Incomplete
	if incomplete == nil {
		incomplete = []string{}
	}
	inc, err := json.Marshal(incomplete)
	if err != nil {
		return fmt.Errorf("finishing run %d: %w", runID, err)
	}
	var errText any
	if r.Error != "" {
		errText = r.Error
	}
	res, err := s.db.ExecContext(ctx,
		`UPDATE runs SET finished = $2, status = $3, calls = $4, rows = $5::JSON,
		   incomplete = $6::JSON, error = $7 WHERE id = $1`,
		runID, finished.UTC(), r.Status, r.Calls, string(rows), string(inc), errText)
	if err != nil {
		return fmt.Errorf("finishing run %d: %w", runID, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("finishing run %d: no such run", runID)
	}
	s.checkpoint(ctx)
	return nil
}

// checkpoint folds the WAL into the file, so a store between runs is one compact file
// that opens without replaying anything. Failing is harmless (DuckDB refuses while another
// connection has a transaction open) and only logged.
func (s *Store) checkpoint(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wconn == nil {
		return
	}
	if _, err := s.wconn.ExecContext(ctx, "CHECKPOINT"); err != nil {
		s.log.Warn("checkpointing the store after a run", "err", err)
	}
}

// Checkpoints returns the stored checkpoints of one kind keyed by parent id; an empty map
// when there are none.
func (s *Store) Checkpoints(ctx context.Context, kind string) (map[int64]Checkpoint, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT parent_id, CAST(state AS VARCHAR), coalesce(run_id, 0), updated_at
		 FROM checkpoints WHERE kind = $1`, kind)
	if err != nil {
		return nil, fmt.Errorf("reading %s checkpoints: %w", kind, err)
	}
	defer rows.Close()
	out := map[int64]Checkpoint{}
	for rows.Next() {
		cp := Checkpoint{Kind: kind}
		var state sql.NullString
		if err := rows.Scan(&cp.ParentID, &state, &cp.RunID, &cp.UpdatedAt); err != nil {
			return nil, fmt.Errorf("reading %s checkpoints: %w", kind, err)
		}
		if state.Valid {
			cp.State = json.RawMessage(state.String)
		}
		out[cp.ParentID] = cp
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading %s checkpoints: %w", kind, err)
	}
	return out, nil
}

// JobIndex returns the stored jobs of one stream that are not marked deleted, ordered by
// id ascending; an empty slice when there are none.
func (s *Store) JobIndex(ctx context.Context, streamID int64) ([]JobKey, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT id, coalesce(status, '') FROM jobs WHERE stream_id = $1 AND NOT is_deleted ORDER BY id`, streamID)
	if err != nil {
		return nil, fmt.Errorf("reading job index of stream %d: %w", streamID, err)
	}
	defer rows.Close()
	out := []JobKey{}
	for rows.Next() {
		var k JobKey
		if err := rows.Scan(&k.ID, &k.Status); err != nil {
			return nil, fmt.Errorf("reading job index of stream %d: %w", streamID, err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading job index of stream %d: %w", streamID, err)
	}
	return out, nil
}

// RecordCalls stores API call audit rows at once, as a fold of the journal does (ids
// numbered on, a call whose AttemptID is already stored skipped; one without an
// AttemptID gets a fresh one). A fingerprint that does not look like one ("tok_" + 8 hex
// digits) is stored as "tok_invalid": whatever it is, it might be a token.
func (s *Store) RecordCalls(ctx context.Context, runID int64, calls []APICall) error {
	if s.readOnly {
		return errReadOnly
	}
	if len(calls) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("recording %d API calls: %w", len(calls), err)
	}
	recs := make([]journalRecord, 0, len(calls))
	for _, c := range calls {
		if c.AttemptID == "" {
			c.AttemptID = rand.Text()
		}
		recs = append(recs, newRecord(runID, c))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wconn == nil {
		return errors.New("recording API calls: store is closed")
	}
	if _, err := s.storeCalls(ctx, recs); err != nil {
		return fmt.Errorf("recording %d API calls: %w", len(calls), err)
	}
	return nil
}

func remaining(v int) driver.Value {
	if v < 0 {
		return nil
	}
	return int32(v)
}

// FailRunning marks every run still "running" as failed with cause. A run is "running"
// only while its process works on it, and the data directory's lock makes every such run
// the caller's: call it when a run ended without recording its end (a panic).
func (s *Store) FailRunning(ctx context.Context, cause string) (int, error) {
	if s.readOnly {
		return 0, errReadOnly
	}
	res, err := s.db.ExecContext(ctx,
		`UPDATE runs SET status = 'failed', finished = coalesce(finished, $1), error = $2 WHERE status = 'running'`,
		s.clock.Now().UTC(), cause)
	if err != nil {
		return 0, fmt.Errorf("closing runs left running: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
