package postgres

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drextract/drextract/catalog"
	"github.com/drextract/drextract/load"
)

// DefaultSchema is the schema published to when the configuration names none.
const DefaultSchema = "datorama"

// LayoutVersion is the version of drextract's PostgreSQL layout beyond the store's own
// tables: the drextract_publish table and how the views and comments are made. A schema
// whose layout is newer is refused, as is one whose tables follow a newer store schema.
const LayoutVersion = 1

// MetaTable is the one-row table in the published schema that records the publish.
const MetaTable = "drextract_publish"

// defaultConnectTimeout bounds connecting when the DSN sets no connect_timeout, so a
// host that drops packets cannot hang a run.
const defaultConnectTimeout = 30 * time.Second

// Target is where to publish: a DSN (a libpq URL or key=value string; a secret) and a
// schema. The usual libpq settings apply (sslmode, the PG* environment variables,
// ~/.pgpass).
type Target struct {
	DSN    string
	Schema string // DefaultSchema when empty
}

// String names the target without its secret.
func (t Target) String() string { return "PostgreSQL target (DSN not shown)" }

// GoString names the target without its secret.
func (t Target) GoString() string { return t.String() }

// Options say how to publish.
type Options struct {
	// Full rewrites every table instead of sending what changed.
	Full bool
	// Run, when not 0, is the run this publish follows: on success its runs row records
	// publish_status ok, in PostgreSQL and in the store.
	Run    int64
	Logger *slog.Logger
}

// Stats describe one publish.
type Stats struct {
	Target   string // "postgres:SCHEMA@pg_xxxxxxxx": the schema and a fingerprint of the server
	Schema   string
	Full     bool
	Serial   int64   // the publish's number
	Runs     []int64 // the runs whose rows it carried (all runs for a full publish)
	Tables   []TableStats
	Duration time.Duration
}

// TableStats describe one table of a publish.
type TableStats struct {
	Table   string
	Sent    int64 // rows sent (COPY)
	Deleted int64 // rows deleted or replaced at the target
	// Written is the rows the runs since the previous publish recorded writing to the
	// table (runs.rows): what Sent is to be compared with.
	Written  int64
	Duration time.Duration // reading the store and writing PostgreSQL
}

// Sent is the rows sent over all tables.
func (s Stats) Sent() int64 {
	var n int64
	for _, t := range s.Tables {
		n += t.Sent
	}
	return n
}

// Table returns the stats of one table (zero when it is not there).
func (s Stats) Table(name string) TableStats {
	for _, t := range s.Tables {
		if t.Table == name {
			return t
		}
	}
	return TableStats{Table: name}
}

// Error is a failed publish: the step that failed and why, scrubbed of the DSN and its
// password. errors.Is sees through it to the cause (context.Canceled, …), but its text
// never holds the cause's own.
type Error struct {
	Target string
	Step   string
	msg    string
	cause  error
}

func (e *Error) Error() string {
	return fmt.Sprintf("publishing to %s: %s: %s", e.Target, e.Step, e.msg)
}

// Is reports whether the cause is target.
func (e *Error) Is(target error) bool { return errors.Is(e.cause, target) }

// ErrSchemaTooNew is matched by errors.Is when the schema was written by a newer
// drextract.
var ErrSchemaTooNew = errors.New("the PostgreSQL schema was written by a newer drextract")

// ErrOtherStore is matched by errors.Is when the schema holds another store's data.
var ErrOtherStore = errors.New("the PostgreSQL schema holds another store's data")

var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// ValidSchema tells whether name can be a published schema: lower-case letters, digits
// and _, not starting with a digit, at most 63 characters, not a system schema.
func ValidSchema(name string) bool {
	return schemaRE.MatchString(name) && !strings.HasPrefix(name, "pg_") && name != "information_schema"
}

// Publish sends to the target what it lacks of the store, in one PostgreSQL transaction,
// and then records in the store how far the target has got. It must run after a run's
// end, never during one (load.Store.Changes refuses). The error, if any, is an *Error;
// the store's data is never changed by a failure (the caller records it on the run:
// load.Store.RecordPublish).
func Publish(ctx context.Context, store *load.Store, t Target, opts Options) (Stats, error) {
	start := time.Now()
	if t.Schema == "" {
		t.Schema = DefaultSchema
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "postgres")
	p := &publisher{store: store, schema: t.Schema, opts: opts, log: log}
	stats := Stats{Schema: t.Schema, Target: "postgres:" + t.Schema}
	if !ValidSchema(t.Schema) {
		return stats, p.fail("checking the schema name", fmt.Errorf("%q is not a schema name drextract publishes to: use lower-case letters, digits and _", t.Schema))
	}
	cfg, err := pgx.ParseConfig(t.DSN)
	if err != nil {
		// pgx's message quotes the DSN (with a best-effort redaction): say less.
		return stats, p.fail("reading the DSN", errors.New("not a libpq URL (postgres://…) or key=value connection string; check the host, the port and the percent-encoding of special characters"))
	}
	p.secrets = secretsOf(t.DSN, cfg)
	p.target = "postgres:" + t.Schema + "@" + serverFingerprint(cfg)
	stats.Target = p.target
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = defaultConnectTimeout
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "drextract"
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return stats, p.fail("connecting", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	p.conn = conn
	if err := p.run(ctx, &stats); err != nil {
		return stats, err
	}
	stats.Duration = time.Since(start)
	log.Info("published", "target", p.target, "full", stats.Full, "serial", stats.Serial,
		"rows", stats.Sent(), "runs", len(stats.Runs), "duration", stats.Duration)
	return stats, nil
}

// serverFingerprint names the server, database and user of a DSN without showing them.
func serverFingerprint(cfg *pgx.ConnConfig) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%s\x00%s", cfg.Host, cfg.Port, cfg.Database, cfg.User)))
	return "pg_" + hex.EncodeToString(sum[:4])
}

// Secrets lists what of dsn must never appear in a message (the DSN itself and the
// passwords it leads to), for other scrubbers (notifications); a DSN that does not parse
// yields itself alone.
func Secrets(dsn string) []string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return []string{dsn}
	}
	return secretsOf(dsn, cfg)
}

// secretsOf lists what must never appear in a message: the DSN and every password it
// leads to (its own, a fallback's, one from ~/.pgpass).
func secretsOf(dsn string, cfg *pgx.ConnConfig) []string {
	out := []string{dsn}
	if cfg.Password != "" {
		out = append(out, cfg.Password)
	}
	// Longest first, so a password inside the DSN is not half-replaced.
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

type publisher struct {
	store   *load.Store
	conn    *pgx.Conn
	schema  string
	target  string
	opts    Options
	log     *slog.Logger
	secrets []string
}

// fail makes the *Error for a failed step, scrubbed of the secrets.
func (p *publisher) fail(step string, err error) error {
	target := p.target
	if target == "" {
		target = "postgres:" + p.schema
	}
	return &Error{Target: target, Step: step, msg: p.scrub(err.Error()), cause: err}
}

func (p *publisher) scrub(s string) string {
	for _, sec := range p.secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "***")
		}
	}
	return s
}

// meta is the drextract_publish row.
type meta struct {
	found       bool
	layout      int
	storeSchema int
	storeID     string
	serial      int64
	viewsMD5    string
	commentsMD5 string
}

func (p *publisher) run(ctx context.Context, stats *Stats) (err error) {
	st, err := p.store.PublishState(ctx, p.target)
	if err != nil {
		return p.fail("reading the store's publish state", err)
	}
	tx, err := p.conn.Begin(ctx)
	if err != nil {
		return p.fail("beginning a transaction", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	m, err := p.prepareSchema(ctx, tx)
	if err != nil {
		return err
	}
	if m.found && m.storeID != st.StoreID {
		return p.fail("checking the schema", fmt.Errorf("%w: schema %s was published from another drextract store (id %s, this one is %s); give each store its own schema (publish.postgres.schema)",
			ErrOtherStore, p.schema, m.storeID, st.StoreID))
	}
	full := p.opts.Full || !m.found || !st.Found || m.serial != st.Serial
	if !full && m.storeSchema != load.KnownSchemaVersion() {
		full = true
	}
	tables, err := p.store.PublishTables(ctx)
	if err != nil {
		return p.fail("reading the store's tables", err)
	}
	created, changedSchema, err := p.syncTables(ctx, tx, tables)
	if err != nil {
		return err
	}
	// A table made just now holds nothing yet (new, or dropped at the target): it is
	// sent whole, whatever the rest gets.
	cs, err := p.store.Changes(ctx, p.target, load.ChangeOptions{Full: full, Run: p.opts.Run, Whole: created})
	if err != nil {
		return p.fail("reading the store's changes", err)
	}
	defer cs.Close()
	stats.Full, stats.Serial, stats.Runs = cs.Full, cs.Serial, cs.Runs
	if cs.Full && !full {
		p.log.Info("publishing everything: the store's schema changed, or it has no record of this target", "target", p.target)
	}
	if err := sameTables(tables, cs.Tables); err != nil {
		return p.fail("reading the store's changes", err)
	}
	if cs.Full {
		if err := p.truncate(ctx, tx, cs.Tables); err != nil {
			return err
		}
	}
	for _, tc := range cs.Tables {
		ts, err := p.apply(ctx, tx, cs, tc)
		if err != nil {
			return err
		}
		ts.Written = cs.Written[tc.Table.Name]
		stats.Tables = append(stats.Tables, ts)
	}
	viewsMD5, err := p.syncViews(ctx, tx, m, changedSchema || cs.Full)
	if err != nil {
		return err
	}
	commentsMD5, err := p.syncComments(ctx, tx, cs.Tables, m)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.%s (singleton, layout, store_schema, store_id, serial, published_at, views_md5, comments_md5)
		VALUES (true, $1, $2, $3, $4, now(), $5, $6)
		ON CONFLICT (singleton) DO UPDATE SET layout = excluded.layout, store_schema = excluded.store_schema,
		  store_id = excluded.store_id, serial = excluded.serial, published_at = excluded.published_at,
		  views_md5 = excluded.views_md5, comments_md5 = excluded.comments_md5`, load.QuoteIdent(p.schema), MetaTable),
		LayoutVersion, load.KnownSchemaVersion(), st.StoreID, cs.Serial, viewsMD5, commentsMD5); err != nil {
		return p.fail("recording the publish", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return p.fail("committing", err)
	}
	if err := cs.Commit(ctx); err != nil {
		// PostgreSQL has the data; the store lost track, so the next publish is a full one.
		p.log.Error("recording the publish in the store; the next publish will send everything", "target", p.target, "err", err)
		return p.fail("recording the publish in the store", err)
	}
	return nil
}

// prepareSchema creates the schema and its drextract_publish table when missing, takes
// the schema's publish lock for the transaction and reads the row, refusing a schema a
// newer drextract wrote.
func (p *publisher) prepareSchema(ctx context.Context, tx pgx.Tx) (meta, error) {
	var m meta
	q := load.QuoteIdent(p.schema)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('drextract publish ' || $1))`, p.schema); err != nil {
		return m, p.fail("locking the schema", err)
	}
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, p.schema).Scan(&exists); err != nil {
		return m, p.fail("looking for the schema", err)
	}
	if !exists {
		if _, err := tx.Exec(ctx, "CREATE SCHEMA "+q); err != nil {
			return m, p.fail("creating the schema", err)
		}
	}
	// Unqualified names (the views' SQL, the staging tables) resolve in the schema;
	// pg_catalog is always searched first.
	if _, err := tx.Exec(ctx, "SET LOCAL search_path TO "+q); err != nil {
		return m, p.fail("selecting the schema", err)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.%s (
		singleton    boolean PRIMARY KEY DEFAULT true CHECK (singleton),
		layout       integer NOT NULL,
		store_schema integer NOT NULL,
		store_id     text NOT NULL,
		serial       bigint NOT NULL,
		published_at timestamptz NOT NULL,
		views_md5    text,
		comments_md5 text)`, q, MetaTable)); err != nil {
		return m, p.fail("creating "+MetaTable, err)
	}
	var views, comments *string
	err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT layout, store_schema, store_id, serial, views_md5, comments_md5 FROM %s.%s FOR UPDATE`, q, MetaTable)).
		Scan(&m.layout, &m.storeSchema, &m.storeID, &m.serial, &views, &comments)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return m, nil
	case err != nil:
		return m, p.fail("reading "+MetaTable, err)
	}
	m.found = true
	if views != nil {
		m.viewsMD5 = *views
	}
	if comments != nil {
		m.commentsMD5 = *comments
	}
	if m.layout > LayoutVersion || m.storeSchema > load.KnownSchemaVersion() {
		return m, p.fail("checking the schema", fmt.Errorf("%w: schema %s has layout %d and store schema %04d, this drextract knows layout %d and store schema %04d: upgrade drextract",
			ErrSchemaTooNew, p.schema, m.layout, m.storeSchema, LayoutVersion, load.KnownSchemaVersion()))
	}
	return m, nil
}

// pgColumn is a column of a table in PostgreSQL.
type pgColumn struct{ name, typ string }

// sameTables makes sure the change set covers the tables the schema was made for: the
// store's schema does not change while a publish runs (it holds the writer's lock).
func sameTables(tables []load.TableSchema, changes []*load.TableChange) error {
	if len(tables) != len(changes) {
		return fmt.Errorf("the store's tables changed during the publish")
	}
	for i, t := range tables {
		c := changes[i].Table
		if c.Name != t.Name || len(c.Columns) != len(t.Columns) {
			return fmt.Errorf("the store's table %s changed during the publish", t.Name)
		}
	}
	return nil
}

// syncTables creates the tables the schema lacks, adds the columns its tables lack and
// changes the type of those whose type changed in the store (report tables widen BIGINT
// to DOUBLE). Nothing is dropped. It returns the tables it created and whether it
// changed anything.
func (p *publisher) syncTables(ctx context.Context, tx pgx.Tx, tables []load.TableSchema) (created []string, changed bool, err error) {
	rows, err := tx.Query(ctx, `
		SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY c.relname, a.attnum`, p.schema)
	if err != nil {
		return nil, false, p.fail("reading the schema's tables", err)
	}
	have := map[string][]pgColumn{}
	for rows.Next() {
		var t, c, typ string
		if err := rows.Scan(&t, &c, &typ); err != nil {
			rows.Close()
			return nil, false, p.fail("reading the schema's tables", err)
		}
		have[t] = append(have[t], pgColumn{c, typ})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, p.fail("reading the schema's tables", err)
	}
	q := load.QuoteIdent(p.schema)
	for _, t := range tables {
		name := q + "." + load.QuoteIdent(t.Name)
		cols, ok := have[t.Name]
		if !ok {
			defs := make([]string, 0, len(t.Columns)+1)
			for _, c := range t.Columns {
				defs = append(defs, load.QuoteIdent(c.Name)+" "+pgType(c.Type))
			}
			if len(t.Key) > 0 {
				defs = append(defs, "PRIMARY KEY ("+identList(t.Key)+")")
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (\n  %s)", name, strings.Join(defs, ",\n  "))); err != nil {
				return created, changed, p.fail("creating table "+t.Name, err)
			}
			changed = true
			created = append(created, t.Name)
			p.log.Info("created table", "table", t.Name, "schema", p.schema)
			continue
		}
		byName := map[string]string{}
		for _, c := range cols {
			byName[c.name] = c.typ
		}
		for _, c := range t.Columns {
			want := pgType(c.Type)
			got, ok := byName[c.Name]
			switch {
			case !ok:
				if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", name, load.QuoteIdent(c.Name), want)); err != nil {
					return created, changed, p.fail(fmt.Sprintf("adding column %s to %s", c.Name, t.Name), err)
				}
				changed = true
				p.log.Info("added column", "table", t.Name, "column", c.Name, "schema", p.schema)
			case got != want:
				if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ALTER COLUMN %s TYPE %s USING %s::%s",
					name, load.QuoteIdent(c.Name), want, load.QuoteIdent(c.Name), want)); err != nil {
					return created, changed, p.fail(fmt.Sprintf("changing column %s of %s from %s to %s", c.Name, t.Name, got, want), err)
				}
				changed = true
				p.log.Info("changed column type", "table", t.Name, "column", c.Name, "from", got, "to", want)
			}
		}
	}
	return created, changed, nil
}

func identList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = load.QuoteIdent(c)
	}
	return strings.Join(q, ", ")
}

// truncate empties every published table, for a full publish.
func (p *publisher) truncate(ctx context.Context, tx pgx.Tx, tables []*load.TableChange) error {
	names := make([]string, len(tables))
	for i, tc := range tables {
		names[i] = load.QuoteIdent(p.schema) + "." + load.QuoteIdent(tc.Table.Name)
	}
	if len(names) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, "TRUNCATE "+strings.Join(names, ", ")); err != nil {
		return p.fail("emptying the tables for a full publish", err)
	}
	return nil
}

// apply carries out one table's change.
func (p *publisher) apply(ctx context.Context, tx pgx.Tx, cs *load.ChangeSet, tc *load.TableChange) (ts TableStats, err error) {
	t := tc.Table
	ts = TableStats{Table: t.Name}
	start := time.Now()
	defer func() { ts.Sent, ts.Duration = tc.Sent(), time.Since(start) }()
	name := load.QuoteIdent(p.schema) + "." + load.QuoteIdent(t.Name)
	step := func(what string) string { return what + " " + t.Name }
	if tc.Truncate && !cs.Full {
		tag, err := tx.Exec(ctx, "DELETE FROM "+name)
		if err != nil {
			return ts, p.fail(step("emptying"), err)
		}
		ts.Deleted += tag.RowsAffected()
	}
	if len(tc.Delete.Keys) > 0 {
		n, err := p.deleteKeys(ctx, tx, t, tc.Delete)
		if err != nil {
			return ts, p.fail(step("deleting rows of"), err)
		}
		ts.Deleted += n
	}
	rows, err := cs.Rows(ctx, tc)
	if err != nil {
		return ts, p.fail(step("reading"), err)
	}
	defer rows.Close()
	src, ok, err := p.source(rows, t)
	if err != nil {
		return ts, p.fail(step("reading"), err)
	}
	if !ok {
		return ts, nil // nothing to write
	}
	cols := t.ColumnNames()
	if !tc.Upsert && tc.Replace.Columns == nil {
		// Appended, or a table emptied above: straight into it. A full publish loads
		// a big table faster without its primary key, which is built again after.
		dropped := false
		if cs.Full && len(t.Key) > 0 {
			dropped = p.dropKey(ctx, tx, t)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{p.schema, t.Name}, cols, src); err != nil {
			return ts, p.fail(step("copying rows into"), err)
		}
		if dropped {
			if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s PRIMARY KEY (%s)",
				name, load.QuoteIdent(t.Name+"_pkey"), identList(t.Key))); err != nil {
				return ts, p.fail(step("restoring the primary key of"), err)
			}
		}
		return ts, nil
	}
	// Rows that replace others go through a staging table and one statement.
	stg := load.QuoteIdent("_drx_stg_" + t.Name)
	if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE TEMP TABLE %s (LIKE %s) ON COMMIT DROP", stg, name)); err != nil {
		return ts, p.fail(step("staging rows of"), err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"_drx_stg_" + t.Name}, cols, src); err != nil {
		return ts, p.fail(step("copying rows of"), err)
	}
	if r := tc.Replace; r.Columns != nil {
		conds := make([]string, 0, len(r.Columns)+1)
		for _, c := range r.Columns {
			conds = append(conds, fmt.Sprintf("t.%s = s.%s", load.QuoteIdent(c), load.QuoteIdent(c)))
		}
		if r.OnlyIf != "" {
			conds = append(conds, "t."+load.QuoteIdent(r.OnlyIf))
		}
		tag, err := tx.Exec(ctx, fmt.Sprintf("DELETE FROM %s t USING %s s WHERE %s", name, stg, strings.Join(conds, " AND ")))
		if err != nil {
			return ts, p.fail(step("replacing rows of"), err)
		}
		ts.Deleted += tag.RowsAffected()
	}
	insert := fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s", name, identList(cols), identList(cols), stg)
	if tc.Upsert {
		var set []string
		for _, c := range cols {
			if !contains(t.Key, c) {
				set = append(set, fmt.Sprintf("%s = excluded.%s", load.QuoteIdent(c), load.QuoteIdent(c)))
			}
		}
		if len(set) == 0 {
			insert += " ON CONFLICT (" + identList(t.Key) + ") DO NOTHING"
		} else {
			insert += " ON CONFLICT (" + identList(t.Key) + ") DO UPDATE SET " + strings.Join(set, ", ")
		}
	}
	if _, err := tx.Exec(ctx, insert); err != nil {
		return ts, p.fail(step("merging rows into"), err)
	}
	if _, err := tx.Exec(ctx, "DROP TABLE "+stg); err != nil {
		return ts, p.fail(step("dropping the staging table of"), err)
	}
	return ts, nil
}

// dropKey drops t's primary key for a bulk load and reports whether it did; a key other
// objects depend on stays.
func (p *publisher) dropKey(ctx context.Context, tx pgx.Tx, t load.TableSchema) bool {
	var name string
	err := tx.QueryRow(ctx, `SELECT con.conname FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relname = $2 AND con.contype = 'p'`,
		p.schema, t.Name).Scan(&name)
	if err != nil {
		return false
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return false
	}
	if _, err := sp.Exec(ctx, fmt.Sprintf("ALTER TABLE %s.%s DROP CONSTRAINT %s", load.QuoteIdent(p.schema), load.QuoteIdent(t.Name), load.QuoteIdent(name))); err != nil {
		_ = sp.Rollback(ctx)
		return false
	}
	return sp.Commit(ctx) == nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// deleteKeys deletes the rows whose columns equal one of the keys (given as text).
func (p *publisher) deleteKeys(ctx context.Context, tx pgx.Tx, t load.TableSchema, d load.Deletion) (int64, error) {
	types := map[string]string{}
	for _, c := range t.Columns {
		types[c.Name] = pgType(c.Type)
	}
	defs := make([]string, len(d.Columns))
	conds := make([]string, len(d.Columns))
	for i, c := range d.Columns {
		defs[i] = load.QuoteIdent(c) + " text"
		conds[i] = fmt.Sprintf("t.%s = CAST(k.%s AS %s)", load.QuoteIdent(c), load.QuoteIdent(c), types[c])
	}
	tmp := load.QuoteIdent("_drx_del_" + t.Name)
	if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE TEMP TABLE %s (%s) ON COMMIT DROP", tmp, strings.Join(defs, ", "))); err != nil {
		return 0, err
	}
	keys := make([][]any, len(d.Keys))
	for i, k := range d.Keys {
		if len(k) != len(d.Columns) {
			return 0, fmt.Errorf("a key of %d values for %d columns", len(k), len(d.Columns))
		}
		row := make([]any, len(k))
		for j, v := range k {
			row[j] = v
		}
		keys[i] = row
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"_drx_del_" + t.Name}, d.Columns, pgx.CopyFromRows(keys)); err != nil {
		return 0, err
	}
	tag, err := tx.Exec(ctx, fmt.Sprintf("DELETE FROM %s.%s t USING %s k WHERE %s", load.QuoteIdent(p.schema), load.QuoteIdent(t.Name), tmp, strings.Join(conds, " AND ")))
	if err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx, "DROP TABLE "+tmp); err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

// source wraps rows for COPY, converting the values pgx cannot take as they are. ok is
// false when there are no rows.
func (p *publisher) source(rows *load.Rows, t load.TableSchema) (pgx.CopyFromSource, bool, error) {
	if !rows.Next() {
		return nil, false, rows.Err()
	}
	conv := make([]func(any) (any, error), len(t.Columns))
	converting := false
	for i, c := range t.Columns {
		conv[i] = converter(pgType(c.Type))
		converting = converting || conv[i] != nil
	}
	return &source{rows: rows, conv: conv, converting: converting, first: true}, true, nil
}

// source replays the row the emptiness check read, then the rest.
type source struct {
	rows       *load.Rows
	conv       []func(any) (any, error)
	converting bool
	first      bool
}

func (s *source) Next() bool {
	if s.first {
		s.first = false
		return true
	}
	return s.rows.Next()
}

func (s *source) Values() ([]any, error) {
	v, err := s.rows.Values()
	if err != nil || !s.converting {
		return v, err
	}
	for i, f := range s.conv {
		if f != nil && v[i] != nil {
			if v[i], err = f(v[i]); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

func (s *source) Err() error { return s.rows.Err() }

// syncViews (re)creates the analyst views when their source changed since the last
// publish or tables changed, and returns the md5 of their source.
func (p *publisher) syncViews(ctx context.Context, tx pgx.Tx, m meta, force bool) (string, error) {
	views, err := load.Views()
	if err != nil {
		return "", p.fail("reading the views", err)
	}
	var all strings.Builder
	for _, v := range views {
		all.WriteString(v.Name + "\x00" + v.SQL + "\x00")
	}
	sum := md5Hex(all.String())
	if sum == m.viewsMD5 && !force && m.found {
		return sum, nil
	}
	for _, v := range views {
		name := load.QuoteIdent(p.schema) + "." + load.QuoteIdent(v.Name)
		sp, err := tx.Begin(ctx)
		if err != nil {
			return "", p.fail("creating view "+v.Name, err)
		}
		if _, err := sp.Exec(ctx, fmt.Sprintf("CREATE OR REPLACE VIEW %s AS\n%s", name, v.SQL)); err != nil {
			// CREATE OR REPLACE cannot drop or retype a column: make the view anew.
			_ = sp.Rollback(ctx)
			if _, err := tx.Exec(ctx, "DROP VIEW IF EXISTS "+name); err != nil {
				return "", p.fail("replacing view "+v.Name, err)
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE VIEW %s AS\n%s", name, v.SQL)); err != nil {
				return "", p.fail("creating view "+v.Name, err)
			}
			continue
		}
		if err := sp.Commit(ctx); err != nil {
			return "", p.fail("creating view "+v.Name, err)
		}
	}
	return sum, nil
}

// syncComments sets COMMENT ON every published table, view and column from
// sql/catalog.yaml when the comments differ from those last set, and returns their md5.
func (p *publisher) syncComments(ctx context.Context, tx pgx.Tx, tables []*load.TableChange, m meta) (string, error) {
	cat, err := catalog.Load()
	if err != nil {
		return "", p.fail("reading the catalog", err)
	}
	objs := make([]catalog.Object, 0, len(tables))
	for _, tc := range tables {
		o := catalog.Object{Name: tc.Table.Name, Kind: catalog.KindTable}
		for _, c := range tc.Table.Columns {
			o.Columns = append(o.Columns, catalog.Column{Name: c.Name, Type: c.Type})
		}
		objs = append(objs, o)
	}
	viewCols, err := p.viewColumns(ctx, tx)
	if err != nil {
		return "", err
	}
	objs = append(objs, viewCols...)
	described, _ := cat.Describe(objs)
	var stmts []string
	q := load.QuoteIdent(p.schema)
	for _, d := range described {
		kind := "TABLE"
		if d.Kind == catalog.KindView {
			kind = "VIEW"
		}
		if d.Description != "" {
			stmts = append(stmts, fmt.Sprintf("COMMENT ON %s %s.%s IS %s", kind, q, load.QuoteIdent(d.Name), load.QuoteString(d.Description)))
		}
		for _, c := range d.Columns {
			if c.Description != "" {
				stmts = append(stmts, fmt.Sprintf("COMMENT ON COLUMN %s.%s.%s IS %s", q, load.QuoteIdent(d.Name), load.QuoteIdent(c.Name), load.QuoteString(c.Description)))
			}
		}
	}
	stmts = append(stmts, fmt.Sprintf("COMMENT ON TABLE %s.%s IS %s", q, MetaTable,
		load.QuoteString("drextract's record of its publishes into this schema: layout version, the store's schema version and identity, the publish counter.")))
	script := strings.Join(stmts, ";\n")
	sum := md5Hex(script)
	if sum == m.commentsMD5 {
		return sum, nil
	}
	if _, err := tx.Exec(ctx, script); err != nil {
		return "", p.fail("setting comments", err)
	}
	return sum, nil
}

// viewColumns lists the schema's views with their columns.
func (p *publisher) viewColumns(ctx context.Context, tx pgx.Tx) ([]catalog.Object, error) {
	rows, err := tx.Query(ctx, `
		SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
		FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind = 'v' AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY c.relname, a.attnum`, p.schema)
	if err != nil {
		return nil, p.fail("reading the schema's views", err)
	}
	defer rows.Close()
	views, err := load.Views()
	if err != nil {
		return nil, p.fail("reading the views", err)
	}
	ours := map[string]bool{}
	for _, v := range views {
		ours[v.Name] = true
	}
	var out []catalog.Object
	for rows.Next() {
		var v, c, typ string
		if err := rows.Scan(&v, &c, &typ); err != nil {
			return nil, p.fail("reading the schema's views", err)
		}
		if !ours[v] {
			continue // a view of the user's own
		}
		if len(out) == 0 || out[len(out)-1].Name != v {
			out = append(out, catalog.Object{Name: v, Kind: catalog.KindView})
		}
		out[len(out)-1].Columns = append(out[len(out)-1].Columns, catalog.Column{Name: c, Type: typ})
	}
	if err := rows.Err(); err != nil {
		return nil, p.fail("reading the schema's views", err)
	}
	return out, nil
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}
