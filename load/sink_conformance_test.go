package load_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/load/sinktest"
)

func TestStoreSinkConformance(t *testing.T) {
	sinktest.SinkSuite(t, func(t *testing.T) (load.Sink, sinktest.Inspector) {
		s, err := load.Open(context.Background(), filepath.Join(t.TempDir(), load.LiveFile),
			load.Options{Clock: clock.NewManual(time.Date(2025, 3, 10, 8, 0, 0, 0, time.UTC)),
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s, storeInspector{s.DB()}
	})
}

// storeInspector reads the DuckDB store's tables for the conformance suite.
type storeInspector struct{ db *sql.DB }

func (in storeInspector) Rows(ctx context.Context, table string) (map[string]sinktest.Row, error) {
	key := "CAST(id AS VARCHAR)"
	switch table {
	case load.Mappings:
		key = "CAST(stream_id AS VARCHAR)"
	case load.Dimensions, load.Measurements:
		key = "workspace_id || '/' || system_name"
	}
	rows, err := in.db.QueryContext(ctx, fmt.Sprintf(`SELECT %s, CAST(raw AS VARCHAR), coalesce(run_id, 0),
		first_seen, last_seen, is_deleted, deleted_at FROM %s`, key, table))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]sinktest.Row{}
	for rows.Next() {
		var k string
		var r sinktest.Row
		var raw sql.NullString
		var del sql.NullTime
		if err := rows.Scan(&k, &raw, &r.RunID, &r.FirstSeen, &r.LastSeen, &r.Deleted, &del); err != nil {
			return nil, err
		}
		r.Raw, r.DeletedAt = raw.String, del.Time
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("%s: key %s stored twice", table, k)
		}
		out[k] = r
	}
	return out, rows.Err()
}

func (in storeInspector) History(ctx context.Context, table, key string) ([]sinktest.Version, error) {
	col := "id"
	if table == load.Mappings {
		col = "stream_id"
	}
	rows, err := in.db.QueryContext(ctx, fmt.Sprintf(`SELECT row_hash, valid_from, valid_to, is_current
		FROM %s_history WHERE CAST(%s AS VARCHAR) = $1 ORDER BY valid_from`, table, col), key)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sinktest.Version
	for rows.Next() {
		var v sinktest.Version
		var to sql.NullTime
		if err := rows.Scan(&v.RowHash, &v.ValidFrom, &to, &v.Current); err != nil {
			return nil, err
		}
		v.ValidTo = to.Time
		out = append(out, v)
	}
	return out, rows.Err()
}

func (in storeInspector) StatusChanges(ctx context.Context, jobID int64) ([]sinktest.StatusChange, error) {
	rows, err := in.db.QueryContext(ctx, `SELECT coalesce(old_status, ''), new_status, seen_at, run_id
		FROM job_status_changes WHERE job_id = $1 ORDER BY seen_at`, jobID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sinktest.StatusChange
	for rows.Next() {
		var c sinktest.StatusChange
		if err := rows.Scan(&c.Old, &c.New, &c.SeenAt, &c.RunID); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (in storeInspector) Run(ctx context.Context, id int64) (sinktest.RunRecord, error) {
	var r sinktest.RunRecord
	var calls sql.NullInt64
	var rowsJSON, errText sql.NullString
	err := in.db.QueryRowContext(ctx, `SELECT status, calls, CAST(rows AS VARCHAR), error FROM runs WHERE id = $1`, id).
		Scan(&r.Status, &calls, &rowsJSON, &errText)
	if err != nil {
		return r, err
	}
	r.Calls, r.Error = int(calls.Int64), errText.String
	if rowsJSON.Valid {
		if err := json.Unmarshal([]byte(rowsJSON.String), &r.Rows); err != nil {
			return r, err
		}
	}
	return r, nil
}

func (in storeInspector) CallCount(ctx context.Context, runID int64) (int, error) {
	var n int
	err := in.db.QueryRowContext(ctx, `SELECT count(*) FROM api_calls WHERE run_id = $1`, runID).Scan(&n)
	return n, err
}
