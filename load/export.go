package load

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Export layout. The folder readers use, dir (normally <data-dir>/parquet), is a symlink
// to a complete export under dir+".versions/". An export is written to a ".tmp" folder
// there, synced, renamed to its final name (now complete), and then a new symlink is
// renamed over dir. rename(2) replaces the link atomically, so whatever moment the
// writer is killed at, dir is the old complete export or the new one, never a partial
// one or none. What a kill leaves behind (a .tmp folder, an unlinked complete version, a
// stray temporary link) is removed by the next Export or Open.
//
// A reader that walks dir by path while a swap happens resolves the link anew at every
// step, so it could list one export and open files of the next. File names carry the
// export's version, so such a reader gets "file not found", not silently mixed data, and
// the export just replaced is kept until the next one finishes. Readers that need a
// snapshot resolve the link once (realpath) and read that folder.
const (
	versionsSuffix = ".versions"
	linkTmpSuffix  = ".link.tmp"
	tmpSuffix      = ".tmp"
	// publishSuffix names the serving copy being written. Not ".tmp": DuckDB spills a
	// reader's big queries into "<database file>.tmp/".
	publishSuffix = ".new"
)

// ExportStats describes one Parquet export.
type ExportStats struct {
	Dir      string           // the folder readers use (a symlink)
	Version  string           // the folder it now points to
	Rows     map[string]int64 // rows per table
	Files    int
	Bytes    int64
	Duration time.Duration
}

// Tables counts the exported tables.
func (st ExportStats) Tables() int { return len(st.Rows) }

// TotalRows sums the exported rows.
func (st ExportStats) TotalRows() int64 {
	var n int64
	for _, r := range st.Rows {
		n += r
	}
	return n
}

// Export writes every table of the store to dir/<table>/ as zstd-compressed Parquet, from
// one consistent snapshot, and swaps the result in atomically (see the layout above).
// jobs is partitioned by data time, not load time: dir/jobs/year=YYYY/month=MM/ (month
// zero-padded), from the job's dataStartDate, or, when the API sent none, the UTC date
// of startExecutionTime; jobs with neither land in year=__HIVE_DEFAULT_PARTITION__.
// Other tables are one file, dir/<table>/data_<version>.parquet. JSON columns (raw) are
// written as plain UTF-8 strings, which every Parquet reader takes. Files and folders
// get the Share's modes. Writes to the store wait while the snapshot is read.
//
// A failed export removes what it wrote; a full disk is a *DiskFullError.
func (s *Store) Export(ctx context.Context, dir string) (stats ExportStats, err error) {
	if s.readOnly {
		return ExportStats{}, errReadOnly
	}
	start := time.Now()
	stats = ExportStats{Dir: dir, Rows: map[string]int64{}}
	if err := recoverExport(dir); err != nil {
		return stats, fmt.Errorf("export: %w", err)
	}
	if err := checkExportLink(dir); err != nil {
		return stats, fmt.Errorf("export: %w", err)
	}
	versions := dir + versionsSuffix
	name := s.clock.Now().UTC().Format("20060102T150405.000000000Z")
	final := filepath.Join(versions, name)
	tmp := final + tmpSuffix
	defer func() {
		if err == nil || errors.Is(err, errStage) {
			return
		}
		err = fmt.Errorf("export: %w", s.paths.classify(err, tmp)) // before the cleanup frees space
		if rerr := os.RemoveAll(tmp); rerr != nil {
			s.log.Warn("removing a failed export", "path", tmp, "err", rerr)
		}
	}()
	if err := os.MkdirAll(tmp, s.share.DirMode()); err != nil {
		return stats, err
	}
	if err := os.Chmod(versions, s.share.DirMode()); err != nil {
		return stats, err
	}
	if err := s.exportTables(ctx, tmp, name, stats.Rows); err != nil {
		return stats, err
	}
	files, bytes, err := syncTree(tmp)
	if err != nil {
		return stats, fmt.Errorf("syncing %s: %w", tmp, err)
	}
	stats.Files, stats.Bytes = files, bytes
	if err := chmodTree(tmp, s.share.DirMode(), s.share.FileMode()); err != nil {
		return stats, err
	}
	if err := s.stage("export:written"); err != nil {
		return stats, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return stats, err
	}
	if err := syncDir(versions); err != nil {
		return stats, err
	}
	if err := s.stage("export:complete"); err != nil {
		return stats, err
	}
	previous, _ := os.Readlink(dir)
	if err := swapLink(dir, filepath.Join(filepath.Base(versions), name)); err != nil {
		return stats, err
	}
	stats.Version = final
	if err := s.stage("export:swapped"); err != nil {
		return stats, err
	}
	// Keep the export just replaced: a reader that resolved the link a moment ago may
	// still be listing it. Everything older goes.
	if err := pruneVersions(versions, name, filepath.Base(previous)); err != nil {
		s.log.Warn("removing old exports", "err", err)
	}
	stats.Duration = time.Since(start)
	s.log.Info("exported parquet", "dir", dir, "version", name, "tables", len(stats.Rows),
		"rows", stats.TotalRows(), "files", stats.Files, "bytes", stats.Bytes, "duration", stats.Duration)
	return stats, nil
}

// errStage marks a stop requested by a test's exportStage: it stands for a kill, so
// nothing is cleaned up.
var errStage = errors.New("stopped by the test")

// stage lets tests stop Export and Publish between steps, as a kill would.
func (s *Store) stage(name string) error {
	if s.exportStage == nil {
		return nil
	}
	if err := s.exportStage(name); err != nil {
		return fmt.Errorf("%w: %w", errStage, err)
	}
	return nil
}

// exportTables copies every table into tmp inside one read transaction. File names carry
// the version.
func (s *Store) exportTables(ctx context.Context, tmp, version string, rows map[string]int64) error {
	tables, err := s.Tables(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	restore, err := s.bulkSettings(ctx, exportMemoryLimit)
	if err != nil {
		return err
	}
	defer restore()
	return s.inTx(ctx, func() error {
		for _, t := range tables {
			if IsInternal(t) { // the store's bookkeeping: checkpoints, migrations, publish state
				continue
			}
			target := filepath.Join(tmp, t)
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
			var n int64
			if err := s.wconn.QueryRowContext(ctx, "SELECT count(*) FROM "+QuoteIdent(t)).Scan(&n); err != nil {
				return fmt.Errorf("counting %s: %w", t, err)
			}
			cols, err := s.exportColumns(ctx, t)
			if err != nil {
				return err
			}
			if t == Jobs {
				if err := s.exportJobs(ctx, target, version, cols); err != nil {
					return err
				}
			} else {
				q := fmt.Sprintf(`COPY (SELECT %s FROM %s) TO %s (FORMAT PARQUET, COMPRESSION ZSTD)`,
					cols, QuoteIdent(t), QuoteString(filepath.Join(target, "data_"+version+".parquet")))
				if _, err := s.wconn.ExecContext(ctx, q); err != nil {
					return fmt.Errorf("exporting %s: %w", t, err)
				}
			}
			rows[t] = n
			if err := s.stage("export:table:" + t); err != nil {
				return err
			}
		}
		return nil
	})
}

// exportColumns is the select list that exports table t: every column, JSON ones cast
// to VARCHAR. DuckDB writes JSON as a string column with Parquet's JSON logical type,
// which some readers (polars) take for binary.
func (s *Store) exportColumns(ctx context.Context, t string) (string, error) {
	rows, err := s.wconn.QueryContext(ctx,
		`SELECT column_name FROM duckdb_columns()
		 WHERE database_name = current_database() AND schema_name = 'main' AND table_name = $1 AND data_type = 'JSON'
		 ORDER BY column_index`, t)
	if err != nil {
		return "", fmt.Errorf("listing the columns of %s: %w", t, err)
	}
	defer rows.Close()
	var casts []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return "", fmt.Errorf("listing the columns of %s: %w", t, err)
		}
		casts = append(casts, fmt.Sprintf("CAST(%s AS VARCHAR) AS %s", QuoteIdent(c), QuoteIdent(c)))
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("listing the columns of %s: %w", t, err)
	}
	if len(casts) == 0 {
		return "*", nil
	}
	return "* REPLACE (" + strings.Join(casts, ", ") + ")", nil
}

// recoverExport removes what an interrupted export left next to dir: unfinished .tmp
// folders and a temporary link. It never touches the export dir points to.
func recoverExport(dir string) error {
	versions := dir + versionsSuffix
	if err := os.Remove(dir + linkTmpSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	entries, err := os.ReadDir(versions)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), tmpSuffix) {
			errs = append(errs, os.RemoveAll(filepath.Join(versions, e.Name())))
		}
	}
	return errors.Join(errs...)
}

// checkExportLink makes sure dir is free to become the export link: missing, already a
// link, or an empty folder (removed). Anything else is somebody's data and stays.
func checkExportLink(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return os.MkdirAll(filepath.Dir(dir), 0o755)
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil
	}
	if fi.IsDir() {
		if entries, err := os.ReadDir(dir); err == nil && len(entries) == 0 {
			return os.Remove(dir)
		}
	}
	return fmt.Errorf("%s exists and is not an export link made by drextract; move it away", dir)
}

// swapLink points dir at target by renaming a new symlink over it.
func swapLink(dir, target string) error {
	tmp := dir + linkTmpSuffix
	_ = os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// pruneVersions removes the complete exports other than keep.
func pruneVersions(versions string, keep ...string) error {
	entries, err := os.ReadDir(versions)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if contains(keep, e.Name()) || strings.HasSuffix(e.Name(), tmpSuffix) {
			continue
		}
		errs = append(errs, os.RemoveAll(filepath.Join(versions, e.Name())))
	}
	return errors.Join(errs...)
}

// syncTree fsyncs every file and folder under root and counts the files and bytes.
func syncTree(root string) (files int, bytes int64, err error) {
	var dirs []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return err
		}
		files++
		bytes += fi.Size()
		return f.Sync()
	})
	if err != nil {
		return files, bytes, err
	}
	// Deepest first, so each folder's entries are durable before the folder's own entry.
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if err := syncDir(d); err != nil {
			return files, bytes, err
		}
	}
	return files, bytes, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	return nil
}

// QuoteIdent quotes an identifier for SQL (DuckDB's and PostgreSQL's rule alike).
func QuoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// QuoteString quotes a string literal for SQL: DuckDB, and PostgreSQL with
// standard_conforming_strings on (the default since 9.1); never as an escape string.
func QuoteString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// Publish writes the BI copy: the whole store is copied into servingPath+".new" (one
// consistent snapshot), which is closed, synced, made read-only for the Share's readers
// and renamed over servingPath. Readers that had the old file open keep reading it; new
// opens see the new one. Being read-only on disk, the copy cannot be opened read-write
// (DuckDB's default mode, which would lock every other reader out) except by root.
//
// A failed publish leaves the old copy in place and removes its partial files at once;
// a kill leaves them to the next Publish or Open (which is how a test's stop is treated). A full disk is a *DiskFullError naming
// the file system.
func (s *Store) Publish(ctx context.Context, servingPath string) (err error) {
	if s.readOnly {
		return errReadOnly
	}
	start := time.Now()
	tmp := servingPath + publishSuffix
	if err := removeLeftovers(servingPath); err != nil {
		return fmt.Errorf("publish: removing leftovers of an earlier publish: %w", err)
	}
	defer func() {
		if err == nil || errors.Is(err, errStage) {
			return
		}
		err = fmt.Errorf("publish: %w", s.paths.classify(err, tmp)) // before the cleanup frees space
		if rerr := removeLeftovers(servingPath); rerr != nil {
			s.log.Warn("removing the partial serving copy", "path", tmp, "err", rerr)
		}
	}()
	if err := s.copyDatabase(ctx, tmp); err != nil {
		return err
	}
	if _, err := os.Stat(tmp + ".wal"); err == nil {
		return fmt.Errorf("%s still has a WAL after detaching", tmp)
	}
	if err := syncFile(tmp); err != nil {
		return err
	}
	if err := os.Chmod(tmp, s.share.FileMode()); err != nil {
		return err
	}
	if err := s.stage("publish:written"); err != nil {
		return err
	}
	if err := os.Rename(tmp, servingPath); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(servingPath)); err != nil {
		return err
	}
	s.log.Info("published serving copy", "path", servingPath, "duration", time.Since(start))
	return nil
}

const servingAlias = "drx_serving"

func (s *Store) copyDatabase(ctx context.Context, tmp string) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wconn == nil {
		return errors.New("store is closed")
	}
	// The store's own limit: measured on a crawled million jobs, publishing takes as long
	// under 64 MB as under 1 GB (1.7 s) and peaks at 176 MB resident instead of 780 MB.
	restore, err := s.bulkSettings(ctx, memoryLimit)
	if err != nil {
		return err
	}
	defer restore()
	var current string
	if err := s.wconn.QueryRowContext(ctx, "SELECT current_database()").Scan(&current); err != nil {
		return err
	}
	// A copy whose DETACH failed may still be attached.
	if _, err := s.wconn.ExecContext(ctx, "DETACH DATABASE IF EXISTS "+servingAlias); err != nil {
		return err
	}
	if _, err := s.wconn.ExecContext(ctx, fmt.Sprintf("ATTACH %s AS %s", QuoteString(tmp), servingAlias)); err != nil {
		return fmt.Errorf("creating %s: %w", tmp, err)
	}
	defer func() {
		if _, derr := s.wconn.ExecContext(context.WithoutCancel(ctx), "DETACH "+servingAlias); derr != nil && err == nil {
			err = fmt.Errorf("closing %s: %w", tmp, derr)
		}
	}()
	if err := s.stage("publish:attached"); err != nil {
		return err
	}
	if _, err := s.wconn.ExecContext(ctx, fmt.Sprintf("COPY FROM DATABASE %s TO %s",
		QuoteIdent(current), servingAlias)); err != nil {
		return fmt.Errorf("copying into %s: %w", tmp, err)
	}
	return nil
}

// jobsPartDate is a job's partition date: its data start date or, when the API sent
// none, the UTC date it started; NULL when it has neither.
const jobsPartDate = `coalesce(data_start_date, CAST(timezone('UTC', start_execution_time) AS DATE))`

// Exporting jobs. A single COPY … PARTITION_BY (year, month) of the whole table buffers
// every partition at once: rows come in crawl order, each stream's jobs spanning every
// month, so a million jobs over three years held about 1 GB (issue 15 measured 1,476 MB).
// One COPY per month stays small but reads the whole table once per month, 3.7 times the
// time of the single COPY. In between: each COPY takes a run of consecutive months
// holding at most exportGroupRows jobs (a few COPYs for a million jobs), and within it
// DuckDB's partitioned writer is kept small by flushing its per-thread buffers every
// exportFlushRows rows and cutting row groups at exportRowGroupSize rows. Measured on a
// crawled store of 688,000 jobs (42 months), against the bare COPY's 2.5 s of CPU and
// 0.9–1.0 GB: one COPY per month 10 s and 285 MB; 300,000-job groups 2.7 s and 354 MB;
// see BenchmarkExport for the figures on a million.
const (
	exportGroupRows    = 300_000
	exportFlushRows    = 65_536
	exportRowGroupSize = 32_768
)

// jobsPartition is one (year, month) of jobs and its row count; Year is 0 for the jobs
// without a partition date.
type jobsPartition struct {
	Year, Month int
	Rows        int64
}

// groupPartitions cuts parts (in date order) into runs of consecutive months holding at
// most limit rows each (a single month may hold more); the jobs without a date are a run
// of their own.
func groupPartitions(parts []jobsPartition, limit int64) [][]jobsPartition {
	var groups [][]jobsPartition
	var cur []jobsPartition
	var n int64
	for _, p := range parts {
		if len(cur) > 0 && (n+p.Rows > limit || p.Year == 0 || cur[0].Year == 0) {
			groups = append(groups, cur)
			cur, n = nil, 0
		}
		cur = append(cur, p)
		n += p.Rows
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	return groups
}

// exportJobs writes jobs to target/year=YYYY/month=MM/data_<version>_<group>_<n>.parquet
// with one COPY … PARTITION_BY per group of months (see above). cols is the select list.
func (s *Store) exportJobs(ctx context.Context, target, version, cols string) error {
	rows, err := s.wconn.QueryContext(ctx, fmt.Sprintf(
		`SELECT coalesce(year(d), 0), coalesce(month(d), 0), count(*)
		 FROM (SELECT %s AS d FROM jobs) GROUP BY ALL ORDER BY ALL`, jobsPartDate))
	if err != nil {
		return fmt.Errorf("counting the partitions of jobs: %w", err)
	}
	var parts []jobsPartition
	for rows.Next() {
		var p jobsPartition
		if err := rows.Scan(&p.Year, &p.Month, &p.Rows); err != nil {
			rows.Close()
			return fmt.Errorf("counting the partitions of jobs: %w", err)
		}
		parts = append(parts, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("counting the partitions of jobs: %w", err)
	}
	// Dated months first, then the undated jobs.
	if len(parts) > 0 && parts[0].Year == 0 {
		parts = append(parts[1:], parts[0])
	}
	if _, err := s.wconn.ExecContext(ctx, fmt.Sprintf("SET partitioned_write_flush_threshold = %d", exportFlushRows)); err != nil {
		return err
	}
	defer func() {
		_, _ = s.wconn.ExecContext(context.WithoutCancel(ctx), "RESET partitioned_write_flush_threshold")
	}()
	for i, g := range groupPartitions(parts, exportGroupRows) {
		where := jobsPartDate + " IS NULL"
		if g[0].Year != 0 {
			last := g[len(g)-1]
			from := time.Date(g[0].Year, time.Month(g[0].Month), 1, 0, 0, 0, 0, time.UTC)
			to := time.Date(last.Year, time.Month(last.Month)+1, 1, 0, 0, 0, 0, time.UTC)
			where = fmt.Sprintf("%s >= DATE '%s' AND %s < DATE '%s'", jobsPartDate, from.Format(time.DateOnly),
				jobsPartDate, to.Format(time.DateOnly))
		}
		q := fmt.Sprintf(`COPY (SELECT %s, CAST(year(%s) AS VARCHAR) AS year, lpad(CAST(month(%s) AS VARCHAR), 2, '0') AS month
			FROM jobs WHERE %s) TO %s (FORMAT PARQUET, COMPRESSION ZSTD, PARTITION_BY (year, month),
			FILENAME_PATTERN %s, OVERWRITE_OR_IGNORE true, ROW_GROUP_SIZE %d)`,
			cols, jobsPartDate, jobsPartDate, where, QuoteString(target),
			QuoteString(fmt.Sprintf("data_%s_%d_{i}", version, i)), exportRowGroupSize)
		if _, err := s.wconn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("exporting jobs of %s: %w", groupName(g), err)
		}
	}
	return nil
}

func groupName(g []jobsPartition) string {
	if g[0].Year == 0 {
		return "no date"
	}
	last := g[len(g)-1]
	return fmt.Sprintf("%04d-%02d to %04d-%02d", g[0].Year, g[0].Month, last.Year, last.Month)
}

// exportMemoryLimit is DuckDB's memory limit while Export runs: Parquet writers hold a
// row group of every column in memory, which wide job rows push past the store's 64 MB.
const exportMemoryLimit = "192MB"

// bulkSettings sets the memory limit for a bulk copy, gives DuckDB every core and drops
// insertion-order preservation, which costs memory and means nothing in an export or a
// copy, and returns the function that puts the store's settings back. Callers hold s.mu.
func (s *Store) bulkSettings(ctx context.Context, limit string) (restore func(), err error) {
	set := func(ctx context.Context, limit string, threads int, order bool) error {
		_, err := s.wconn.ExecContext(ctx, fmt.Sprintf(
			`SET GLOBAL memory_limit = %s; SET GLOBAL threads = %d; SET GLOBAL preserve_insertion_order = %t`,
			QuoteString(limit), threads, order))
		return err
	}
	if err := set(ctx, limit, runtime.NumCPU(), false); err != nil {
		return nil, fmt.Errorf("configuring DuckDB for a bulk copy: %w", err)
	}
	return func() {
		if err := set(context.WithoutCancel(ctx), memoryLimit, writeThreads, true); err != nil {
			s.log.Warn("restoring DuckDB settings after a bulk copy", "err", err)
		}
	}, nil
}
