package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/drextract/drextract/clock"
	drsql "github.com/drextract/drextract/sql"
)

// Names of the files and folders under the data directory.
const (
	LiveFile    = "datorama.duckdb"
	ServingFile = "serving.duckdb"
	ParquetDir  = "parquet"
	LockFile    = "drextract.lock"
)

// memoryLimit is the store's DuckDB memory_limit. Measured with BenchmarkCrawl/million
// (extract): a crawl of a million jobs peaks at about 205 MB resident for the whole
// process with 64 MB, 220 MB with 96 MB, 255 MB with 128 MB, and grows with the store
// without a limit; the write rate is the same. Publish runs within it; Export raises it
// while it runs (exportMemoryLimit).
const memoryLimit = "64MB"

// writeThreads is DuckDB's thread count outside Export and Publish. The store's writes
// are many small statements; with a second thread DuckDB hands each statement's tasks to
// it and the calling thread spins until they are done, which made a crawl on two cores
// use about twice the CPU for the same rows (load BenchmarkWriteGroups, bench
// BenchmarkTable), taking the core the API's answers are decoded on.
const writeThreads = 1

// Options configure a read-write Store. Zero values use the real clock and slog.Default.
type Options struct {
	Clock  clock.Clock
	Logger *slog.Logger
	// migrations replaces the embedded migrations; tests use it to fake older and newer
	// binaries.
	migrations fs.FS
}

// Store is the DuckDB store. Its methods are safe for concurrent use; writes are
// serialised on one connection, reads use the pool behind DB.
type Store struct {
	db       *sql.DB
	path     string
	readOnly bool
	clock    clock.Clock
	log      *slog.Logger

	// mu serialises everything done on wconn: batch writes, audit appends, export and
	// publish, so each sees a store no other write of ours is halfway through.
	mu    sync.Mutex
	wconn *sql.Conn
	stmts map[string]*sql.Stmt // prepared on wconn, keyed by SQL text
	// beforeCommit, when set by a test, runs inside Write's transaction right before
	// COMMIT; an error aborts the write.
	beforeCommit func(ctx context.Context) error
	// exportStage, when set by a test, runs between the steps of Export and Publish; an
	// error stops it there, as a kill would.
	exportStage func(stage string) error
}

var _ Sink = (*Store)(nil)

// Open opens (creating if needed) the live store at path for reading and writing and
// applies missing migrations. Only one process may have the file open read-write; take
// LockDir on its directory first so a second writer gets a clear error instead of
// DuckDB's. Runs left "running" by a process that died are marked failed.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.migrations == nil {
		sub, err := fs.Sub(drsql.Migrations, "migrations")
		if err != nil {
			return nil, fmt.Errorf("opening embedded migrations: %w", err)
		}
		opts.migrations = sub
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating store directory: %w", err)
	}
	db, err := openDB(path, false)
	if err != nil {
		return nil, err
	}
	s := &Store{
		db:    db,
		path:  path,
		clock: opts.Clock,
		log:   opts.Logger.With("component", "load"),
		stmts: map[string]*sql.Stmt{},
	}
	if err := s.init(ctx, opts.migrations); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) init(ctx context.Context, migrations fs.FS) error {
	// memory_limit caps DuckDB's buffer pool, which otherwise grows to most of the
	// machine's memory as the store does: a crawl's memory use must not grow with the
	// store. DuckDB spills to <store>.tmp/ beyond it. The WAL is folded into the file
	// every 64 MB rather than DuckDB's 16 MB: each checkpoint rewrites the tables' last
	// row groups, which with 1000-job pages cost more than the writes; much more than 64
	// MB and the checkpoint itself pushes the peak memory up. FinishRun also checkpoints.
	// Dictionary compression is left out: its analysis of the raw JSON columns at each
	// checkpoint is memory the buffer pool does not count (about 40 MB of a crawl's peak
	// in BenchmarkCrawl/million), while FSST alone keeps the file the same size.
	// DuckDB gets one thread (writeThreads) but while Export and Publish run.
	for _, set := range []string{
		fmt.Sprintf("SET GLOBAL memory_limit = %s", quoteString(memoryLimit)),
		"SET GLOBAL checkpoint_threshold = '64MB'",
		"SET GLOBAL disabled_compression_methods = 'dictionary'",
		fmt.Sprintf("SET GLOBAL threads = %d", writeThreads),
	} {
		if _, err := s.db.ExecContext(ctx, set); err != nil {
			return fmt.Errorf("configuring %s (%s): %w", s.path, set, err)
		}
	}
	if _, err := migrate(ctx, s.db, migrations, s.clock, s.log); err != nil {
		return fmt.Errorf("migrating %s: %w", s.path, err)
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("opening write connection: %w", err)
	}
	s.wconn = conn
	if err := createStaging(ctx, conn); err != nil {
		return err
	}
	res, err := conn.ExecContext(ctx,
		`UPDATE runs SET status = 'failed', finished = coalesce(finished, $1),
		   error = 'abandoned: the process ended while the run was in progress'
		 WHERE status = 'running'`, s.clock.Now())
	if err != nil {
		return fmt.Errorf("closing abandoned runs: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		s.log.Warn("marked runs abandoned by a previous process as failed", "runs", n)
	}
	if err := recoverExport(filepath.Join(filepath.Dir(s.path), ParquetDir)); err != nil {
		s.log.Warn("cleaning up after an interrupted export", "err", err)
	}
	return nil
}

// OpenReadOnly opens an existing store file for queries. It never migrates or writes;
// several processes may hold the same file read-only at once, but not while a writer
// has it open.
func OpenReadOnly(ctx context.Context, path string) (*Store, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("opening store read-only: %w", err)
	}
	db, err := openDB(path, true)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("opening %s read-only: %w", path, err)
	}
	return &Store{db: db, path: path, readOnly: true, clock: clock.Real{},
		log: slog.Default().With("component", "load")}, nil
}

func openDB(path string, readOnly bool) (*sql.DB, error) {
	dsn := path
	if readOnly {
		dsn += "?access_mode=read_only"
	}
	connector, err := duckdb.NewConnector(dsn, nil)
	if err != nil {
		return nil, fmt.Errorf("opening DuckDB file %s: %w", path, err)
	}
	return sql.OpenDB(connector), nil
}

// Close closes the store; DuckDB checkpoints its WAL into the file on the way.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	s.stmts = nil
	if s.wconn != nil {
		errs = append(errs, s.wconn.Close())
		s.wconn = nil
	}
	if s.db != nil {
		errs = append(errs, s.db.Close())
		s.db = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("closing store %s: %w", s.path, err)
	}
	return nil
}

// DB is the store's connection pool, for packages that keep their own tables in the
// store (actions, reports, the daemon). Writes through it must not touch the tables
// this package owns.
func (s *Store) DB() *sql.DB { return s.db }

// Tables lists the store's base tables in the main schema, sorted by name.
func (s *Store) Tables(ctx context.Context) ([]string, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT table_name FROM duckdb_tables()
		 WHERE database_name = current_database() AND schema_name = 'main' AND NOT temporary
		 ORDER BY table_name`)
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("listing tables: %w", err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	return names, nil
}

var errReadOnly = errors.New("store is open read-only")

// stmt returns the statement for query prepared on the write connection, preparing it
// on first use. Callers hold s.mu.
func (s *Store) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts[query]; ok {
		return st, nil
	}
	st, err := s.wconn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s.stmts[query] = st
	return st, nil
}
