package load

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
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
	// rows reports how many rows of this entity the batch holds.
	rows func(b *Batch) int
	// values returns the staging values of row i (typed columns then raw) and its key.
	values func(b *Batch, i int) (vals []driver.Value, key string)

	sql entitySQL
}

type column struct{ name, typ string }

type entitySQL struct {
	stagingTable  string
	createStaging string
	// classify marks each staged row: whether the key is stored (_existed), whether it
	// differs from the stored row (_changed; a deleted row always differs), and carries
	// over first_seen and, for jobs, the old status. $1 parent (jobs only).
	classify string
	counts   string // new, changed and unchanged staged rows
	// Changed rows are deleted and re-inserted with their first_seen: DuckDB appends far
	// faster than it updates wide rows.
	deleteChanged  string // $1 parent (jobs only)
	insert         string // $1 observed, $2 run
	touchUnchanged string // $1 observed, $2 run, $3 parent (jobs only)
	historyClose   string // $1 observed, $2 run
	historyInsert  string // $1 observed, $2 run
	deleteMissing  string // $1 observed, $2 run, $3 parent (if the entity has one)
	historyDelete  string // $1 observed, $2 run, $3 parent (if the entity has one)
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

func idKey(id int64) string { return fmt.Sprint(id) }

var entities = map[string]*entity{
	Workspaces: {
		table: Workspaces,
		cols: []column{{"id", "BIGINT"}, {"name", "VARCHAR"}, {"account_id", "BIGINT"},
			{"create_time", "TIMESTAMPTZ"}, {"update_time", "TIMESTAMPTZ"}},
		keys: []string{"id"}, intID: true, history: true,
		rows: func(b *Batch) int { return len(b.Workspaces) },
		values: func(b *Batch, i int) ([]driver.Value, string) {
			r := &b.Workspaces[i]
			return []driver.Value{r.ID, r.Name, r.AccountID, nullTime(r.CreateTime),
				nullTime(r.UpdateTime), rawValue(r.Raw)}, idKey(r.ID)
		},
	},
	Streams: {
		table: Streams,
		cols: []column{{"id", "BIGINT"}, {"workspace_id", "BIGINT"}, {"name", "VARCHAR"},
			{"data_source_id", "BIGINT"}, {"data_source_name", "VARCHAR"}, {"enabled", "BOOLEAN"},
			{"has_data", "BOOLEAN"}, {"last_run_status", "VARCHAR"}, {"last_run_failed", "BOOLEAN"},
			{"last_rows_retrieved", "BIGINT"}, {"processed_rows", "BIGINT"}, {"last_data_date", "DATE"},
			{"last_update", "TIMESTAMPTZ"}, {"create_time", "TIMESTAMPTZ"}, {"update_time", "TIMESTAMPTZ"}},
		keys: []string{"id"}, parent: "workspace_id", intID: true, history: true,
		rows: func(b *Batch) int { return len(b.Streams) },
		values: func(b *Batch, i int) ([]driver.Value, string) {
			r := &b.Streams[i]
			return []driver.Value{r.ID, orParent(r.WorkspaceID, b.ParentID), r.Name, r.DataSourceID,
				r.DataSourceName, r.Enabled, r.HasData, r.LastRunStatus, r.LastRunFailed,
				r.LastRowsRetrieved, r.ProcessedRows, nullDate(r.LastDataDate), nullTime(r.LastUpdate),
				nullTime(r.CreateTime), nullTime(r.UpdateTime), rawValue(r.Raw)}, idKey(r.ID)
		},
	},
	Jobs: {
		table: Jobs,
		cols: []column{{"id", "BIGINT"}, {"stream_id", "BIGINT"}, {"workspace_id", "BIGINT"},
			{"status", "VARCHAR"}, {"status_reason", "VARCHAR"}, {"data_start_date", "DATE"},
			{"data_end_date", "DATE"}, {"start_execution_time", "TIMESTAMPTZ"},
			{"end_execution_time", "TIMESTAMPTZ"}, {"user_id", "BIGINT"}},
		keys: []string{"id"}, parent: "stream_id", intID: true, parentScoped: true,
		rows: func(b *Batch) int { return len(b.Jobs) },
		values: func(b *Batch, i int) ([]driver.Value, string) {
			r := &b.Jobs[i]
			return []driver.Value{r.ID, orParent(r.StreamID, b.ParentID), r.WorkspaceID, r.Status,
				r.StatusReason, nullDate(r.DataStartDate), nullDate(r.DataEndDate),
				nullTime(r.StartExecutionTime), nullTime(r.EndExecutionTime), r.UserID,
				rawValue(r.Raw)}, idKey(r.ID)
		},
	},
	Mappings: {
		table: Mappings,
		cols:  []column{{"stream_id", "BIGINT"}, {"workspace_id", "BIGINT"}},
		keys:  []string{"stream_id"}, parent: "stream_id", history: true,
		rows: func(b *Batch) int { return len(b.Mappings) },
		values: func(b *Batch, i int) ([]driver.Value, string) {
			r := &b.Mappings[i]
			id := orParent(r.StreamID, b.ParentID)
			return []driver.Value{id, r.WorkspaceID, rawValue(r.Raw)}, idKey(id)
		},
	},
	Dimensions:   fieldEntity(Dimensions),
	Measurements: fieldEntity(Measurements),
	HarmonizedDimensions: {
		table: HarmonizedDimensions,
		cols: []column{{"id", "BIGINT"}, {"workspace_id", "BIGINT"}, {"name", "VARCHAR"},
			{"update_time", "TIMESTAMPTZ"}},
		keys: []string{"id"}, parent: "workspace_id", intID: true,
		rows: func(b *Batch) int { return len(b.Harmonized) },
		values: func(b *Batch, i int) ([]driver.Value, string) {
			r := &b.Harmonized[i]
			return []driver.Value{r.ID, orParent(r.WorkspaceID, b.ParentID), r.Name,
				nullTime(r.UpdateTime), rawValue(r.Raw)}, idKey(r.ID)
		},
	},
	Patterns: {
		table: Patterns,
		cols: []column{{"id", "BIGINT"}, {"workspace_id", "BIGINT"},
			{"harmonized_dimension_id", "BIGINT"}, {"name", "VARCHAR"}, {"update_time", "TIMESTAMPTZ"}},
		keys: []string{"id"}, parent: "workspace_id", intID: true,
		rows: func(b *Batch) int { return len(b.Patterns) },
		values: func(b *Batch, i int) ([]driver.Value, string) {
			r := &b.Patterns[i]
			return []driver.Value{r.ID, orParent(r.WorkspaceID, b.ParentID), r.HarmonizedDimensionID,
				r.Name, nullTime(r.UpdateTime), rawValue(r.Raw)}, idKey(r.ID)
		},
	},
	CalculatedMeasurements: {
		table: CalculatedMeasurements,
		cols: []column{{"id", "BIGINT"}, {"workspace_id", "BIGINT"}, {"name", "VARCHAR"},
			{"formula", "VARCHAR"}, {"update_time", "TIMESTAMPTZ"}},
		keys: []string{"id"}, parent: "workspace_id", intID: true,
		rows: func(b *Batch) int { return len(b.CalcMeas) },
		values: func(b *Batch, i int) ([]driver.Value, string) {
			r := &b.CalcMeas[i]
			return []driver.Value{r.ID, orParent(r.WorkspaceID, b.ParentID), r.Name, r.Formula,
				nullTime(r.UpdateTime), rawValue(r.Raw)}, idKey(r.ID)
		},
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
		values: func(b *Batch, i int) ([]driver.Value, string) {
			r := &b.Fields[i]
			return []driver.Value{orParent(r.WorkspaceID, b.ParentID), r.SystemName, r.DisplayName,
				rawValue(r.Raw)}, r.SystemName
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

const idsTable = "stg_ids" // ids present in a Complete listing of int-keyed entities

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
	// Only jobs is filtered by parent when matching stored rows: it is the one big table,
	// a job never changes stream, and Write checks every job row's stream. Small tables
	// match on the key alone, so an entity that moved parent is updated, not duplicated.
	jobParent := func(alias, param string) string {
		if !e.parentScoped {
			return ""
		}
		return fmt.Sprintf(" AND %s.%s = %s", alias, e.parent, param)
	}
	oldStatus := ""
	if e.table == Jobs {
		oldStatus = ", _old_status = t.status"
	}
	parentFilter, histParentFilter := "true", "true"
	if e.parent != "" {
		parentFilter = fmt.Sprintf("t.%s = $3", e.parent)
		histParentFilter = fmt.Sprintf("t.%s = $3", e.parent)
	}
	// present: the keys a Complete listing holds. Int-keyed entities use stg_ids (the
	// batch's ids plus AllIDs); the others use the staging rows themselves.
	var missing string
	if e.intID {
		missing = fmt.Sprintf("NOT EXISTS (SELECT 1 FROM %s p WHERE p.id = t.id)", idsTable)
	} else {
		missing = fmt.Sprintf("NOT EXISTS (SELECT 1 FROM %s p WHERE %s)", stg, keyMatch("p", "t"))
	}

	q := entitySQL{
		stagingTable: stg,
		createStaging: fmt.Sprintf(`CREATE OR REPLACE TEMP TABLE %s (%s, raw VARCHAR,
			_existed BOOLEAN, _changed BOOLEAN, _first_seen TIMESTAMPTZ, _old_status VARCHAR)`,
			stg, strings.Join(defs, ", ")),
		classify: fmt.Sprintf(`UPDATE %[1]s s SET _existed = true, _first_seen = t.first_seen%[2]s,
				_changed = t.is_deleted OR (%[3]s) IS DISTINCT FROM (%[4]s)
			FROM %[5]s t WHERE %[6]s%[7]s`,
			stg, oldStatus, strings.Join(tcols, ", "), strings.Join(scols, ", "), e.table,
			keyMatch("t", "s"), jobParent("t", "$1")),
		counts: fmt.Sprintf(`SELECT count(*) FILTER (WHERE NOT _existed), count(*) FILTER (WHERE _existed AND _changed),
			count(*) FILTER (WHERE _existed AND NOT _changed) FROM %s`, stg),
		deleteChanged: fmt.Sprintf(`DELETE FROM %[1]s t WHERE EXISTS (SELECT 1 FROM %[2]s s
			WHERE %[3]s AND s._existed AND s._changed)%[4]s`, e.table, stg, keyMatch("s", "t"), jobParent("t", "$1")),
		insert: fmt.Sprintf(`INSERT INTO %[1]s (%[2]s, raw, run_id, first_seen, last_seen, is_deleted, deleted_at)
			SELECT %[2]s, CAST(raw AS JSON), $2, coalesce(_first_seen, $1), $1, false, NULL
			FROM %[3]s WHERE NOT _existed OR _changed`, e.table, cols, stg),
		touchUnchanged: fmt.Sprintf(`UPDATE %[1]s t SET last_seen = greatest(t.last_seen, $1), run_id = $2
			FROM %[2]s s WHERE %[3]s AND s._existed AND NOT s._changed%[4]s`,
			e.table, stg, keyMatch("t", "s"), jobParent("t", "$3")),
		deleteMissing: fmt.Sprintf(`UPDATE %s t SET is_deleted = true, deleted_at = $1, run_id = $2
			WHERE %s AND NOT t.is_deleted AND %s`, e.table, parentFilter, missing),
	}
	if e.history {
		h := e.table + "_history"
		q.historyClose = fmt.Sprintf(`UPDATE %s t SET valid_to = $1, is_current = false, closed_run_id = $2
			FROM %s s WHERE %s AND t.is_current AND t.row_hash <> md5(coalesce(s.raw, ''))`,
			h, stg, keyMatch("t", "s"))
		q.historyInsert = fmt.Sprintf(`INSERT INTO %[1]s (%[2]s, raw, row_hash, valid_from, valid_to, is_current, run_id)
			SELECT %[2]s, CAST(raw AS JSON), md5(coalesce(raw, '')), $1, NULL, true, $2 FROM %[3]s s
			WHERE NOT EXISTS (SELECT 1 FROM %[1]s t WHERE %[4]s AND t.is_current)`,
			h, cols, stg, keyMatch("t", "s"))
		q.historyDelete = fmt.Sprintf(`UPDATE %s t SET valid_to = $1, is_current = false, closed_run_id = $2
			WHERE t.is_current AND %s AND %s`, h, histParentFilter, missing)
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

// appendRows appends the batch's rows of e to its staging table, keeping only the last
// row of each key (a repeated page must not make one statement update a row twice). It
// returns the ids appended, for stg_ids.
func appendRows(a *duckdb.Appender, e *entity, b *Batch) ([]int64, error) {
	n := e.rows(b)
	vals := make([][]driver.Value, n)
	keys := make([]string, n)
	for i := 0; i < n; i++ {
		vals[i], keys[i] = e.values(b, i)
	}
	seen := make(map[string]struct{}, n)
	keep := make([]bool, n)
	for i := n - 1; i >= 0; i-- {
		if _, dup := seen[keys[i]]; !dup {
			seen[keys[i]] = struct{}{}
			keep[i] = true
		}
	}
	var ids []int64
	for i := 0; i < n; i++ {
		if !keep[i] {
			continue
		}
		if err := a.AppendRow(append(vals[i], false, true, nil, nil)...); err != nil {
			return nil, fmt.Errorf("staging %s row %d: %w", e.table, i, err)
		}
		if e.intID {
			ids = append(ids, vals[i][0].(int64))
		}
	}
	return ids, nil
}
