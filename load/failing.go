package load

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// FailingStream is a stream whose newest finished jobs all failed.
type FailingStream struct {
	StreamID    int64
	WorkspaceID int64
	Name        string
	// Failures is how many of its newest finished jobs (SUCCESS or FAILURE, by id)
	// failed in a row; jobs not finished yet neither count nor break the row.
	Failures int
	// LastJobID, LastFailure and Reason describe the newest failed job; LastFailure is
	// zero when the API gave no end time.
	LastJobID   int64
	LastFailure time.Time
	Reason      string
}

// StreamsReachingFailures returns the streams that run runID brought to n or more
// consecutive failed jobs: at least n by what the store holds now, fewer by what it held
// before the run. A stream is returned once, by the run in which it reaches n, and again
// only after a success broke the row; so a caller that reports them does not repeat
// itself across runs or restarts. Ordered by stream id; nothing when the run wrote no
// jobs.
//
// The store's state before the run is read back from job_status_changes (the transitions
// each run saw) and jobs.first_seen (a job first seen at or after the run's start is new
// to it), so it needs no state of its own; it relies on the runs of one store never
// starting at the same instant.
func (s *Store) StreamsReachingFailures(ctx context.Context, runID int64, n int) ([]FailingStream, error) {
	if n < 1 {
		return nil, fmt.Errorf("consecutive failures: threshold %d, want at least 1", n)
	}
	rows, err := s.db.QueryContext(ctx, streamsReachingFailuresSQL, runID, n)
	if err != nil {
		return nil, fmt.Errorf("reading the streams run %d brought to %d consecutive failures: %w", runID, n, err)
	}
	defer rows.Close()
	var out []FailingStream
	for rows.Next() {
		var (
			f      FailingStream
			ws     sql.NullInt64
			name   sql.NullString
			end    sql.NullTime
			reason sql.NullString
		)
		if err := rows.Scan(&f.StreamID, &ws, &name, &f.Failures, &f.LastJobID, &end, &reason); err != nil {
			return nil, fmt.Errorf("reading consecutive failures: %w", err)
		}
		f.WorkspaceID, f.Name, f.Reason = ws.Int64, name.String, reason.String
		if end.Valid {
			f.LastFailure = end.Time.UTC()
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading consecutive failures: %w", err)
	}
	return out, nil
}

// streamsReachingFailuresSQL: $1 the run, $2 the threshold. Only the streams whose jobs
// the run wrote are looked at. A job's status before the run is the newest status a
// transition of an earlier run gave it; else, when the run (or a later one) saw it change,
// what it changed from; else its current status. A job first seen by the run had no
// status before it. A streak counts the FAILURE jobs newer than the newest SUCCESS; the
// one before the run is counted within today's streak (after today's newest SUCCESS too),
// so a streak that a success ended and a new one that reached n in the same run is new.
const streamsReachingFailuresSQL = `
WITH run AS (SELECT started FROM runs WHERE id = $1),
touched AS (SELECT DISTINCT stream_id FROM jobs WHERE run_id = $1 AND stream_id IS NOT NULL),
j AS (
	SELECT id, stream_id, status, first_seen, end_execution_time, status_reason
	FROM jobs
	WHERE NOT is_deleted AND stream_id IN (SELECT stream_id FROM touched)
),
ch AS (
	SELECT job_id, old_status, new_status, run_id, seen_at
	FROM job_status_changes
	WHERE stream_id IN (SELECT stream_id FROM touched)
),
prior AS (
	SELECT job_id, new_status FROM ch WHERE run_id < $1
	QUALIFY row_number() OVER (PARTITION BY job_id ORDER BY run_id DESC, seen_at DESC) = 1
),
since AS (
	SELECT job_id, old_status FROM ch WHERE run_id >= $1
	QUALIFY row_number() OVER (PARTITION BY job_id ORDER BY run_id, seen_at) = 1
),
first_sight AS (
	-- Rows of an older drextract, which recorded a job's first sight as a change.
	SELECT job_id, min(run_id) AS run_id FROM ch WHERE old_status IS NULL GROUP BY job_id
),
states AS (
	SELECT j.id, j.stream_id, j.status AS now_status, j.end_execution_time, j.status_reason,
		CASE
			WHEN fs.run_id IS NOT NULL AND fs.run_id >= $1 THEN NULL
			WHEN fs.run_id IS NULL AND j.first_seen >= (SELECT started FROM run) THEN NULL
			ELSE coalesce(p.new_status, s.old_status, j.status)
		END AS before_status
	FROM j
	LEFT JOIN prior p ON p.job_id = j.id
	LEFT JOIN since s ON s.job_id = j.id
	LEFT JOIN first_sight fs ON fs.job_id = j.id
),
streaks AS (
	SELECT stream_id,
		count(*) FILTER (WHERE now_status = 'FAILURE' AND id > now_ok) AS now_n,
		count(*) FILTER (WHERE before_status = 'FAILURE' AND id > greatest(now_ok, before_ok)) AS before_n,
		max(id) FILTER (WHERE now_status = 'FAILURE') AS last_failed
	FROM (
		SELECT *,
			coalesce(max(id) FILTER (WHERE now_status = 'SUCCESS') OVER (PARTITION BY stream_id), -1) AS now_ok,
			coalesce(max(id) FILTER (WHERE before_status = 'SUCCESS') OVER (PARTITION BY stream_id), -1) AS before_ok
		FROM states
	)
	GROUP BY stream_id
)
SELECT k.stream_id, st.workspace_id, st.name, k.now_n, k.last_failed, f.end_execution_time, f.status_reason
FROM streaks k
JOIN states f ON f.id = k.last_failed
LEFT JOIN streams st ON st.id = k.stream_id
WHERE k.now_n >= $2 AND k.before_n < $2 AND NOT coalesce(st.is_deleted, false)
ORDER BY k.stream_id`
