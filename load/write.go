package load

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
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
const createIDsSQL = "CREATE OR REPLACE TEMP TABLE " + idsTable + " (id BIGINT)"

// statusChangesSQL records each staged job whose status differs from the stored one (as
// classified); a job seen for the first time is recorded with old_status NULL.
const statusChangesSQL = `INSERT INTO job_status_changes (job_id, stream_id, old_status, new_status, seen_at, run_id)
	SELECT id, stream_id, _old_status, status, $1, $2 FROM stg_jobs
	WHERE NOT _existed OR _old_status IS DISTINCT FROM status`

const checkpointSQL = `INSERT INTO checkpoints (kind, parent_id, state, run_id, updated_at)
	VALUES ($1, $2, $3::JSON, $4, $5)
	ON CONFLICT (kind, parent_id) DO UPDATE SET
		state = excluded.state, run_id = excluded.run_id, updated_at = excluded.updated_at`

// Write applies one batch and its checkpoint in one transaction (see Sink). It is called
// once per page; concurrent calls are serialised. Rows are staged with the Appender and
// merged with a few set-based statements, never one per row: they are compared with the
// stored rows, job status changes and SCD2 versions are recorded, new rows are inserted,
// changed ones replaced (first_seen kept), unchanged ones only get last_seen and run_id
// moved on, and, for a Complete batch, the parent's rows the listing no longer has are
// marked deleted. Repeated rows in a batch count once (the last wins). A row whose Raw is
// not valid JSON fails the whole batch, as does a job of another stream than ParentID.
func (s *Store) Write(ctx context.Context, runID int64, b Batch) error {
	if s.readOnly {
		return errReadOnly
	}
	e, ok := entities[b.Entity]
	if !ok {
		return fmt.Errorf("writing batch: unknown entity %q", b.Entity)
	}
	if n := filled(&b); n > 1 || (n == 1 && e.rows(&b) == 0) {
		return fmt.Errorf("writing %s batch of parent %d: it carries rows of another entity", b.Entity, b.ParentID)
	}
	for _, j := range b.Jobs {
		if j.StreamID != 0 && j.StreamID != b.ParentID {
			return fmt.Errorf("writing jobs batch of stream %d: job %d belongs to stream %d", b.ParentID, j.ID, j.StreamID)
		}
	}
	obs := b.ObservedAt
	if obs.IsZero() {
		obs = s.clock.Now()
	}
	obs = obs.UTC()

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wconn == nil {
		return errors.New("writing batch: store is closed")
	}
	// A temporary table is never checkpointed, so the rows stageRows DELETEs stay in it:
	// over a million-job crawl they filled the memory_limit and spilled gigabytes to
	// <store>.tmp/. Creating the staging tables anew drops them; outside the transaction,
	// since DDL inside it made every write about half as fast.
	if err := s.resetStaging(ctx, e, &b); err != nil {
		return fmt.Errorf("writing %s batch of parent %d: %w", b.Entity, b.ParentID, err)
	}
	err := s.inTx(ctx, func() error {
		if err := s.stageRows(ctx, e, &b); err != nil {
			return err
		}
		return s.merge(ctx, e, &b, runID, obs)
	})
	if err != nil {
		return fmt.Errorf("writing %s batch of parent %d: %w", b.Entity, b.ParentID, err)
	}
	return nil
}

// resetStaging creates the staging tables stageRows fills for b anew, empty.
func (s *Store) resetStaging(ctx context.Context, e *entity, b *Batch) error {
	if _, err := s.wconn.ExecContext(ctx, e.sql.createStaging); err != nil {
		return fmt.Errorf("resetting staging: %w", err)
	}
	if e.intID && b.Complete {
		if _, err := s.wconn.ExecContext(ctx, createIDsSQL); err != nil {
			return fmt.Errorf("resetting staging ids: %w", err)
		}
	}
	return nil
}

// stageRows fills the staging table of e, which resetStaging left empty, with the batch's
// rows and, for a complete listing of an id-keyed entity, fills stg_ids with every id the
// listing holds. It runs inside the write transaction (the Appender joins it), which
// saves a commit per batch.
func (s *Store) stageRows(ctx context.Context, e *entity, b *Batch) error {
	fillIDs := e.intID && b.Complete
	if e.rows(b) == 0 && !(fillIDs && len(b.AllIDs) > 0) {
		return nil
	}
	return s.wconn.Raw(func(dc any) error {
		conn, ok := dc.(driver.Conn)
		if !ok {
			return fmt.Errorf("unexpected driver connection %T", dc)
		}
		ids, err := appendTo(conn, e.sql.stagingTable, func(a *duckdb.Appender) ([]int64, error) {
			return appendRows(a, e, b)
		})
		if err != nil || !fillIDs {
			return err
		}
		_, err = appendTo(conn, idsTable, func(a *duckdb.Appender) ([]int64, error) {
			seen := make(map[int64]struct{}, len(ids)+len(b.AllIDs))
			for _, list := range [][]int64{ids, b.AllIDs} {
				for _, id := range list {
					if _, dup := seen[id]; dup {
						continue
					}
					seen[id] = struct{}{}
					if err := a.AppendRow(id); err != nil {
						return nil, fmt.Errorf("staging id %d: %w", id, err)
					}
				}
			}
			return nil, nil
		})
		return err
	})
}

// appendTo runs fill on an Appender for the temporary table and closes it, which flushes.
func appendTo(conn driver.Conn, table string, fill func(*duckdb.Appender) ([]int64, error)) ([]int64, error) {
	a, err := duckdb.NewAppender(conn, "temp", "main", table)
	if err != nil {
		return nil, fmt.Errorf("appender for %s: %w", table, err)
	}
	ids, err := fill(a)
	if cerr := a.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("flushing %s: %w", table, cerr)
	}
	return ids, err
}

// merge runs the set-based statements of one batch inside the write transaction. Only
// new and changed rows are written; an unchanged row just has last_seen and run_id
// moved on, so re-reading a page costs little.
func (s *Store) merge(ctx context.Context, e *entity, b *Batch, runID int64, obs time.Time) error {
	exec := func(what, query string, args ...any) error {
		st, err := s.stmt(ctx, query)
		if err != nil {
			return fmt.Errorf("preparing %s: %w", what, err)
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	var scope []any // the parent, for statements of parent-scoped entities
	if e.parentScoped {
		scope = []any{b.ParentID}
	}
	if e.rows(b) > 0 {
		st, err := s.stmt(ctx, e.sql.classify)
		if err != nil {
			return fmt.Errorf("preparing comparison with stored rows: %w", err)
		}
		res, err := st.ExecContext(ctx, scope...)
		if err != nil {
			return fmt.Errorf("comparing with stored rows: %w", err)
		}
		existing, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("comparing with stored rows: %w", err)
		}
		added, changed, unchanged := int64(e.rows(b)), int64(0), int64(0)
		if existing > 0 { // otherwise every staged row is new, and counting is a wasted query
			if st, err = s.stmt(ctx, e.sql.counts); err != nil {
				return fmt.Errorf("preparing row counts: %w", err)
			}
			if err := st.QueryRowContext(ctx).Scan(&added, &changed, &unchanged); err != nil {
				return fmt.Errorf("counting changed rows: %w", err)
			}
		}
		if added+changed > 0 {
			if e.table == Jobs {
				if err := exec("recording job status changes", statusChangesSQL, obs, runID); err != nil {
					return err
				}
			}
			if e.history {
				if err := exec("closing changed history versions", e.sql.historyClose, obs, runID); err != nil {
					return err
				}
				if err := exec("opening history versions", e.sql.historyInsert, obs, runID); err != nil {
					return err
				}
			}
		}
		if changed > 0 {
			if err := exec("removing changed rows", e.sql.deleteChanged, scope...); err != nil {
				return err
			}
		}
		if added+changed > 0 {
			if err := exec("inserting rows", e.sql.insert, obs, runID); err != nil {
				return err
			}
		}
		if unchanged > 0 {
			if err := exec("touching unchanged rows", e.sql.touchUnchanged, append([]any{obs, runID}, scope...)...); err != nil {
				return err
			}
		}
	}
	if b.Complete {
		delArgs := []any{obs, runID}
		histArgs := []any{obs, runID}
		if e.parent != "" {
			delArgs = append(delArgs, b.ParentID)
			histArgs = append(histArgs, b.ParentID)
		}
		if e.history {
			if err := exec("closing history of deleted rows", e.sql.historyDelete, histArgs...); err != nil {
				return err
			}
		}
		if err := exec("marking missing rows deleted", e.sql.deleteMissing, delArgs...); err != nil {
			return err
		}
	}
	if cp := b.Checkpoint; cp != nil {
		at := cp.UpdatedAt
		if at.IsZero() {
			at = obs
		}
		var state any
		if len(cp.State) > 0 {
			state = string(cp.State)
		}
		if err := exec("storing checkpoint", checkpointSQL, cp.Kind, cp.ParentID, state, runID, at.UTC()); err != nil {
			return err
		}
	}
	if s.beforeCommit != nil {
		if err := s.beforeCommit(ctx); err != nil {
			return err
		}
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

var fingerprintRE = regexp.MustCompile(`^tok_([0-9a-f]{8}|none)$`)

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
