package load

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// entity describes how one Batch entity maps onto its tables. The SQL of every write is
// generated from it once, at init.
type entity struct {
	table string
	cols  []column // typed columns, keys first; raw and the bookkeeping columns come after
	keys  []string // the primary key
	// parent is the column that holds the batch's ParentID; "" means the whole table is
	// one listing (workspaces).
	parent string
	// intID: keyed by one BIGINT id, so Batch.AllIDs applies.
	intID bool
	// parentScoped: stored rows are matched within the batch's parent only (jobs).
	parentScoped bool
	history      bool
	// configHash, for an entity with history, is the SQL of the text a version's row_hash
	// is the md5 of, over the staged raw record s.raw: a new version starts only when it
	// changes.
	configHash string
	// validFrom, for an entity with history, is the row's API change time (updateTime):
	// a new version is valid from it when it is later than every earlier version, from
	// the observation time otherwise. Nil: always the observation time.
	validFrom func(b *Batch, i int) time.Time
	// rows reports how many rows of this entity the batch holds.
	rows func(b *Batch) int
	// values appends the staging values of row i (typed columns then raw) to dst.
	values func(b *Batch, i int, dst []driver.Value) []driver.Value
	// key is row i's key within the table; for parentScoped entities within the parent.
	key func(b *Batch, i int) rowKey

	sql entitySQL
}

// rowKey is a row's key: its id, or for dimensions and measurements its system name
// (their batches hold one workspace's fields).
type rowKey struct {
	id   int64
	name string
}

type column struct{ name, typ string }

// entitySQL is the statements one merge runs for the entity. A merge covers the staged
// rows of several batches of different parents at once; each staged row carries its
// batch's parent (_parent) and observation time (_obs). $1 is always the run id.
type entitySQL struct {
	stagingTable  string
	createStaging string
	// classify marks each staged row: whether the key is stored (_existed), whether it
	// differs from the stored row (_changed; a deleted row always differs), and carries
	// over first_seen and, for jobs, the old status.
	classify string
	counts   string // new, changed and unchanged staged rows
	// Changed rows are deleted and re-inserted with their first_seen: DuckDB appends far
	// faster than it updates wide rows.
	deleteChanged  string
	insert         string
	touchUnchanged string
	// validFrom moves the _valid_from of staged rows (set to their update time or
	// observation time when staged) past every stored version of the same key.
	validFrom     string
	historyClose  string
	historyInsert string
	// deleteMissing and historyDelete act on the parents whose listing in the merge is
	// complete: the marker rows of stg_ids (id NULL) name them.
	deleteMissing string
	historyDelete string
}

// nullTime stores the zero time as NULL, as the row types promise.
func nullTime(t time.Time) driver.Value {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}

// nullDate keeps only the calendar day; the API sends dates without a zone.
func nullDate(t time.Time) driver.Value {
	if t.IsZero() {
		return nil
	}
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// nullString stores "" as NULL, for values the API leaves out (a stream that never ran
// has no lastRunStatus).
func nullString(s string) driver.Value {
	if s == "" {
		return nil
	}
	return s
}

func rawValue(r json.RawMessage) driver.Value {
	if len(r) == 0 {
		return nil
	}
	return string(r)
}

func orParent(v, parent int64) int64 {
	if v == 0 {
		return parent
	}
	return v
}

// streamRunStats are the stream record's fields that describe its runs rather than its
// configuration (datorama-api.md §6: lastUpdate, lastRunStatus, lastRowsRetrieved,
// processedRows, lastDataDate, processStatsCounts, and hasData, which turns true with the
// first run that brings data). They change with every run, so they are left out of
// streams_history's row_hash: a version is a configuration (name, enabled, schedule,
// config, …). Their current values are in streams, and the runs themselves in jobs.
var streamRunStats = []string{"lastUpdate", "lastRunStatus", "lastRowsRetrieved", "processedRows",
	"lastDataDate", "processStatsCounts", "hasData"}

// streamConfigSQL is the stream record without its run statistics (a JSON merge patch
// with nulls removes keys); migration 0005 hashes stored versions with the same
// expression, so the two must stay equal.
func streamConfigSQL(raw string) string {
	var patch []string
	for _, f := range streamRunStats {
		patch = append(patch, fmt.Sprintf("%q:null", f))
	}
	return fmt.Sprintf("json_merge_patch(%s, '{%s}')", raw, strings.Join(patch, ","))
}

var entities = map[string]*entity{
	Workspaces: {
		table: Workspaces,
		cols: []column{{"id", "BIGINT"}, {"name", "VARCHAR"}, {"account_id", "BIGINT"},
			{"create_time", "TIMESTAMPTZ"}, {"update_time", "TIMESTAMPTZ"}},
		keys: []string{"id"}, intID: true, history: true,
		configHash: "s.raw",
		validFrom:  func(b *Batch, i int) time.Time { return b.Workspaces[i].UpdateTime },
		rows:       func(b *Batch) int { return len(b.Workspaces) },
		values: func(b *Batch, i int, dst []driver.Value) []driver.Value {
			r := &b.Workspaces[i]
			return append(dst, r.ID, r.Name, r.AccountID, nullTime(r.CreateTime),
				nullTime(r.UpdateTime), rawValue(r.Raw))
		},
		key: func(b *Batch, i int) rowKey { return rowKey{id: b.Workspaces[i].ID} },
	},
	Streams: {
		table: Streams,
		cols: []column{{"id", "BIGINT"}, {"workspace_id", "BIGINT"}, {"name", "VARCHAR"},
			{"data_source_id", "BIGINT"}, {"data_source_name", "VARCHAR"}, {"enabled", "BOOLEAN"},
			{"has_data", "BOOLEAN"}, {"last_run_status", "VARCHAR"}, {"last_run_failed", "BOOLEAN"},
			{"last_rows_retrieved", "BIGINT"}, {"processed_rows", "BIGINT"}, {"last_data_date", "DATE"},
			{"last_update", "TIMESTAMPTZ"}, {"create_time", "TIMESTAMPTZ"}, {"update_time", "TIMESTAMPTZ"}},
		keys: []string{"id"}, parent: "workspace_id", intID: true, history: true,
		configHash: streamConfigSQL("s.raw"),
		validFrom:  func(b *Batch, i int) time.Time { return b.Streams[i].UpdateTime },
		rows:       func(b *Batch) int { return len(b.Streams) },
		values: func(b *Batch, i int, dst []driver.Value) []driver.Value {
			r := &b.Streams[i]
			return append(dst, r.ID, orParent(r.WorkspaceID, b.ParentID), r.Name, r.DataSourceID,
				r.DataSourceName, r.Enabled, r.HasData, nullString(r.LastRunStatus), r.LastRunFailed,
				r.LastRowsRetrieved, r.ProcessedRows, nullDate(r.LastDataDate), nullTime(r.LastUpdate),
				nullTime(r.CreateTime), nullTime(r.UpdateTime), rawValue(r.Raw))
		},
		key: func(b *Batch, i int) rowKey { return rowKey{id: b.Streams[i].ID} },
	},
	Jobs: {
		table: Jobs,
		cols: []column{{"id", "BIGINT"}, {"stream_id", "BIGINT"}, {"workspace_id", "BIGINT"},
			{"status", "VARCHAR"}, {"status_reason", "VARCHAR"}, {"data_start_date", "DATE"},
			{"data_end_date", "DATE"}, {"start_execution_time", "TIMESTAMPTZ"},
			{"end_execution_time", "TIMESTAMPTZ"}, {"user_id", "BIGINT"}},
		keys: []string{"id"}, parent: "stream_id", intID: true, parentScoped: true,
		rows: func(b *Batch) int { return len(b.Jobs) },
		values: func(b *Batch, i int, dst []driver.Value) []driver.Value {
			r := &b.Jobs[i]
			return append(dst, r.ID, orParent(r.StreamID, b.ParentID), r.WorkspaceID, r.Status,
				r.StatusReason, nullDate(r.DataStartDate), nullDate(r.DataEndDate),
				nullTime(r.StartExecutionTime), nullTime(r.EndExecutionTime), r.UserID,
				rawValue(r.Raw))
		},
		key: func(b *Batch, i int) rowKey { return rowKey{id: b.Jobs[i].ID} },
	},
	Mappings: {
		table: Mappings,
		cols:  []column{{"stream_id", "BIGINT"}, {"workspace_id", "BIGINT"}},
		keys:  []string{"stream_id"}, parent: "stream_id", history: true,
		// A mapping carries no change time of its own: its versions start when a crawl
		// sees them.
		configHash: "s.raw",
		rows:       func(b *Batch) int { return len(b.Mappings) },
		values: func(b *Batch, i int, dst []driver.Value) []driver.Value {
			r := &b.Mappings[i]
			return append(dst, orParent(r.StreamID, b.ParentID), r.WorkspaceID, rawValue(r.Raw))
		},
		key: func(b *Batch, i int) rowKey { return rowKey{id: orParent(b.Mappings[i].StreamID, b.ParentID)} },
	},
	Dimensions:   fieldEntity(Dimensions),
	Measurements: fieldEntity(Measurements),
	HarmonizedDimensions: {
		table: HarmonizedDimensions,
		cols: []column{{"id", "BIGINT"}, {"workspace_id", "BIGINT"}, {"name", "VARCHAR"},
			{"update_time", "TIMESTAMPTZ"}},
		keys: []string{"id"}, parent: "workspace_id", intID: true,
		rows: func(b *Batch) int { return len(b.Harmonized) },
		values: func(b *Batch, i int, dst []driver.Value) []driver.Value {
			r := &b.Harmonized[i]
			return append(dst, r.ID, orParent(r.WorkspaceID, b.ParentID), r.Name,
				nullTime(r.UpdateTime), rawValue(r.Raw))
		},
		key: func(b *Batch, i int) rowKey { return rowKey{id: b.Harmonized[i].ID} },
	},
	Patterns: {
		table: Patterns,
		cols: []column{{"id", "BIGINT"}, {"workspace_id", "BIGINT"},
			{"harmonized_dimension_id", "BIGINT"}, {"name", "VARCHAR"}, {"update_time", "TIMESTAMPTZ"}},
		keys: []string{"id"}, parent: "workspace_id", intID: true,
		rows: func(b *Batch) int { return len(b.Patterns) },
		values: func(b *Batch, i int, dst []driver.Value) []driver.Value {
			r := &b.Patterns[i]
			return append(dst, r.ID, orParent(r.WorkspaceID, b.ParentID), r.HarmonizedDimensionID,
				r.Name, nullTime(r.UpdateTime), rawValue(r.Raw))
		},
		key: func(b *Batch, i int) rowKey { return rowKey{id: b.Patterns[i].ID} },
	},
	CalculatedMeasurements: {
		table: CalculatedMeasurements,
		cols: []column{{"id", "BIGINT"}, {"workspace_id", "BIGINT"}, {"name", "VARCHAR"},
			{"formula", "VARCHAR"}, {"update_time", "TIMESTAMPTZ"}},
		keys: []string{"id"}, parent: "workspace_id", intID: true,
		rows: func(b *Batch) int { return len(b.CalcMeas) },
		values: func(b *Batch, i int, dst []driver.Value) []driver.Value {
			r := &b.CalcMeas[i]
			return append(dst, r.ID, orParent(r.WorkspaceID, b.ParentID), r.Name, r.Formula,
				nullTime(r.UpdateTime), rawValue(r.Raw))
		},
		key: func(b *Batch, i int) rowKey { return rowKey{id: b.CalcMeas[i].ID} },
	},
}

// fieldEntity is dimensions or measurements: keyed by system name within a workspace.
// A workspace's field list arrives in one response, so AllIDs does not apply: a Complete
// batch's rows are the whole list.
func fieldEntity(table string) *entity {
	return &entity{
		table: table,
		cols:  []column{{"workspace_id", "BIGINT"}, {"system_name", "VARCHAR"}, {"display_name", "VARCHAR"}},
		keys:  []string{"workspace_id", "system_name"}, parent: "workspace_id",
		rows: func(b *Batch) int { return len(b.Fields) },
		values: func(b *Batch, i int, dst []driver.Value) []driver.Value {
			r := &b.Fields[i]
			return append(dst, orParent(r.WorkspaceID, b.ParentID), r.SystemName, r.DisplayName,
				rawValue(r.Raw))
		},
		key: func(b *Batch, i int) rowKey {
			r := &b.Fields[i]
			return rowKey{id: orParent(r.WorkspaceID, b.ParentID), name: r.SystemName}
		},
	}
}

// filled counts the row slices of b that hold rows, to catch a batch whose rows do not
// match its Entity.
func filled(b *Batch) int {
	n := 0
	for _, l := range b.rowCounts() {
		if l > 0 {
			n++
		}
	}
	return n
}

func init() {
	for _, e := range entities {
		e.sql = buildSQL(e)
	}
}

// idsTable holds, for the parents whose listing a merge completes, one marker row (id
// NULL, with the batch's observation time) and the ids the listing holds (int-keyed
// entities: the batch's rows plus AllIDs).
const idsTable = "stg_ids"

// stagingExtra are the staging columns after the typed ones and raw: set when staged
// (_obs, _parent, _valid_from) or by classify.
const stagingExtra = `_obs TIMESTAMPTZ, _parent BIGINT, _valid_from TIMESTAMPTZ,
	_existed BOOLEAN, _changed BOOLEAN, _first_seen TIMESTAMPTZ, _old_status VARCHAR`

func buildSQL(e *entity) entitySQL {
	var names, defs, tcols, scols []string
	for _, c := range e.cols {
		names = append(names, c.name)
		defs = append(defs, c.name+" "+c.typ)
		if !contains(e.keys, c.name) {
			tcols = append(tcols, "t."+c.name)
			scols = append(scols, "s."+c.name)
		}
	}
	tcols = append(tcols, "CAST(t.raw AS VARCHAR)")
	scols = append(scols, "s.raw")
	stg := "stg_" + e.table
	cols := strings.Join(names, ", ")
	keyMatch := func(a, b string) string {
		var parts []string
		for _, k := range e.keys {
			parts = append(parts, fmt.Sprintf("%s.%s = %s.%s", a, k, b, k))
		}
		return strings.Join(parts, " AND ")
	}
	// Only jobs is matched within its parent: it is the one big table, a job never
	// changes stream, and Write checks every job row's stream, so the stream id narrows
	// the scan. Small tables match on the key alone, so an entity that moved parent is
	// updated, not duplicated.
	match := keyMatch("t", "s")
	if e.parentScoped {
		match += fmt.Sprintf(" AND t.%[1]s = s.%[1]s", e.parent)
	}
	oldStatus := ""
	if e.table == Jobs {
		oldStatus = ", _old_status = t.status"
	}
	// The complete listings of the merge, and the stored rows of their parents the
	// listings lack.
	complete := fmt.Sprintf(`(SELECT parent, max(_obs) AS _obs FROM %s WHERE entity = '%s' AND id IS NULL GROUP BY parent) c`,
		idsTable, e.table)
	inParent := "true"
	if e.parent != "" {
		inParent = fmt.Sprintf("t.%s = c.parent", e.parent)
	}
	var missing string
	if e.intID {
		missing = fmt.Sprintf("NOT EXISTS (SELECT 1 FROM %s p WHERE p.entity = '%s' AND p.parent = c.parent AND p.id = t.id)",
			idsTable, e.table)
	} else {
		missing = fmt.Sprintf("NOT EXISTS (SELECT 1 FROM %s p WHERE %s)", stg, keyMatch("p", "t"))
	}

	q := entitySQL{
		stagingTable: stg,
		createStaging: fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE %s (%s, raw VARCHAR, %s)`,
			stg, strings.Join(defs, ", "), stagingExtra),
		classify: fmt.Sprintf(`UPDATE %[1]s s SET _existed = true, _first_seen = t.first_seen%[2]s,
				_changed = t.is_deleted OR (%[3]s) IS DISTINCT FROM (%[4]s)
			FROM %[5]s t WHERE %[6]s`,
			stg, oldStatus, strings.Join(tcols, ", "), strings.Join(scols, ", "), e.table, match),
		counts: fmt.Sprintf(`SELECT count(*) FILTER (WHERE NOT _existed), count(*) FILTER (WHERE _existed AND _changed),
			count(*) FILTER (WHERE _existed AND NOT _changed) FROM %s`, stg),
		deleteChanged: fmt.Sprintf(`DELETE FROM %[1]s t USING %[2]s s WHERE %[3]s AND s._existed AND s._changed`,
			e.table, stg, match),
		insert: fmt.Sprintf(`INSERT INTO %[1]s (%[2]s, raw, run_id, first_seen, last_seen, is_deleted, deleted_at)
			SELECT %[2]s, CAST(raw AS JSON), $1, coalesce(_first_seen, _obs), _obs, false, NULL
			FROM %[3]s WHERE NOT _existed OR _changed`, e.table, cols, stg),
		touchUnchanged: fmt.Sprintf(`UPDATE %[1]s t SET last_seen = greatest(t.last_seen, s._obs), run_id = $1
			FROM %[2]s s WHERE %[3]s AND s._existed AND NOT s._changed`, e.table, stg, match),
		deleteMissing: fmt.Sprintf(`UPDATE %s t SET is_deleted = true, deleted_at = c._obs, run_id = $1
			FROM %s WHERE %s AND NOT t.is_deleted AND %s`, e.table, complete, inParent, missing),
	}
	if e.history {
		h := e.table + "_history"
		hash := fmt.Sprintf("md5(coalesce(%s, ''))", e.configHash)
		key := e.keys[0]
		// A version starts at the row's change time only when that is later than every
		// version the key had (and so than the one it closes); otherwise, and for rows
		// without one, at the observation time, never before the last version ended.
		q.validFrom = fmt.Sprintf(`UPDATE %[1]s s SET _valid_from = CASE WHEN s._valid_from > f.floor
				THEN s._valid_from ELSE greatest(s._obs, f.floor) END
			FROM (SELECT %[3]s, max(coalesce(valid_to, valid_from)) AS floor FROM %[2]s
				WHERE %[3]s IN (SELECT %[3]s FROM %[1]s) GROUP BY %[3]s) f
			WHERE f.%[3]s = s.%[3]s AND (NOT s._existed OR s._changed)`, stg, h, key)
		q.historyClose = fmt.Sprintf(`UPDATE %s t SET valid_to = s._valid_from, is_current = false, closed_run_id = $1
			FROM %s s WHERE %s AND t.is_current AND t.row_hash <> %s`,
			h, stg, keyMatch("t", "s"), hash)
		q.historyInsert = fmt.Sprintf(`INSERT INTO %[1]s (%[2]s, raw, row_hash, valid_from, valid_to, is_current, run_id)
			SELECT %[2]s, CAST(raw AS JSON), %[5]s, _valid_from, NULL, true, $1 FROM %[3]s s
			WHERE NOT EXISTS (SELECT 1 FROM %[1]s t WHERE %[4]s AND t.is_current)`,
			h, cols, stg, keyMatch("t", "s"), hash)
		q.historyDelete = fmt.Sprintf(`UPDATE %s t SET valid_to = c._obs, is_current = false, closed_run_id = $1
			FROM %s WHERE t.is_current AND %s AND %s`, h, complete, inParent, missing)
	}
	return q
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
