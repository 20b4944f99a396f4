package load

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Publishing to another database (PostgreSQL) reads the store through a ChangeSet: every
// table a target copies, its columns and key, and, for each, what the target must delete
// and which rows it must write so that it equals the store. The target applies a change
// set in one transaction and, once that committed, calls Commit, which records in the
// store how far the target has got.
//
// How a change is found depends on how the table is written (the row stamps of
// sql/migrations/0004_publish_contract.sql):
//
//	current state (workspaces … calculated_measurements): rows whose run_id is newer than
//	    the target's run, upserted on the key; rows are never removed, only marked deleted,
//	    which stamps them too.
//	*_history: versions opened (run_id) or closed (closed_run_id) by a newer run; a closed
//	    one replaces the version the target holds as current for the same object and run.
//	job_status_changes: rows of newer runs, appended.
//	api_calls: append-only; rows past the target's position (their id, which the fold of
//	    the API-call journal assigns in increasing order).
//	report_* result tables: per report run, its row count; a report run whose count
//	    changed (mode replace deletes rows of earlier runs) or that is gone has its rows
//	    replaced at the target.
//	other tables with a primary key (runs, action_*, report_runs, report_columns): an md5
//	    of each row, compared with the one the target was sent; changed rows are upserted,
//	    rows gone are deleted. They are small and change after their run (a run's end,
//	    its publish status, an action's outcome).
//	any other table: sent whole every time.
//
// A full change set (the first publish, --full, a target that lost track, a store whose
// schema changed since) replaces every table whole.

// apiCallsPosition is the expression that orders api_calls rows by when they were
// appended: the id FoldJournal assigns, max(id) + 1 onwards, under the writer lock.
const apiCallsPosition = "id"

// unpublished are the store's own bookkeeping tables, which no target copies.
var unpublished = map[string]bool{
	"checkpoints": true, "schema_migrations": true, "store_identity": true,
	"publish_state": true, "publish_rows": true, "schema_views": true,
}

// IsInternal tells whether table is bookkeeping of the store that targets do not copy.
func IsInternal(table string) bool { return unpublished[table] }

// TableSchema is a table as a publish target copies it.
type TableSchema struct {
	Name    string
	Columns []ColumnSchema // in the store's order
	Key     []string       // the primary key; empty when the table has none
}

// ColumnSchema is a column and its DuckDB type as duckdb_columns() names it, e.g.
// "BIGINT", "TIMESTAMP WITH TIME ZONE", "JSON", "BIGINT[]", "DECIMAL(18,3)".
type ColumnSchema struct {
	Name string
	Type string
}

// ColumnNames returns the names of the columns, in order.
func (t TableSchema) ColumnNames() []string {
	out := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		out[i] = c.Name
	}
	return out
}

func (t TableSchema) has(col string) bool {
	for _, c := range t.Columns {
		if c.Name == col {
			return true
		}
	}
	return false
}

// PublishState is what the store remembers of a target's last successful publish.
type PublishState struct {
	StoreID     string // the store's identity (store_identity)
	Found       bool   // false: never published to this target
	Serial      int64  // successful publishes to the target so far
	RunID       int64  // every row written by a run up to this one is at the target
	APICallsPos int64  // api_calls rows up to this position are at the target
	StoreSchema int    // the store's schema version at that publish
	PublishedAt time.Time
}

// PublishState returns the store's identity and what it remembers of target.
func (s *Store) PublishState(ctx context.Context, target string) (PublishState, error) {
	return publishState(ctx, s.db, target)
}

func publishState(ctx context.Context, db interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, target string) (PublishState, error) {
	var st PublishState
	if err := db.QueryRowContext(ctx, `SELECT store_id FROM store_identity LIMIT 1`).Scan(&st.StoreID); err != nil {
		return st, fmt.Errorf("reading the store's identity: %w", err)
	}
	err := db.QueryRowContext(ctx,
		`SELECT serial, run_id, api_calls_pos, store_schema, published_at FROM publish_state WHERE target = $1`, target).
		Scan(&st.Serial, &st.RunID, &st.APICallsPos, &st.StoreSchema, &st.PublishedAt)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return st, nil
	case err != nil:
		return st, fmt.Errorf("reading the publish state of %s: %w", target, err)
	}
	st.Found = true
	return st, nil
}

// ChangeOptions say what a change set holds.
type ChangeOptions struct {
	// Full replaces every table whole, whatever the target has.
	Full bool
	// Run, when not 0, is the run this publish follows: its runs row is sent with
	// publish_status ok (and publish_error NULL), as Commit records it in the store.
	Run int64
	// Whole names tables to send whole even when the rest is sent by change: tables the
	// target has just created (it lost them, or they are new).
	Whole []string
}

// TableChange is what a target does to one table, in this order: empty it (Truncate);
// delete the rows whose Delete.Columns equal one of Delete.Keys; delete the rows that
// match a row of Rows on Replace.Columns and whose Replace.OnlyIf column is true; then
// write Rows, replacing the row with the same Key when Upsert is set.
type TableChange struct {
	Table    TableSchema
	Truncate bool
	Delete   Deletion
	Replace  Replacement
	Upsert   bool

	sync      syncKind
	rowsQuery string
	rowsArgs  []any
	sent      int64
}

// Deletion lists rows to delete by the text of their key columns (as DuckDB casts them
// to VARCHAR; the target casts them back to its column types).
type Deletion struct {
	Columns []string
	Keys    [][]string
}

// Replacement says which target rows the written rows take the place of.
type Replacement struct {
	Columns []string
	OnlyIf  string
}

// Sent is how many rows the change's Rows yielded so far.
func (tc *TableChange) Sent() int64 { return tc.sent }

type syncKind int

const (
	syncStamped syncKind = iota
	syncHistory
	syncByRun
	syncAppend
	syncReport
	syncHashed
	syncWhole
)

func syncOf(t TableSchema) syncKind {
	base, isHistory := strings.CutSuffix(t.Name, "_history")
	switch {
	case entities[t.Name] != nil:
		return syncStamped
	case isHistory && entities[base] != nil && t.has("run_id") && t.has("closed_run_id") && t.has("is_current"):
		return syncHistory
	case t.Name == "job_status_changes" && t.has("run_id"):
		return syncByRun
	case t.Name == "api_calls":
		return syncAppend
	case isReportTable(t):
		return syncReport
	case len(t.Key) > 0:
		return syncHashed
	}
	return syncWhole
}

func isReportTable(t TableSchema) bool {
	return strings.HasPrefix(t.Name, "report_") && t.Name != "report_runs" && t.Name != "report_columns" &&
		t.has("report_run_id")
}

// ChangeSet is what a target lacks of the store, read from one consistent snapshot. It
// holds a connection of the store until Commit or Close; read its tables' rows one table
// at a time.
type ChangeSet struct {
	Target  string
	StoreID string
	Full    bool
	// Serial is the number of this publish: the target records it, and Commit does.
	Serial int64
	Tables []*TableChange
	// Written sums runs.rows of the runs since the target's last publish: rows each
	// table was written by those runs (as the runs counted them), to set against Sent.
	Written map[string]int64
	// Runs are the ids of those runs.
	Runs []int64

	s           *Store
	conn        *sql.Conn
	run         int64
	whole       []string
	runID       int64 // the newest run, which every row of the snapshot is at most
	apiCallsPos int64
	schema      int
	mu          sync.Mutex
	done        bool
}

// Changes opens a snapshot of the store and describes what target lacks: everything
// when opts.Full is set, the target was never published to, or the store's schema
// changed since; else what changed since its last publish. It refuses while a run is
// still running: publish after a run's end (FinishRun), under the data directory's lock.
// The caller must Close the change set.
func (s *Store) Changes(ctx context.Context, target string, opts ChangeOptions) (cs *ChangeSet, err error) {
	if s.readOnly {
		return nil, errReadOnly
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading changes: %w", err)
	}
	cs = &ChangeSet{Target: target, s: s, conn: conn, run: opts.Run, whole: opts.Whole, Written: map[string]int64{}}
	defer func() {
		if err != nil {
			_ = cs.Close()
			cs = nil
		}
	}()
	// Text forms of times (in row fingerprints) must not depend on the machine's zone.
	if _, err := conn.ExecContext(ctx, "SET SESSION TimeZone = 'UTC'"); err != nil {
		return cs, fmt.Errorf("reading changes: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return cs, fmt.Errorf("reading changes: %w", err)
	}
	st, err := publishState(ctx, conn, target)
	if err != nil {
		return cs, err
	}
	cs.StoreID = st.StoreID
	cs.Serial = st.Serial + 1
	var running []int64
	if err := scanInts(ctx, conn, &running, `SELECT id FROM runs WHERE status = 'running' ORDER BY id`); err != nil {
		return cs, fmt.Errorf("reading runs: %w", err)
	}
	if len(running) > 0 {
		return cs, fmt.Errorf("run %d is still running: publish after it ended", running[0])
	}
	var maxRun, maxPos sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT max(id) FROM runs`).Scan(&maxRun); err != nil {
		return cs, fmt.Errorf("reading runs: %w", err)
	}
	if err := conn.QueryRowContext(ctx, `SELECT max(`+apiCallsPosition+`) FROM api_calls`).Scan(&maxPos); err != nil {
		return cs, fmt.Errorf("reading api_calls: %w", err)
	}
	cs.runID = maxRun.Int64
	tables, err := publishTables(ctx, conn)
	if err != nil {
		return cs, err
	}
	// Rows stamped with a run the runs table does not have (written outside a run, as
	// tests do) count as written by the newest run, or they would be sent every time.
	for _, t := range tables {
		for _, col := range []string{"run_id", "closed_run_id"} {
			if k := syncOf(t); (k == syncStamped || k == syncHistory || k == syncByRun) && t.has(col) {
				var m sql.NullInt64
				if err := conn.QueryRowContext(ctx, fmt.Sprintf(`SELECT max(%s) FROM %s`, QuoteIdent(col), QuoteIdent(t.Name))).Scan(&m); err != nil {
					return cs, fmt.Errorf("reading %s: %w", t.Name, err)
				}
				cs.runID = max(cs.runID, m.Int64)
			}
		}
	}
	cs.apiCallsPos = -1
	if maxPos.Valid {
		cs.apiCallsPos = maxPos.Int64
	}
	if err := conn.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&cs.schema); err != nil {
		return cs, fmt.Errorf("reading the schema version: %w", err)
	}
	cs.Full = opts.Full || !st.Found || st.StoreSchema != cs.schema || st.RunID > cs.runID || st.APICallsPos > cs.apiCallsPos
	since, pos := st.RunID, st.APICallsPos
	if cs.Full {
		since, pos = 0, -1
	}
	if err := cs.readWritten(ctx, since); err != nil {
		return cs, err
	}
	if _, err := conn.ExecContext(ctx, `CREATE OR REPLACE TEMP TABLE _publish_fp (table_name VARCHAR, key VARCHAR, fingerprint VARCHAR)`); err != nil {
		return cs, fmt.Errorf("reading changes: %w", err)
	}
	for _, t := range tables {
		whole, since, pos := cs.Full, since, pos
		if slices.Contains(cs.whole, t.Name) {
			// As in a full change set, for this table alone.
			whole, since, pos = true, 0, -1
		}
		tc, err := cs.tableChange(ctx, t, since, pos, whole)
		if err != nil {
			return cs, fmt.Errorf("reading changes of %s: %w", t.Name, err)
		}
		cs.Tables = append(cs.Tables, tc)
	}
	return cs, nil
}

// readWritten sums runs.rows of the runs after since.
func (cs *ChangeSet) readWritten(ctx context.Context, since int64) error {
	rows, err := cs.conn.QueryContext(ctx, `SELECT id, CAST(rows AS VARCHAR) FROM runs WHERE id > $1 ORDER BY id`, since)
	if err != nil {
		return fmt.Errorf("reading runs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var raw sql.NullString
		if err := rows.Scan(&id, &raw); err != nil {
			return fmt.Errorf("reading runs: %w", err)
		}
		cs.Runs = append(cs.Runs, id)
		var m map[string]int64
		if raw.Valid && json.Unmarshal([]byte(raw.String), &m) == nil {
			for t, n := range m {
				cs.Written[t] += n
			}
		}
	}
	return rows.Err()
}

func scanInts(ctx context.Context, q queryer, out *[]int64, query string, args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return err
		}
		*out = append(*out, v)
	}
	return rows.Err()
}

// PublishTables lists the tables a publish target copies (every base table but the
// store's bookkeeping), with their columns and keys, in name order. jobs has no primary
// key in the store (see 0001_core.sql) but a unique id, which is given as its key.
func (s *Store) PublishTables(ctx context.Context) ([]TableSchema, error) {
	return publishTables(ctx, s.db)
}

func publishTables(ctx context.Context, q queryer) ([]TableSchema, error) {
	rows, err := q.QueryContext(ctx, `
		SELECT c.table_name, c.column_name, c.data_type
		FROM duckdb_columns() c JOIN duckdb_tables() t
		  ON t.database_name = c.database_name AND t.schema_name = c.schema_name AND t.table_name = c.table_name
		WHERE c.database_name = current_database() AND c.schema_name = 'main' AND NOT t.temporary
		ORDER BY c.table_name, c.column_index`)
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	var out []TableSchema
	for rows.Next() {
		var t, c, typ string
		if err := rows.Scan(&t, &c, &typ); err != nil {
			rows.Close()
			return nil, fmt.Errorf("listing tables: %w", err)
		}
		if unpublished[t] {
			continue
		}
		if len(out) == 0 || out[len(out)-1].Name != t {
			out = append(out, TableSchema{Name: t})
		}
		out[len(out)-1].Columns = append(out[len(out)-1].Columns, ColumnSchema{Name: c, Type: typ})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	keys := map[string][]string{}
	krows, err := q.QueryContext(ctx, `
		SELECT table_name, CAST(to_json(constraint_column_names) AS VARCHAR) FROM duckdb_constraints()
		WHERE database_name = current_database() AND schema_name = 'main' AND constraint_type = 'PRIMARY KEY'`)
	if err != nil {
		return nil, fmt.Errorf("listing primary keys: %w", err)
	}
	for krows.Next() {
		var t, cols string
		if err := krows.Scan(&t, &cols); err != nil {
			krows.Close()
			return nil, fmt.Errorf("listing primary keys: %w", err)
		}
		var k []string
		if err := json.Unmarshal([]byte(cols), &k); err != nil {
			krows.Close()
			return nil, fmt.Errorf("primary key of %s: %w", t, err)
		}
		keys[t] = k
	}
	krows.Close()
	if err := krows.Err(); err != nil {
		return nil, fmt.Errorf("listing primary keys: %w", err)
	}
	for i := range out {
		out[i].Key = keys[out[i].Name]
		if out[i].Name == Jobs && len(out[i].Key) == 0 {
			out[i].Key = []string{"id"}
		}
	}
	return out, nil
}

// selectList is how each column is read: JSON and the types a target cannot take as Go
// values are read as text (see Rows).
func selectList(t TableSchema, alias string, override map[string]string) string {
	parts := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		expr := alias + QuoteIdent(c.Name)
		if o, ok := override[c.Name]; ok {
			expr = o
		}
		if readAsText(c.Type) {
			expr = "CAST(" + expr + " AS VARCHAR)"
		}
		parts[i] = expr + " AS " + QuoteIdent(c.Name)
	}
	return strings.Join(parts, ", ")
}

// readAsText tells whether values of a DuckDB type are read as their text: JSON (the
// target parses it), and everything that is not a plain scalar or a list of one.
func readAsText(typ string) bool {
	if elem, ok := strings.CutSuffix(typ, "[]"); ok {
		return !listElement[elem]
	}
	return !scalarTypes[typ]
}

var scalarTypes = map[string]bool{
	"BOOLEAN": true, "TINYINT": true, "SMALLINT": true, "INTEGER": true, "BIGINT": true,
	"UTINYINT": true, "USMALLINT": true, "UINTEGER": true, "FLOAT": true, "DOUBLE": true,
	"VARCHAR": true, "DATE": true, "TIMESTAMP": true, "TIMESTAMP WITH TIME ZONE": true,
}

var listElement = map[string]bool{
	"BOOLEAN": true, "SMALLINT": true, "INTEGER": true, "BIGINT": true, "DOUBLE": true, "VARCHAR": true,
}

// keyText is the text a row's key is remembered by: a JSON list of its columns as text.
func keyText(cols []string, alias string) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = "CAST(" + alias + QuoteIdent(c) + " AS VARCHAR)"
	}
	return "CAST(to_json([" + strings.Join(parts, ", ") + "]) AS VARCHAR)"
}

func (cs *ChangeSet) tableChange(ctx context.Context, t TableSchema, since, pos int64, full bool) (*TableChange, error) {
	tc := &TableChange{Table: t, sync: syncOf(t), Truncate: full}
	from := QuoteIdent(t.Name)
	all := fmt.Sprintf("SELECT %s FROM %s t", selectList(t, "t.", nil), from)
	switch tc.sync {
	case syncStamped:
		tc.Upsert = !full
		tc.rowsQuery, tc.rowsArgs = all+" WHERE t.run_id > $1", []any{since}
	case syncHistory:
		if !full {
			key := append(slices.Clone(entities[strings.TrimSuffix(t.Name, "_history")].keys), "run_id")
			tc.Replace = Replacement{Columns: key, OnlyIf: "is_current"}
		}
		tc.rowsQuery, tc.rowsArgs = all+" WHERE t.run_id > $1 OR t.closed_run_id > $1", []any{since}
	case syncByRun:
		tc.rowsQuery, tc.rowsArgs = all+" WHERE t.run_id > $1", []any{since}
	case syncAppend:
		tc.rowsQuery = all + " WHERE t." + apiCallsPosition + " > $1 AND t." + apiCallsPosition + " <= $2"
		tc.rowsArgs = []any{pos, cs.apiCallsPos}
	case syncReport:
		return tc, cs.reportChange(ctx, tc, full)
	case syncHashed:
		return tc, cs.hashedChange(ctx, tc, full)
	case syncWhole:
		tc.Truncate = true
		tc.rowsQuery = all
	}
	if full {
		tc.rowsQuery, tc.rowsArgs = all, nil
	}
	return tc, nil
}

// hashedChange fingerprints every row of a keyed table without row stamps and compares
// the fingerprints with those the target was sent.
func (cs *ChangeSet) hashedChange(ctx context.Context, tc *TableChange, full bool) error {
	t := tc.Table
	var override map[string]string
	if t.Name == "runs" && cs.run != 0 && t.has("publish_status") && t.has("publish_error") {
		override = map[string]string{
			"publish_status": fmt.Sprintf("CASE WHEN t.id = %d THEN 'ok' ELSE t.publish_status END", cs.run),
			"publish_error":  fmt.Sprintf("CASE WHEN t.id = %d THEN NULL ELSE t.publish_error END", cs.run),
		}
	}
	// Rows are fingerprinted as read (JSON as text): p is the row a target gets.
	projected := fmt.Sprintf("(SELECT %s FROM %s t)", selectList(t, "t.", override), QuoteIdent(t.Name))
	if _, err := cs.conn.ExecContext(ctx, fmt.Sprintf(
		`INSERT INTO _publish_fp SELECT $1, %s, md5(CAST(p AS VARCHAR)) FROM %s p`, keyText(t.Key, "p."), projected), t.Name); err != nil {
		return fmt.Errorf("fingerprinting rows: %w", err)
	}
	cols := make([]string, len(t.Columns))
	for i, c := range t.Columns {
		cols[i] = "p." + QuoteIdent(c.Name)
	}
	tc.rowsQuery = fmt.Sprintf(`SELECT %s FROM %s p`, strings.Join(cols, ", "), projected)
	if full {
		return nil
	}
	tc.Upsert = true
	tc.rowsQuery += fmt.Sprintf(` WHERE NOT EXISTS (SELECT 1 FROM publish_rows r WHERE r.target = $1 AND r.table_name = $2
		AND r.key = %s AND r.fingerprint = md5(CAST(p AS VARCHAR)))`, keyText(t.Key, "p."))
	tc.rowsArgs = []any{cs.Target, t.Name}
	gone, err := cs.goneKeys(ctx, t.Name)
	if err != nil {
		return err
	}
	tc.Delete = Deletion{Columns: t.Key, Keys: gone}
	return nil
}

// reportChange counts each report run's rows in a report table and compares the counts
// with those the target was sent: a report run with another count, or gone, has its rows
// replaced.
func (cs *ChangeSet) reportChange(ctx context.Context, tc *TableChange, full bool) error {
	t := tc.Table
	if _, err := cs.conn.ExecContext(ctx, fmt.Sprintf(
		`INSERT INTO _publish_fp SELECT $1, %s, CAST(count(*) AS VARCHAR) FROM %s t GROUP BY t.report_run_id`,
		keyText([]string{"report_run_id"}, "t."), QuoteIdent(t.Name)), t.Name); err != nil {
		return fmt.Errorf("counting rows per report run: %w", err)
	}
	all := fmt.Sprintf("SELECT %s FROM %s t", selectList(t, "t.", nil), QuoteIdent(t.Name))
	tc.rowsQuery = all
	if full {
		return nil
	}
	var changed [][]string
	rows, err := cs.conn.QueryContext(ctx, `SELECT f.key FROM _publish_fp f WHERE f.table_name = $2 AND NOT EXISTS (
		SELECT 1 FROM publish_rows r WHERE r.target = $1 AND r.table_name = $2 AND r.key = f.key AND r.fingerprint = f.fingerprint)`,
		cs.Target, t.Name)
	if err != nil {
		return fmt.Errorf("comparing report runs: %w", err)
	}
	if err := scanKeys(rows, &changed); err != nil {
		return fmt.Errorf("comparing report runs: %w", err)
	}
	gone, err := cs.goneKeys(ctx, t.Name)
	if err != nil {
		return err
	}
	tc.Delete = Deletion{Columns: []string{"report_run_id"}, Keys: append(slices.Clone(changed), gone...)}
	ids := make([]string, 0, len(changed))
	for _, k := range changed {
		id, err := strconv.ParseInt(k[0], 10, 64)
		if err != nil {
			return fmt.Errorf("report run id %q: %w", k[0], err)
		}
		ids = append(ids, strconv.FormatInt(id, 10))
	}
	if len(ids) == 0 {
		tc.rowsQuery = all + " WHERE false"
	} else {
		tc.rowsQuery = all + " WHERE t.report_run_id IN (" + strings.Join(ids, ", ") + ")"
	}
	return nil
}

// goneKeys are the keys of table's rows the target was sent that the store no longer has.
func (cs *ChangeSet) goneKeys(ctx context.Context, table string) ([][]string, error) {
	rows, err := cs.conn.QueryContext(ctx, `SELECT r.key FROM publish_rows r WHERE r.target = $1 AND r.table_name = $2
		AND NOT EXISTS (SELECT 1 FROM _publish_fp f WHERE f.table_name = $2 AND f.key = r.key) ORDER BY r.key`, cs.Target, table)
	if err != nil {
		return nil, fmt.Errorf("finding deleted rows: %w", err)
	}
	var out [][]string
	if err := scanKeys(rows, &out); err != nil {
		return nil, fmt.Errorf("finding deleted rows: %w", err)
	}
	return out, nil
}

func scanKeys(rows *sql.Rows, out *[][]string) error {
	defer rows.Close()
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return err
		}
		var parts []string
		if err := json.Unmarshal([]byte(k), &parts); err != nil {
			return fmt.Errorf("key %s: %w", k, err)
		}
		*out = append(*out, parts)
	}
	return rows.Err()
}

// Rows streams the rows of tc, each as the values of tc.Table's columns: int64, int32,
// int16, int8, uint8, uint16, uint32, float64, float32, bool, string, time.Time (dates at
// midnight UTC), []int64, []int32, []int16, []float64, []bool, []string, or nil. JSON
// and every other type come as their text. It implements pgx's CopyFromSource. Read one
// table's rows at a time and Close them before the next.
func (cs *ChangeSet) Rows(ctx context.Context, tc *TableChange) (*Rows, error) {
	if tc.rowsQuery == "" {
		return &Rows{done: true}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	r := &Rows{tc: tc, batches: make(chan [][]any, 4), cancel: cancel, finished: make(chan struct{})}
	rows, err := cs.conn.QueryContext(ctx, tc.rowsQuery, tc.rowsArgs...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("reading %s: %w", tc.Table.Name, err)
	}
	go r.produce(rows, len(tc.Table.Columns))
	return r, nil
}

// Rows reads a table's changed rows in a goroutine of its own, a batch ahead of the
// consumer, so that reading DuckDB and writing the target overlap.
type Rows struct {
	tc       *TableChange
	batches  chan [][]any
	cancel   context.CancelFunc
	finished chan struct{}
	err      error // set by produce before finished closes
	cur      [][]any
	i        int
	done     bool
	closed   bool
}

const rowsBatch = 512

func (r *Rows) produce(rows *sql.Rows, ncol int) {
	defer close(r.finished)
	defer close(r.batches)
	defer rows.Close()
	types := r.tc.Table.Columns
	batch := make([][]any, 0, rowsBatch)
	ptrs := make([]any, ncol)
	for rows.Next() {
		vals := make([]any, ncol)
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			r.err = fmt.Errorf("reading %s: %w", r.tc.Table.Name, err)
			return
		}
		for i, v := range vals {
			if l, ok := v.([]any); ok {
				conv, err := typedList(l, types[i].Type)
				if err != nil {
					r.err = fmt.Errorf("reading %s.%s: %w", r.tc.Table.Name, types[i].Name, err)
					return
				}
				vals[i] = conv
			}
		}
		batch = append(batch, vals)
		if len(batch) == rowsBatch {
			r.batches <- batch
			batch = make([][]any, 0, rowsBatch)
		}
	}
	if err := rows.Err(); err != nil {
		r.err = fmt.Errorf("reading %s: %w", r.tc.Table.Name, err)
		return
	}
	if len(batch) > 0 {
		r.batches <- batch
	}
}

// typedList turns a DuckDB list into a slice of its element type.
func typedList(l []any, typ string) (any, error) {
	elem := strings.TrimSuffix(typ, "[]")
	switch elem {
	case "BIGINT":
		return convertList[int64](l)
	case "INTEGER":
		return convertList[int32](l)
	case "SMALLINT":
		return convertList[int16](l)
	case "DOUBLE":
		return convertList[float64](l)
	case "BOOLEAN":
		return convertList[bool](l)
	case "VARCHAR":
		return convertList[string](l)
	}
	return nil, fmt.Errorf("unexpected list of %s", elem)
}

func convertList[T any](l []any) ([]T, error) {
	out := make([]T, len(l))
	for i, v := range l {
		t, ok := v.(T)
		if !ok {
			return nil, fmt.Errorf("list element %d is %T, not %T", i, v, out[0])
		}
		out[i] = t
	}
	return out, nil
}

// Next advances to the next row; false at the end or on an error (see Err).
func (r *Rows) Next() bool {
	if r.done {
		return false
	}
	r.i++
	for r.i >= len(r.cur) {
		b, ok := <-r.batches
		if !ok {
			r.done = true
			return false
		}
		r.cur, r.i = b, 0
	}
	r.tc.sent++
	return true
}

// Values returns the current row.
func (r *Rows) Values() ([]any, error) { return r.cur[r.i], nil }

// Err returns what stopped the rows early, if anything.
func (r *Rows) Err() error {
	if !r.done || r.finished == nil {
		return nil
	}
	<-r.finished
	return r.err
}

// Close stops reading and waits for the reader to let go of the store's connection.
// Calling it again does nothing.
func (r *Rows) Close() {
	if r.closed || r.finished == nil {
		r.closed = true
		return
	}
	r.closed = true
	r.cancel()
	for range r.batches { // let produce finish a pending send
	}
	<-r.finished
}

// Commit records in the store that the target now holds this change set: its publish
// state and the fingerprints of its rows, and, when the change set was made for a run,
// that run's publish as ok. Call it once the target committed; the change set is closed
// afterwards. If it fails, the target is ahead of the store's record of it, and the next
// change set for it is a full one (the target's serial no longer matches).
func (cs *ChangeSet) Commit(ctx context.Context) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.done {
		return errors.New("committing a publish: the change set is closed")
	}
	err := cs.commit(ctx)
	cs.close()
	if err != nil {
		return fmt.Errorf("recording the publish to %s in the store: %w", cs.Target, err)
	}
	return nil
}

func (cs *ChangeSet) commit(ctx context.Context) error {
	c := cs.conn
	// The read transaction ends; the fingerprints in the temporary table stay.
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		return err
	}
	if _, err := c.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return err
	}
	err := func() error {
		now := cs.s.clock.Now().UTC()
		if _, err := c.ExecContext(ctx, `INSERT INTO publish_state (target, serial, run_id, api_calls_pos, store_schema, published_at)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (target) DO UPDATE SET serial = excluded.serial, run_id = excluded.run_id,
			api_calls_pos = excluded.api_calls_pos, store_schema = excluded.store_schema, published_at = excluded.published_at`,
			cs.Target, cs.Serial, cs.runID, cs.apiCallsPos, cs.schema, now); err != nil {
			return err
		}
		// Only the fingerprints that changed are rewritten.
		if _, err := c.ExecContext(ctx, `DELETE FROM publish_rows r WHERE r.target = $1 AND NOT EXISTS (
			SELECT 1 FROM _publish_fp f WHERE f.table_name = r.table_name AND f.key = r.key AND f.fingerprint = r.fingerprint)`,
			cs.Target); err != nil {
			return err
		}
		if _, err := c.ExecContext(ctx, `INSERT INTO publish_rows (target, table_name, key, fingerprint)
			SELECT $1, f.table_name, f.key, f.fingerprint FROM _publish_fp f WHERE NOT EXISTS (
			SELECT 1 FROM publish_rows r WHERE r.target = $1 AND r.table_name = f.table_name AND r.key = f.key)`,
			cs.Target); err != nil {
			return err
		}
		if cs.run != 0 {
			if _, err := c.ExecContext(ctx, `UPDATE runs SET publish_status = 'ok', publish_error = NULL WHERE id = $1`, cs.run); err != nil {
				return err
			}
		}
		return nil
	}()
	if err != nil {
		_, _ = c.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		return err
	}
	_, err = c.ExecContext(ctx, "COMMIT")
	return err
}

// Close ends the snapshot and lets go of the store's connection. Calling it again, or
// after Commit, does nothing.
func (cs *ChangeSet) Close() error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.close()
}

func (cs *ChangeSet) close() error {
	if cs.done {
		return nil
	}
	cs.done = true
	ctx := context.Background()
	_, _ = cs.conn.ExecContext(ctx, "ROLLBACK")
	_, _ = cs.conn.ExecContext(ctx, "DROP TABLE IF EXISTS temp._publish_fp")
	_, _ = cs.conn.ExecContext(ctx, "RESET SESSION TimeZone")
	return cs.conn.Close()
}

// Publish statuses of a run (runs.publish_status).
const (
	PublishOK      = "ok"
	PublishFailed  = "failed"
	PublishSkipped = "skipped" // nothing to publish to
)

// RecordPublish records how publishing after a run went on its runs row: status is
// PublishOK, PublishFailed or PublishSkipped, and errText why it failed (it must hold no
// secret: pass an error from postgres.Publish, which holds none). A successful
// postgres.Publish for a run records ok itself.
func (s *Store) RecordPublish(ctx context.Context, runID int64, status, errText string) error {
	if s.readOnly {
		return errReadOnly
	}
	switch status {
	case PublishOK, PublishFailed, PublishSkipped:
	default:
		return fmt.Errorf("recording the publish of run %d: unknown status %q", runID, status)
	}
	var e any
	if errText != "" {
		e = errText
	}
	res, err := s.db.ExecContext(ctx, `UPDATE runs SET publish_status = $2, publish_error = $3 WHERE id = $1`, runID, status, e)
	if err != nil {
		return fmt.Errorf("recording the publish of run %d: %w", runID, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("recording the publish of run %d: no such run", runID)
	}
	return nil
}
