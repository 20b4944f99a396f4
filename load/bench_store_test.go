package load_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/load/loadtest"
)

// Benchmarks on a store of a million jobs (loadtest.Million), built once per test
// process (about a minute) in a temporary folder:
//
//	go test ./load -run '^$' -bench 'Verify|Export' -benchtime 3x
//
// BenchmarkExport runs drextract's Export and a bare DuckDB COPY of the same tables in
// child processes, alternately, and reports both times and both peaks (the child's
// maximum resident set).

var (
	bigOnce sync.Once
	bigDir  string
	bigErr  error
)

// bigStore is the data directory of the million-job store; benchmarks copy what they
// change.
func bigStore(b *testing.B) string {
	b.Helper()
	bigOnce.Do(func() {
		bigDir, bigErr = os.MkdirTemp("", "drextract-bench-store-")
		if bigErr != nil {
			return
		}
		load.AfterTests(func() { _ = os.RemoveAll(bigDir) })
		start := time.Now()
		bigErr = loadtest.BuildStore(context.Background(), load.LivePath(bigDir), loadtest.Million)
		fmt.Fprintf(os.Stderr, "built a store of %d jobs in %s\n", loadtest.Million.Jobs, time.Since(start).Round(time.Second))
	})
	if bigErr != nil {
		b.Fatal(bigErr)
	}
	return bigDir
}

// BenchmarkVerify measures the checksum verification every Open does before DuckDB
// sees the file.
func BenchmarkVerify(b *testing.B) {
	path := load.LivePath(bigStore(b))
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := load.VerifyFile(path); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(fi.Size())/1e6, "store-MB")
	b.ReportMetric(float64(fi.Size())/1e6*float64(b.N)/b.Elapsed().Seconds(), "MB/s")
}

func init() {
	load.RegisterChildRole("bench-export", benchExportChild)
	load.RegisterChildRole("bench-copy", benchCopyChild)
}

// benchExportChild exports the data directory arg as drextract export does and prints
// the seconds Export took.
func benchExportChild(dir string) int {
	ctx := context.Background()
	s, err := load.Open(ctx, load.LivePath(dir), quiet())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	start := time.Now()
	if _, err := s.Export(ctx, filepath.Join(dir, load.ParquetDir)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(time.Since(start).Seconds())
	return 0
}

// benchCopyChild is the bare COPY the export is measured against: every table of the
// store at dir arg with DuckDB's defaults, jobs in one COPY … PARTITION_BY (year, month)
// of the same partition date, into a fresh folder.
func benchCopyChild(dir string) int {
	ctx := context.Background()
	fail := func(err error) int { fmt.Fprintln(os.Stderr, err); return 1 }
	ro, err := load.OpenReadOnly(ctx, load.LivePath(dir))
	if err != nil {
		return fail(err)
	}
	defer ro.Close()
	tables, err := ro.Tables(ctx)
	if err != nil {
		return fail(err)
	}
	out, err := os.MkdirTemp(dir, "bare-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(out)
	const pd = `coalesce(data_start_date, CAST(timezone('UTC', start_execution_time) AS DATE))`
	start := time.Now()
	for _, t := range tables {
		q := fmt.Sprintf(`COPY (SELECT * FROM "%s") TO '%s' (FORMAT PARQUET, COMPRESSION ZSTD)`, t, filepath.Join(out, t+".parquet"))
		if t == load.Jobs {
			q = fmt.Sprintf(`COPY (SELECT *, year(%s) AS year, month(%s) AS month FROM jobs) TO '%s'
				(FORMAT PARQUET, COMPRESSION ZSTD, PARTITION_BY (year, month))`, pd, pd, filepath.Join(out, t))
		}
		if _, err := ro.DB().ExecContext(ctx, q); err != nil {
			return fail(err)
		}
	}
	fmt.Println(time.Since(start).Seconds())
	return 0
}

// runTimed runs role on dir in a child process and returns the seconds it printed and
// its peak resident set in MB.
func runTimed(b *testing.B, role, dir string) (seconds, peakMB float64) {
	b.Helper()
	cmd := load.ChildProcess(role, dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, _ := bufio.NewReader(out).ReadString('\n')
	if err := cmd.Wait(); err != nil {
		b.Fatalf("%s: %v", role, err)
	}
	seconds, err = strconv.ParseFloat(strings.TrimSpace(line), 64)
	if err != nil {
		b.Fatalf("%s printed %q", role, line)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		b.Fatal("no resource usage for the child")
	}
	return seconds, float64(ru.Maxrss) / 1024 // kB on Linux
}

// BenchmarkExport is issue 15's export figure: drextract's Export against a bare
// partitioned COPY of the same store (target: at most 2x the time, at most 400 MB).
func BenchmarkExport(b *testing.B) {
	dir := bigStore(b)
	var exp, bare, expPeak, barePeak float64
	b.ResetTimer()
	for b.Loop() {
		s, p := runTimed(b, "bench-copy", dir)
		bare += s
		barePeak = max(barePeak, p)
		s, p = runTimed(b, "bench-export", dir)
		exp += s
		expPeak = max(expPeak, p)
	}
	n := float64(b.N)
	b.ReportMetric(exp/n, "export-s")
	b.ReportMetric(bare/n, "bare-copy-s")
	b.ReportMetric(exp/bare, "export/bare")
	b.ReportMetric(expPeak, "export-peak-MB")
	b.ReportMetric(barePeak, "bare-peak-MB")
}

// BenchmarkPublish measures the serving copy of the million-job store.
func BenchmarkPublish(b *testing.B) {
	dir := bigStore(b)
	ctx := context.Background()
	s, err := load.Open(ctx, load.LivePath(dir), quiet())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ResetTimer()
	for b.Loop() {
		if err := s.Publish(ctx, filepath.Join(dir, load.ServingFile)); err != nil {
			b.Fatal(err)
		}
	}
}
