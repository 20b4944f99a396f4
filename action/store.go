package action

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/drextract/drextract/datorama"
)

// What the planner needs to know of the store. The queries name the store's columns
// (sql/migrations/0001_*.sql) and nothing of how the crawler filled them.

type streamInfo struct {
	ID          int64
	WorkspaceID int64
	Name        string
	Enabled     bool
	Deleted     bool
	DataSource  string
	MaxJobID    int64 // newest stored job id; 0 when none
	Ranges      int   // distinct date ranges of its stored jobs: what a rerun-all reruns
}

func (s *streamInfo) totalConnect() bool { return s.DataSource == "TotalConnect" }

type jobInfo struct {
	ID       int64
	StreamID int64
	Status   string
	Start    datorama.Date
	End      datorama.Date
	Deleted  bool
}

// lookupStreams returns what the store knows of the given streams; ids it does not know
// are absent from the map.
func lookupStreams(ctx context.Context, db *sql.DB, ids []int64) (map[int64]*streamInfo, error) {
	out := make(map[int64]*streamInfo, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := db.QueryContext(ctx, `
		WITH wanted AS (SELECT DISTINCT unnest($1::BIGINT[]) AS id),
		     j AS (SELECT stream_id, max(id) AS max_id,
		                  count(DISTINCT (data_start_date, data_end_date)) FILTER (WHERE NOT is_deleted) AS n
		           FROM jobs WHERE stream_id IN (SELECT id FROM wanted) GROUP BY stream_id)
		SELECT s.id, s.workspace_id, coalesce(s.name, ''), coalesce(s.enabled, false),
		       coalesce(s.is_deleted, false), coalesce(s.data_source_name, ''),
		       coalesce(j.max_id, 0), coalesce(j.n, 0)
		FROM streams s JOIN wanted w ON w.id = s.id LEFT JOIN j ON j.stream_id = s.id`, ids)
	if err != nil {
		return nil, fmt.Errorf("looking up %d streams in the store: %w", len(ids), err)
	}
	defer rows.Close()
	for rows.Next() {
		var s streamInfo
		if err := rows.Scan(&s.ID, &s.WorkspaceID, &s.Name, &s.Enabled, &s.Deleted, &s.DataSource, &s.MaxJobID, &s.Ranges); err != nil {
			return nil, fmt.Errorf("looking up streams: %w", err)
		}
		out[s.ID] = &s
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, ownChanges(ctx, db, ids, out)
}

// ownChanges applies to streams what our own actions changed since a crawl last saw
// them: right after `disable`, the store still shows the stream enabled, and an
// `enable` planned from it would be skipped as unchanged.
func ownChanges(ctx context.Context, db *sql.DB, ids []int64, streams map[int64]*streamInfo) error {
	rows, err := db.QueryContext(ctx, `
		SELECT i.stream_id, i.operation, coalesce(i.name, '')
		FROM action_items i JOIN streams s ON s.id = i.stream_id
		WHERE i.status = 'sent' AND i.operation IN ('enable', 'disable', 'rename')
		  AND i.sent_at >= s.last_seen AND i.stream_id IN (SELECT unnest($1::BIGINT[]))
		ORDER BY i.sent_at, i.id`, ids)
	if err != nil {
		return fmt.Errorf("reading our recent changes of streams: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var op, name string
		if err := rows.Scan(&id, &op, &name); err != nil {
			return fmt.Errorf("reading our recent changes of streams: %w", err)
		}
		s := streams[id]
		if s == nil {
			continue
		}
		switch Op(op) {
		case OpEnable:
			s.Enabled = true
		case OpDisable:
			s.Enabled = false
		case OpRename:
			s.Name = name
		}
	}
	return rows.Err()
}

// lookupJobs returns what the store knows of the given jobs.
func lookupJobs(ctx context.Context, db *sql.DB, ids []int64) (map[int64]*jobInfo, error) {
	out := make(map[int64]*jobInfo, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := db.QueryContext(ctx, `
		SELECT j.id, j.stream_id, coalesce(j.status, ''), j.data_start_date, j.data_end_date, coalesce(j.is_deleted, false)
		FROM jobs j WHERE j.id IN (SELECT unnest($1::BIGINT[]))`, ids)
	if err != nil {
		return nil, fmt.Errorf("looking up %d jobs in the store: %w", len(ids), err)
	}
	defer rows.Close()
	for rows.Next() {
		var j jobInfo
		var start, end sql.NullTime
		if err := rows.Scan(&j.ID, &j.StreamID, &j.Status, &start, &end, &j.Deleted); err != nil {
			return nil, fmt.Errorf("looking up jobs: %w", err)
		}
		if start.Valid {
			j.Start = datorama.DateOf(start.Time)
		}
		if end.Valid {
			j.End = datorama.DateOf(end.Time)
		}
		out[j.ID] = &j
	}
	return out, rows.Err()
}

// recentSend is an earlier item of the same kind sent within the cooldown.
type recentSend struct {
	RunID    int64
	StreamID int64
	JobID    int64
	Start    datorama.Date
	End      datorama.Date
	At       time.Time
}

// recentSends returns the items of op that were sent (or may have been: 'sending') at
// or after since, for the cooldown.
func recentSends(ctx context.Context, db *sql.DB, op Op, since time.Time) ([]recentSend, error) {
	rows, err := db.QueryContext(ctx, `
		SELECT action_run_id, coalesce(stream_id, 0), coalesce(job_id, 0), start_date, end_date,
		       coalesce(sent_at, sending_at)
		FROM action_items
		WHERE operation = $1 AND status IN ('sent', 'sending')
		  AND coalesce(sent_at, sending_at) >= $2`, string(op), since)
	if err != nil {
		return nil, fmt.Errorf("reading recent %s actions: %w", op, err)
	}
	defer rows.Close()
	var out []recentSend
	for rows.Next() {
		var r recentSend
		var start, end sql.NullTime
		if err := rows.Scan(&r.RunID, &r.StreamID, &r.JobID, &start, &end, &r.At); err != nil {
			return nil, fmt.Errorf("reading recent actions: %w", err)
		}
		if start.Valid {
			r.Start = datorama.DateOf(start.Time)
		}
		if end.Valid {
			r.End = datorama.DateOf(end.Time)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// unreconciledCalls counts calls left 'sending' by an earlier run.
func unreconciledCalls(ctx context.Context, db *sql.DB) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM action_calls WHERE status = 'sending'`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("counting unreconciled action calls: %w", err)
	}
	return n, nil
}

// lookupWorkspaces reports which of the given workspaces the store holds, not deleted.
func lookupWorkspaces(ctx context.Context, db *sql.DB, ids []int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := db.QueryContext(ctx, `SELECT id FROM workspaces WHERE NOT is_deleted AND id IN (SELECT unnest($1::BIGINT[]))`, ids)
	if err != nil {
		return nil, fmt.Errorf("looking up %d workspaces in the store: %w", len(ids), err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("looking up workspaces: %w", err)
		}
		out[id] = true
	}
	return out, rows.Err()
}

// nameKey is an entity's name within its workspace.
type nameKey struct {
	ws   int64
	name string
}

// entityTables are the store's tables of what each creation creates.
var entityTables = map[Op]string{OpCreateStream: "streams", OpCreatePattern: "patterns", OpCreateCalc: "calculated_measurements"}

// lookupNames returns the ids of the live entities op creates in the given workspaces,
// by name.
func lookupNames(ctx context.Context, db *sql.DB, op Op, wss []int64) (map[nameKey]int64, error) {
	out := map[nameKey]int64{}
	table := entityTables[op]
	if table == "" || len(wss) == 0 {
		return out, nil
	}
	rows, err := db.QueryContext(ctx, `SELECT workspace_id, coalesce(name, ''), id FROM `+table+`
		WHERE NOT is_deleted AND workspace_id IN (SELECT unnest($1::BIGINT[]))`, wss)
	if err != nil {
		return nil, fmt.Errorf("looking up the %s of %d workspaces in the store: %w", table, len(wss), err)
	}
	defer rows.Close()
	for rows.Next() {
		var k nameKey
		var id int64
		if err := rows.Scan(&k.ws, &k.name, &id); err != nil {
			return nil, fmt.Errorf("looking up %s: %w", table, err)
		}
		out[k] = id
	}
	return out, rows.Err()
}

// lastRun is when the store last saw a stream run.
type lastRun struct {
	At      time.Time // the latest of its jobs' execution times and its lastUpdate
	Running bool      // one of its jobs is not final
}

// lastRuns returns, for the given streams, when the store last saw each of them run.
func lastRuns(ctx context.Context, db *sql.DB, ids []int64) (map[int64]lastRun, error) {
	out := map[int64]lastRun{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := db.QueryContext(ctx, `
		WITH wanted AS (SELECT DISTINCT unnest($1::BIGINT[]) AS id),
		     j AS (SELECT stream_id, max(greatest(start_execution_time, end_execution_time)) AS at,
		                  count(*) FILTER (WHERE status NOT IN ('SUCCESS', 'FAILURE') OR status IS NULL) AS open
		           FROM jobs WHERE NOT is_deleted AND stream_id IN (SELECT id FROM wanted) GROUP BY stream_id)
		SELECT s.id, greatest(s.last_update, j.at), coalesce(j.open, 0) > 0
		FROM streams s JOIN wanted w ON w.id = s.id LEFT JOIN j ON j.stream_id = s.id`, ids)
	if err != nil {
		return nil, fmt.Errorf("reading when %d streams last ran: %w", len(ids), err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var at sql.NullTime
		var r lastRun
		if err := rows.Scan(&id, &at, &r.Running); err != nil {
			return nil, fmt.Errorf("reading when streams last ran: %w", err)
		}
		r.At = at.Time
		out[id] = r
	}
	return out, rows.Err()
}

// liveStreamsOf returns the ids of the workspace's streams the store holds, not deleted.
func liveStreamsOf(ctx context.Context, db *sql.DB, ws int64) ([]int64, error) {
	rows, err := db.QueryContext(ctx, `SELECT id FROM streams WHERE workspace_id = $1 AND NOT is_deleted ORDER BY id`, ws)
	if err != nil {
		return nil, fmt.Errorf("reading the streams of workspace %d: %w", ws, err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("reading the streams of workspace %d: %w", ws, err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// createdBefore returns, by name, the action runs that created (or may have created: a
// call still in doubt) an entity of op in the given workspaces that the store does not
// know deleted since. A creation whose record is not in the store yet (the write-back
// failed, or a reconciliation without one found it) is so still known.
func createdBefore(ctx context.Context, db *sql.DB, op Op, wss []int64) (map[nameKey]int64, error) {
	out := map[nameKey]int64{}
	table := entityTables[op]
	if table == "" || len(wss) == 0 {
		return out, nil
	}
	rows, err := db.QueryContext(ctx, `
		SELECT i.workspace_id, coalesce(i.name, ''), max(i.action_run_id)
		FROM action_items i
		WHERE i.operation = $1 AND i.status IN ('sent', 'sending') AND i.workspace_id IN (SELECT unnest($2::BIGINT[]))
		  AND NOT EXISTS (SELECT 1 FROM `+table+` t WHERE t.id = i.created_id AND t.is_deleted)
		GROUP BY ALL`, string(op), wss)
	if err != nil {
		return nil, fmt.Errorf("reading earlier %s actions: %w", op, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k nameKey
		var run int64
		if err := rows.Scan(&k.ws, &k.name, &run); err != nil {
			return nil, fmt.Errorf("reading earlier %s actions: %w", op, err)
		}
		out[k] = run
	}
	return out, rows.Err()
}
