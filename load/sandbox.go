package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/duckdb/duckdb-go/v2/mapping"
)

// DefaultSQLTimeout bounds a statement a person wrote when nothing else is configured.
const DefaultSQLTimeout = 60 * time.Second

// ErrRefused is wrapped by every refusal of a Sandbox: the statement was not run because
// it does something else than read the store's tables.
var ErrRefused = errors.New("only reading statements are allowed")

// RefusedError is a statement the sandbox did not run, and why, in one line.
type RefusedError struct {
	Reason string // e.g. "COPY writes files; only reading statements are allowed"
}

func (e *RefusedError) Error() string { return "query refused: " + e.Reason }
func (e *RefusedError) Unwrap() error { return ErrRefused }

// ParamError is a statement using a parameter it was not given: a $name the caller did
// not pass, or a positional one ($1, ?), which the sandbox never binds since DuckDB
// would fill it from whichever argument comes at that position.
type ParamError struct {
	Name       string // without the $
	Positional bool
	Given      []string // the names that were given, without $
}

func (e *ParamError) Error() string {
	if e.Positional {
		return "query refused: use named parameters ($name), not ? or $" + e.Name
	}
	return fmt.Sprintf("query refused: it uses $%s, which is not given (given: %s)", e.Name, dollarList(e.Given))
}
func (e *ParamError) Unwrap() error { return ErrRefused }

func dollarList(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "$" + n
	}
	return strings.Join(out, ", ")
}

// TimeoutError is a statement DuckDB was interrupted in because it ran longer than the
// sandbox allows.
type TimeoutError struct{ After time.Duration }

func (e *TimeoutError) Error() string { return "timed out after " + FormatTimeout(e.After) }

// FormatTimeout writes a time limit the way people give it: whole seconds as "60s"
// (where time.Duration prints "1m0s"), anything else as time.Duration does ("200ms").
func FormatTimeout(d time.Duration) string {
	if d > 0 && d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// SandboxOptions configure a Sandbox. The zero value is valid.
type SandboxOptions struct {
	// Timeout bounds each statement; DuckDB is interrupted when it passes.
	// 0: DefaultSQLTimeout; negative: no limit.
	Timeout time.Duration
}

// Sandbox runs SQL a person wrote — `drextract query`, selections — where it can only
// read the store's tables. The guarantees come from DuckDB itself, not from reading the
// text: the file is opened read-only with external access off (no file functions, no
// ATTACH, no INSTALL or LOAD, no extension autoloading), the local file system is then
// disabled as a whole (DuckDB still lets a read-only database write next to its own
// file, e.g. COPY … TO 'store.duckdb.wal' under EXPLAIN ANALYZE) and the configuration
// is locked so that no statement can undo either. On top of that, every statement is
// prepared first and run only if DuckDB classifies it as a reading one (SELECT and its
// relatives DESCRIBE, SHOW, SUMMARIZE, PIVOT, FROM …, and EXPLAIN), and within the
// time limit.
//
// A Sandbox is safe for concurrent use. Close it before the file it reads is replaced:
// while it is open, DuckDB hands every new open of that path in this process the same
// database.
type Sandbox struct {
	path    string
	db      *sql.DB          // runs the statements; connections are never reused
	inst    mapping.Database // the same DuckDB database, where statements are checked
	timeout time.Duration
}

// sandboxSettings are the DuckDB settings every read-only open of a store file gets,
// Store or Sandbox alike: DuckDB gives a file one configuration per process, so the two
// share one database.
var sandboxSettings = [][2]string{
	{"access_mode", "read_only"},
	{"enable_external_access", "false"},
	{"autoinstall_known_extensions", "false"},
	{"autoload_known_extensions", "false"},
	{"allow_community_extensions", "false"},
}

// lockMu serialises the first configuration of a freshly opened database, so that two
// opens of one path in this process do not both try to lock it.
var lockMu sync.Mutex

// openLocked opens path read-only with sandboxSettings and, unless this process already
// did for the same database, disables the local file system and locks the configuration.
// The file stays readable through the handle DuckDB opened it with.
func openLocked(ctx context.Context, path string) (*sql.DB, error) {
	q := url.Values{}
	for _, s := range sandboxSettings {
		q.Set(s[0], s[1])
	}
	connector, err := duckdb.NewConnector(path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("opening DuckDB file %s read-only: %w", path, err)
	}
	db := sql.OpenDB(connector)
	lockMu.Lock()
	defer lockMu.Unlock()
	var locked bool
	if err := db.QueryRowContext(ctx, "SELECT CAST(current_setting('lock_configuration') AS BOOLEAN)").Scan(&locked); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("opening %s read-only: %w", path, err)
	}
	if !locked {
		for _, set := range []string{
			"SET GLOBAL disabled_filesystems = 'LocalFileSystem'",
			"SET GLOBAL lock_configuration = true",
		} {
			if _, err := db.ExecContext(ctx, set); err != nil {
				_ = db.Close()
				return nil, fmt.Errorf("opening %s read-only (%s): %w", path, set, err)
			}
		}
	}
	return db, nil
}

// OpenSandbox opens the store file at path (the serving copy, or the live store while
// no process writes it) for SQL a person wrote. Close it when done.
func OpenSandbox(ctx context.Context, path string, opts SandboxOptions) (*Sandbox, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("opening the store read-only: %w", err)
	}
	db, err := openLocked(ctx, path)
	if err != nil {
		return nil, err
	}
	// Temporary objects a statement creates (the types DuckDB makes for a PIVOT) live in
	// its connection: none may be left for the next statement.
	db.SetMaxIdleConns(0)
	inst, err := sameDatabase(path)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultSQLTimeout
	}
	return &Sandbox{path: path, db: db, inst: inst, timeout: timeout}, nil
}

// sameDatabase returns a second handle on the database openLocked opened for path, from
// the driver's instance cache: the database/sql driver cannot prepare a statement of
// several without running the ones before it, and the C API behind this handle can.
// A handle on any other database would be an error (the configurations must match).
func sameDatabase(path string) (mapping.Database, error) {
	var cfg mapping.Config
	var inst mapping.Database
	if mapping.CreateConfig(&cfg) == mapping.StateError {
		return inst, errors.New("creating a DuckDB configuration")
	}
	defer mapping.DestroyConfig(&cfg)
	// As the driver does for every database it opens.
	settings := append([][2]string{{"duckdb_api", "go"}}, sandboxSettings...)
	for _, s := range settings {
		if mapping.SetConfig(cfg, s[0], s[1]) == mapping.StateError {
			return inst, fmt.Errorf("configuring DuckDB: %s=%s", s[0], s[1])
		}
	}
	var msg string
	if mapping.GetOrCreateFromCache(duckdb.GetInstanceCache(), path, &inst, cfg, &msg) == mapping.StateError {
		mapping.Close(&inst)
		return inst, fmt.Errorf("opening %s read-only: %s", path, msg)
	}
	return inst, nil
}

// Close releases the sandbox's handles on the database.
func (s *Sandbox) Close() error {
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	mapping.Close(&s.inst)
	s.db = nil
	if err != nil {
		return fmt.Errorf("closing %s: %w", s.path, err)
	}
	return nil
}

// Timeout is the time limit of each statement.
func (s *Sandbox) Timeout() time.Duration { return s.timeout }

// Query runs one reading statement and returns at most limit rows (0: all), setting
// More when there were more. See QueryEach.
func (s *Sandbox) Query(ctx context.Context, query string, args []sql.NamedArg, limit int) (*Result, error) {
	res := &Result{}
	header, row := collect(res, limit)
	if err := s.QueryEach(ctx, query, args, header, row); err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	return res, nil
}

// QueryEach runs one reading statement with the named arguments args and calls header
// once with the columns, then row for each row in order (ScanRows). A statement that is
// not one reading statement is a *RefusedError, one that uses a parameter it was not
// given a *ParamError (both wrap ErrRefused); DuckDB's own errors come back as they
// are, except that one about file access is a *RefusedError too. A statement still
// running after the time limit is interrupted and returns a *TimeoutError; a cancelled
// ctx returns ctx's error.
func (s *Sandbox) QueryEach(ctx context.Context, query string, args []sql.NamedArg,
	header func([]Column) error, row func([]any) error) error {
	errTimedOut := &TimeoutError{After: s.timeout}
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, s.timeout, errTimedOut)
		defer cancel()
	}
	err := s.queryEach(ctx, query, args, header, row)
	if err != nil && context.Cause(ctx) == errTimedOut {
		return errTimedOut
	}
	if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		// DuckDB reports its interruption as its own error; the cause is ctx's.
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

func (s *Sandbox) queryEach(ctx context.Context, query string, args []sql.NamedArg,
	header func([]Column) error, row func([]any) error) error {
	if err := s.check(ctx, query, args); err != nil {
		return err
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	vals := make([]any, len(args))
	for i, a := range args {
		vals[i] = a
	}
	rs, err := conn.QueryContext(ctx, query, vals...)
	if err != nil {
		return refusedIfFiles(err)
	}
	return refusedIfFiles(ScanRows(rs, header, row))
}

// check has DuckDB prepare the text and refuses it unless DuckDB reads it as one reading
// statement whose parameters are all given. DuckDB itself turns some single statements
// into several: a PIVOT without an IN list first creates a temporary ENUM type of the
// values it finds. So a text of several statements passes only in that shape: every
// statement before the last is a CREATE, and together they made nothing but those
// types. Nothing is executed here but those CREATEs, in a connection closed right after.
func (s *Sandbox) check(ctx context.Context, query string, args []sql.NamedArg) error {
	var conn mapping.Connection
	if mapping.Connect(s.inst, &conn) == mapping.StateError {
		return fmt.Errorf("connecting to %s", s.path)
	}
	interrupted := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(interrupted)
		mapping.Interrupt(conn)
	})
	defer func() {
		if !stop() {
			<-interrupted
		}
		mapping.Disconnect(&conn)
	}()

	var stmts mapping.ExtractedStatements
	n := int(mapping.ExtractStatements(conn, query, &stmts))
	defer mapping.DestroyExtracted(&stmts)
	if n == 0 {
		if msg := mapping.ExtractStatementsError(stmts); msg != "" {
			return errors.New(msg)
		}
		return &RefusedError{Reason: "the query is empty"}
	}
	for i := range n {
		if err := ctx.Err(); err != nil {
			return err
		}
		var st mapping.PreparedStatement
		if mapping.PrepareExtractedStatement(conn, stmts, mapping.IdxT(i), &st) == mapping.StateError {
			msg := mapping.PrepareError(st)
			mapping.DestroyPrepare(&st)
			return refusedIfFilesText(msg)
		}
		typ := duckdb.StmtType(mapping.PreparedStatementType(st))
		last := i == n-1
		var err error
		switch {
		case last && (typ == duckdb.STATEMENT_TYPE_SELECT || typ == duckdb.STATEMENT_TYPE_EXPLAIN):
			err = checkParams(st, args)
		case last:
			err = refuseType(typ)
		case typ == duckdb.STATEMENT_TYPE_CREATE:
			var res mapping.Result
			if mapping.ExecutePrepared(st, &res) == mapping.StateError {
				err = refusedIfFilesText(mapping.ResultError(&res))
			}
			mapping.DestroyResult(&res)
		case typ == duckdb.STATEMENT_TYPE_SELECT || typ == duckdb.STATEMENT_TYPE_EXPLAIN:
			err = &RefusedError{Reason: "more than one statement; run one at a time"}
		default:
			err = refuseType(typ)
		}
		mapping.DestroyPrepare(&st)
		if err != nil {
			return err
		}
	}
	if n > 1 {
		// Each CREATE makes one catalog entry: n-1 of them made n-1 PIVOT types, or
		// something else, which is refused. DuckDB names the PIVOT types __pivot_enum_*.
		var res mapping.Result
		state := mapping.Query(conn, fmt.Sprintf(`SELECT CASE WHEN count(*) = %d THEN 1 ELSE error('other objects') END
			FROM duckdb_types() WHERE database_name = 'temp' AND starts_with(type_name, '__pivot_enum_')`, n-1), &res)
		mapping.DestroyResult(&res)
		if state == mapping.StateError {
			return &RefusedError{Reason: "more than one statement; run one at a time"}
		}
	}
	return nil
}

// checkParams refuses a statement using a parameter args does not name.
func checkParams(st mapping.PreparedStatement, args []sql.NamedArg) error {
	given := make([]string, 0, len(args))
	known := map[string]bool{}
	for _, a := range args {
		given = append(given, a.Name)
		known[a.Name] = true
	}
	for i := 1; i <= int(mapping.NParams(st)); i++ {
		name := mapping.ParameterName(st, mapping.IdxT(i))
		if name == "" || (name[0] >= '0' && name[0] <= '9') {
			return &ParamError{Name: name, Positional: true, Given: given}
		}
		if !known[name] {
			return &ParamError{Name: name, Given: given}
		}
	}
	return nil
}

// statementRefusals says, per statement type DuckDB reports, why it is not run.
var statementRefusals = map[duckdb.StmtType]string{
	duckdb.STATEMENT_TYPE_INSERT:       "INSERT writes to the store",
	duckdb.STATEMENT_TYPE_UPDATE:       "UPDATE writes to the store",
	duckdb.STATEMENT_TYPE_DELETE:       "DELETE writes to the store",
	duckdb.STATEMENT_TYPE_CREATE:       "CREATE writes to the store",
	duckdb.STATEMENT_TYPE_CREATE_FUNC:  "CREATE FUNCTION writes to the store",
	duckdb.STATEMENT_TYPE_DROP:         "DROP writes to the store",
	duckdb.STATEMENT_TYPE_ALTER:        "ALTER writes to the store",
	duckdb.STATEMENT_TYPE_COPY:         "COPY reads or writes files",
	duckdb.STATEMENT_TYPE_EXPORT:       "EXPORT DATABASE writes files",
	duckdb.STATEMENT_TYPE_ATTACH:       "ATTACH opens another database",
	duckdb.STATEMENT_TYPE_DETACH:       "DETACH closes a database",
	duckdb.STATEMENT_TYPE_LOAD:         "INSTALL and LOAD add extensions",
	duckdb.STATEMENT_TYPE_EXTENSION:    "extension statements are not reads",
	duckdb.STATEMENT_TYPE_SET:          "SET and RESET change settings",
	duckdb.STATEMENT_TYPE_VARIABLE_SET: "SET VARIABLE changes settings",
	duckdb.STATEMENT_TYPE_PRAGMA:       "this PRAGMA changes settings",
	duckdb.STATEMENT_TYPE_CALL:         "CALL (and CHECKPOINT) runs a procedure",
	duckdb.STATEMENT_TYPE_TRANSACTION:  "BEGIN, COMMIT and ROLLBACK control transactions",
	duckdb.STATEMENT_TYPE_PREPARE:      "PREPARE and EXECUTE run other statements",
	duckdb.STATEMENT_TYPE_EXECUTE:      "PREPARE and EXECUTE run other statements",
	duckdb.STATEMENT_TYPE_VACUUM:       "VACUUM and ANALYZE maintain the store",
	duckdb.STATEMENT_TYPE_ANALYZE:      "VACUUM and ANALYZE maintain the store",
	duckdb.STATEMENT_TYPE_MULTI:        "more than one statement; run one at a time",
}

func refuseType(typ duckdb.StmtType) error {
	why, ok := statementRefusals[typ]
	if !ok {
		why = fmt.Sprintf("DuckDB does not read it as a query (statement type %d)", typ)
	}
	if !strings.Contains(why, "run one at a time") {
		why += "; only reading statements are allowed"
	}
	return &RefusedError{Reason: why}
}

// refusedIfFiles turns DuckDB's refusal of a file access into a *RefusedError.
func refusedIfFiles(err error) error {
	var de *duckdb.Error
	if errors.As(err, &de) && de.Type == duckdb.ErrorTypePermission {
		return filesRefused(de.Msg)
	}
	return err
}

// refusedIfFilesText does what refusedIfFiles does for an error the C API gives as text
// only (preparing a statement): the text starts with DuckDB's name of the error type,
// from which the driver derives its typed errors too.
func refusedIfFilesText(msg string) error {
	if strings.HasPrefix(msg, "Permission Error") {
		return filesRefused(msg)
	}
	return errors.New(msg)
}

func filesRefused(msg string) error {
	first, _, _ := strings.Cut(msg, "\n")
	return &RefusedError{Reason: fmt.Sprintf("it reaches outside the store's tables (%s); only the store's tables can be read", strings.TrimSpace(first))}
}

// Sandbox opens a Sandbox on what the store holds now. A read-only store's sandbox reads
// the same file. A read-write store's file cannot be shared with a sandbox (DuckDB gives
// a file one configuration per process, and the live store needs file access for
// Export), so the store is first published to servingPath — the sandbox never reads a
// copy older than the store — and the sandbox opens that copy. servingPath is unused for
// a read-only store. The caller closes the sandbox, before publishing again.
func (s *Store) Sandbox(ctx context.Context, servingPath string, opts SandboxOptions) (*Sandbox, error) {
	if s.readOnly {
		return OpenSandbox(ctx, s.path, opts)
	}
	if err := s.Publish(ctx, servingPath); err != nil {
		return nil, fmt.Errorf("publishing a fresh copy to run SQL on: %w", err)
	}
	return OpenSandbox(ctx, servingPath, opts)
}
