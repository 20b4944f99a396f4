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
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/drextract/drextract/clock"
	drsql "github.com/drextract/drextract/sql"
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

// Options configure a read-write Store. Zero values use the real clock, slog.Default, the
// data directory layout and ShareGroup.
type Options struct {
	Clock  clock.Clock
	Logger *slog.Logger
	// Serving and Parquet are where Publish and Export usually write. Open removes what
	// an interrupted publish or export left there, and error messages name them as the
	// last good state. Default: serving.duckdb and parquet in the data directory.
	Serving string
	Parquet string
	// Share is who may read the serving copy and the Parquet export.
	Share Share
	// migrations replaces the embedded migrations; tests use it to fake older and newer
	// binaries.
	migrations fs.FS
}

func (o *Options) fill(path string) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Serving == "" {
		o.Serving = filepath.Join(dataDirOf(path), ServingFile)
	}
	if o.Parquet == "" {
		o.Parquet = filepath.Join(dataDirOf(path), ParquetDir)
	}
	if o.Share == "" {
		o.Share = ShareGroup
	}
}

// Store is the DuckDB store. Its methods are safe for concurrent use; writes are
// serialised on one connection, reads use the pool behind DB.
type Store struct {
	db       *sql.DB
	path     string
	paths    paths // the store's files, for messages
	share    Share
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
	// release forgets the file in inProcess; set once DuckDB has it open.
	release func()
}

var _ Sink = (*Store)(nil)

// Open opens (creating if needed) the live store at path for reading and writing and
// applies missing migrations. Only one process may have the file open read-write; take
// LockDir on the data directory first so a second drextract gets a clear error instead
// of DuckDB's.
//
// Before DuckDB sees the file, Open makes its folder private (a folder named live is
// created or set to mode 0700, and a store an older drextract left in the data directory
// is moved into it) and verifies every block of the file against its checksum: a damaged
// file is refused with a *DamagedError and never opened, since DuckDB can fault on it.
// Verifying reads the whole file once (about 0.1 s for 170 MB from the page cache; see
// BenchmarkVerify). Open also sets the process umask to 077, so that the WAL files
// DuckDB creates are private too; published files get their modes explicitly.
//
// Another process holding the file: *FileInUseError with its pid; disk full:
// *DiskFullError. Runs left "running" by a process that died are marked failed, and the
// leftovers of an interrupted publish or export are removed.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	opts.fill(path)
	if opts.migrations == nil {
		sub, err := fs.Sub(drsql.Migrations, "migrations")
		if err != nil {
			return nil, fmt.Errorf("opening embedded migrations: %w", err)
		}
		opts.migrations = sub
	}
	log := opts.Logger.With("component", "load")
	p := paths{live: path, serving: opts.Serving, parquet: opts.Parquet}
	if err := prepareLive(path, log); err != nil {
		return nil, err
	}
	if err := p.verify(path, log); err != nil {
		return nil, err
	}
	privateUmask()
	db, err := openDB(path)
	if err != nil {
		return nil, p.classify(err, path)
	}
	s := &Store{
		db:      db,
		path:    path,
		paths:   p,
		share:   opts.Share,
		clock:   opts.Clock,
		log:     log,
		stmts:   map[string]*sql.Stmt{},
		release: holdFile(path),
	}
	if err := s.init(ctx, opts.migrations); err != nil {
		_ = s.Close()
		return nil, p.classify(err, path)
	}
	return s, nil
}

// verify refuses a damaged store file with a *DamagedError. A file another process has
// open for writing is not read (its blocks may be changing); DuckDB then reports that
// process.
func (p paths) verify(path string, log *slog.Logger) error {
	if openInProcess(path) {
		return nil // verified when first opened; see inprocess.go
	}
	start := time.Now()
	st, err := verifyFile(path)
	var d *damage
	if errors.As(err, &d) {
		return p.damaged(path, d.detail, nil)
	}
	if err != nil {
		return fmt.Errorf("verifying %s: %w", path, err)
	}
	log.Debug("verified the store's checksums", "path", path, "blocks", st.Blocks, "free_blocks", st.FreeBlocks,
		"bytes", st.Bytes, "skipped", st.Skipped, "duration", time.Since(start))
	return nil
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
		fmt.Sprintf("SET GLOBAL memory_limit = %s", QuoteString(memoryLimit)),
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
	if s.hasTable(ctx, "schema_views") { // absent only in tests that fake older binaries
		viewsChanged, err := s.syncViews(ctx)
		if err != nil {
			return fmt.Errorf("creating the views of %s: %w", s.path, err)
		}
		commentsChanged, err := s.syncComments(ctx)
		if err != nil {
			return fmt.Errorf("describing the tables of %s: %w", s.path, err)
		}
		if viewsChanged || commentsChanged {
			// Like the migrations: fold catalog changes into the file before any write.
			if _, err := s.db.ExecContext(ctx, "CHECKPOINT"); err != nil {
				return fmt.Errorf("checkpointing %s after creating views: %w", s.path, err)
			}
		}
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("opening write connection: %w", err)
	}
	s.wconn = conn
	if err := createStaging(ctx, conn); err != nil {
		return err
	}
	if err := s.recoverCalls(ctx); err != nil {
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
	if err := makePrivate(s.path); err != nil {
		return fmt.Errorf("making %s private: %w", s.path, err)
	}
	if err := removeLeftovers(s.paths.serving); err != nil {
		s.log.Warn("removing what an interrupted publish left", "err", err)
	}
	if err := recoverExport(s.paths.parquet); err != nil {
		s.log.Warn("cleaning up after an interrupted export", "err", err)
	}
	return nil
}

// OpenReadOnly opens an existing store file (the live store or the serving copy) for
// queries. It never migrates or writes; several processes may hold the same file
// read-only at once, but not while a writer has it open (*FileInUseError). Like Open it
// verifies the file first (*DamagedError). A live store an older drextract left in the
// data directory is read where it is. DuckDB is configured as for a Sandbox (no access
// to any file but this one, configuration locked), which also lets the two share the
// file in one process: drextract's own reads need nothing else.
func OpenReadOnly(ctx context.Context, path string) (*Store, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		if l := legacyPath(path); l != "" && exists(l) {
			path = l
		}
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("opening store read-only: %w", err)
	}
	log := slog.Default().With("component", "load")
	p := paths{live: path, readOnly: true}
	if err := p.verify(path, log); err != nil {
		return nil, err
	}
	db, err := openLocked(ctx, path)
	if err != nil {
		return nil, p.classify(err, path)
	}
	return &Store{db: db, path: path, paths: p, readOnly: true, clock: clock.Real{}, log: log, release: holdFile(path)}, nil
}

// openDB opens path (":memory:" or "" for an in-memory database) read-write.
func openDB(path string) (*sql.DB, error) {
	connector, err := duckdb.NewConnector(path, nil)
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
	if s.release != nil {
		s.release()
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
