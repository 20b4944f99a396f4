package load

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
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
// jobs is partitioned by data time, not load time: dir/jobs/year=YYYY/month=M/, from the
// job's dataStartDate, or, when the API sent none, the UTC date of startExecutionTime;
// jobs with neither land in year=__HIVE_DEFAULT_PARTITION__. Other tables are one file,
// dir/<table>/data_<version>.parquet. Writes to the store wait while the snapshot is read.
func (s *Store) Export(ctx context.Context, dir string) (ExportStats, error) {
	if s.readOnly {
		return ExportStats{}, errReadOnly
	}
	start := time.Now()
	stats := ExportStats{Dir: dir, Rows: map[string]int64{}}
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
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return stats, fmt.Errorf("export: %w", err)
	}
	if err := s.exportTables(ctx, tmp, name, stats.Rows); err != nil {
		return stats, fmt.Errorf("export: %w", err)
	}
	files, bytes, err := syncTree(tmp)
	if err != nil {
		return stats, fmt.Errorf("export: syncing %s: %w", tmp, err)
	}
	stats.Files, stats.Bytes = files, bytes
	if err := s.stage("export:written"); err != nil {
		return stats, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return stats, fmt.Errorf("export: %w", err)
	}
	if err := syncDir(versions); err != nil {
		return stats, fmt.Errorf("export: %w", err)
	}
	if err := s.stage("export:complete"); err != nil {
		return stats, err
	}
	previous, _ := os.Readlink(dir)
	if err := swapLink(dir, filepath.Join(filepath.Base(versions), name)); err != nil {
		return stats, fmt.Errorf("export: %w", err)
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

// stage lets tests stop Export and Publish between steps, as a kill would.
func (s *Store) stage(name string) error {
	if s.exportStage == nil {
		return nil
	}
	return s.exportStage(name)
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
			if t == "schema_migrations" {
				continue
			}
			target := filepath.Join(tmp, t)
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			var n int64
			if err := s.wconn.QueryRowContext(ctx, "SELECT count(*) FROM "+quoteIdent(t)).Scan(&n); err != nil {
				return fmt.Errorf("counting %s: %w", t, err)
			}
			if t == Jobs {
				if err := s.exportJobs(ctx, target, version); err != nil {
					return err
				}
			} else {
				q := fmt.Sprintf(`COPY (SELECT * FROM %s) TO %s (FORMAT PARQUET, COMPRESSION ZSTD)`,
					quoteIdent(t), quoteString(filepath.Join(target, "data_"+version+".parquet")))
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
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	return nil
}

func quoteIdent(s string) string  { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func quoteString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// Publish writes the BI copy: the whole store is copied into servingPath+".new" (one
// consistent snapshot), which is closed, synced and renamed over servingPath. Readers
// that had the old file open keep reading it; new opens see the new one. A kill at any
// point leaves the old file in place; its leftovers are removed by the next Publish.
func (s *Store) Publish(ctx context.Context, servingPath string) error {
	if s.readOnly {
		return errReadOnly
	}
	start := time.Now()
	tmp := servingPath + publishSuffix
	for _, p := range []string{tmp, tmp + ".wal"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("publish: removing leftover %s: %w", p, err)
		}
	}
	if err := s.copyDatabase(ctx, tmp); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if _, err := os.Stat(tmp + ".wal"); err == nil {
		return fmt.Errorf("publish: %s still has a WAL after detaching", tmp)
	}
	if err := syncFile(tmp); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if err := s.stage("publish:written"); err != nil {
		return err
	}
	if err := os.Rename(tmp, servingPath); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if err := syncDir(filepath.Dir(servingPath)); err != nil {
		return fmt.Errorf("publish: %w", err)
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
	if _, err := s.wconn.ExecContext(ctx, fmt.Sprintf("ATTACH %s AS %s", quoteString(tmp), servingAlias)); err != nil {
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
		quoteIdent(current), servingAlias)); err != nil {
		return fmt.Errorf("copying into %s: %w", tmp, err)
	}
	return nil
}

// jobsYear and jobsMonth are a job's partition: its data start date or, when the API
// sent none, the UTC date it started; NULL when it has neither.
const (
	jobsPartDate = `coalesce(data_start_date, CAST(timezone('UTC', start_execution_time) AS DATE))`
	jobsYear     = `year(` + jobsPartDate + `)`
	jobsMonth    = `month(` + jobsPartDate + `)`
)

// hiveDefault is the partition value of NULL, as DuckDB and Spark name it.
const hiveDefault = "__HIVE_DEFAULT_PARTITION__"

// exportJobs writes jobs to target/year=Y/month=M/data_<version>.parquet, one COPY per
// partition. One COPY … PARTITION_BY keeps a row group open per partition at once: a
// million jobs over three years needed a 1 GB memory limit and 1 GB resident, where one
// partition at a time runs within exportMemoryLimit at about half the speed.
func (s *Store) exportJobs(ctx context.Context, target, version string) error {
	rows, err := s.wconn.QueryContext(ctx, fmt.Sprintf(
		`SELECT DISTINCT %s AS y, %s AS m FROM jobs ORDER BY ALL`, jobsYear, jobsMonth))
	if err != nil {
		return fmt.Errorf("listing the partitions of jobs: %w", err)
	}
	type part struct{ y, m sql.NullInt64 }
	var parts []part
	for rows.Next() {
		var p part
		if err := rows.Scan(&p.y, &p.m); err != nil {
			rows.Close()
			return fmt.Errorf("listing the partitions of jobs: %w", err)
		}
		parts = append(parts, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing the partitions of jobs: %w", err)
	}
	value := func(v sql.NullInt64) (dir, cond string) {
		if !v.Valid {
			return hiveDefault, " IS NULL"
		}
		return strconv.FormatInt(v.Int64, 10), " = " + strconv.FormatInt(v.Int64, 10)
	}
	for _, p := range parts {
		yDir, yCond := value(p.y)
		mDir, mCond := value(p.m)
		dir := filepath.Join(target, "year="+yDir, "month="+mDir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		q := fmt.Sprintf(`COPY (SELECT * FROM jobs WHERE %s%s AND %s%s) TO %s (FORMAT PARQUET, COMPRESSION ZSTD)`,
			jobsYear, yCond, jobsMonth, mCond, quoteString(filepath.Join(dir, "data_"+version+".parquet")))
		if _, err := s.wconn.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("exporting jobs of year=%s/month=%s: %w", yDir, mDir, err)
		}
	}
	return nil
}

// exportMemoryLimit is DuckDB's memory limit while Export runs: Parquet writers hold a
// row group of every column in memory, which wide job rows push past the store's 64 MB.
const exportMemoryLimit = "256MB"

// bulkSettings sets the memory limit for a bulk copy, gives DuckDB every core and drops
// insertion-order preservation, which costs memory and means nothing in an export or a
// copy, and returns the function that puts the store's settings back. Callers hold s.mu.
func (s *Store) bulkSettings(ctx context.Context, limit string) (restore func(), err error) {
	set := func(ctx context.Context, limit string, threads int, order bool) error {
		_, err := s.wconn.ExecContext(ctx, fmt.Sprintf(
			`SET GLOBAL memory_limit = %s; SET GLOBAL threads = %d; SET GLOBAL preserve_insertion_order = %t`,
			quoteString(limit), threads, order))
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
