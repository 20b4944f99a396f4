package extract

import (
	"bufio"
	"bytes"
	"database/sql"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// BenchmarkCrawl measures the acceptance account and a million jobs. Run it alone, once:
//
//	go test ./extract -run '^$' -bench Crawl -benchtime 1x -timeout 60m
//
// acceptance (20 workspaces, 2,000 streams, ~200,000 jobs): calls of the full crawl and
// of the incremental crawl an hour later (10% of streams ran, one renamed) against their
// minimum, and job rows loaded per second. The store is compared with the simulator's
// ground truth after each crawl.
//
// million (1,300 streams, just over 1,000,000 jobs): the crawl runs in a child process so its peak
// RSS is the crawler's alone (the simulator holding the account stays in the parent).
func BenchmarkCrawl(b *testing.B) {
	b.Run("acceptance", func(b *testing.B) {
		for range b.N {
			benchAcceptance(b)
		}
	})
	b.Run("million", func(b *testing.B) {
		for range b.N {
			benchMillion(b, "")
		}
	})
	// The same with DuckDB's memory_limit raised from the store's default: the difference
	// is DuckDB's buffer pool, not the crawler.
	b.Run("million-duckdb-200MB", func(b *testing.B) {
		for range b.N {
			benchMillion(b, "200MB")
		}
	})
}

func benchAcceptance(b *testing.B) {
	b.StopTimer()
	e := newEnv(b, sim.Options{Seed: 2026, Workspaces: 20, Streams: 2000, JobsPerStream: 100})
	tr := e.sim.Truth()
	counts, streams := truthJobCounts(b, tr)
	x := expectStats(counts, truthRan(b, tr), DefaultRequestPageSize, 1000, DefaultEmptyPageChecks)
	W := len(tr.Workspaces)
	minimum := 1 + W + x.Minimum + len(streams) + 5*W

	b.StartTimer()
	start := time.Now()
	res := e.crawl(Options{})
	elapsed := time.Since(start)
	b.StopTimer()
	if res.Status != load.RunOK {
		b.Fatalf("full crawl: %s %v", res.Status, res.Incomplete)
	}
	e.assertEqualTruth()
	want := minimum + x.Probes + x.Checks + (x.Pages - x.Minimum)
	if res.Calls != want {
		b.Errorf("full crawl: %d calls, want %d", res.Calls, want)
	}
	b.ReportMetric(float64(res.Calls), "calls/full")
	b.ReportMetric(float64(minimum), "min-calls/full")
	b.ReportMetric(float64(res.Rows[load.Jobs])/elapsed.Seconds(), "job-rows/s")
	b.ReportMetric(float64(res.Rows[load.Jobs]), "jobs")

	// An hour in which a tenth of the streams ran and one was renamed.
	beforeJobs := truthJobsOf(b, tr)
	var ran []int64
	for i, id := range streams {
		if i%10 == 3 {
			ran = append(ran, id)
		}
	}
	e.sim.RunStreams(ran)
	e.sim.Advance(time.Hour)
	e.sim.Mutate(func(st *sim.State) {
		if err := st.RenameStream(streams[0], "renamed by the benchmark"); err != nil {
			b.Fatal(err)
		}
	})
	afterJobs := truthJobsOf(b, e.sim.Truth())
	_, pages := changedPages(beforeJobs, afterJobs, 1000)
	e.sim.ResetCalls()
	b.StartTimer()
	res = e.crawl(Options{})
	b.StopTimer()
	if res.Status != load.RunOK {
		b.Fatalf("incremental crawl: %s %v", res.Status, res.Incomplete)
	}
	e.assertEqualTruth()
	minIncr := 1 + W + pages
	if float64(res.Calls) > 1.1*float64(minIncr) {
		b.Errorf("incremental crawl: %d calls, more than 1.1 × %d", res.Calls, minIncr)
	}
	b.ReportMetric(float64(res.Calls), "calls/incremental")
	b.ReportMetric(float64(minIncr), "min-calls/incremental")
}

// Environment of BenchmarkCrawl's million: the jobs per stream asked of the simulator
// (default 1000, which gives a million jobs; smaller for a quick run) and, in the child, a memory sample
// every interval (e.g. "1s") on stderr, to see what the peak is made of.
const (
	benchJobsPerStreamEnv = "DREXTRACT_BENCH_JOBS_PER_STREAM"
	childMemSampleEnv     = "DREXTRACT_CRAWL_MEM_SAMPLE"
)

// childPeakPrefix starts the line on which the crawl child reports its peak resident
// memory. The child reads its own VmHWM: the Maxrss the parent gets from wait4 is not the
// child's alone, since Linux carries the high-water mark of the address space the child
// was forked with (the parent's, simulator and all) across exec.
const childPeakPrefix = "crawl-child-peak-rss-kb: "

func benchMillion(b *testing.B, duckdbMemory string) {
	b.StopTimer()
	perStream := 1000
	if v := os.Getenv(benchJobsPerStreamEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("%s=%q: want a positive number", benchJobsPerStreamEnv, v)
		}
		perStream = n
	}
	// 1,300 streams of about 800 jobs each (streams created or disabled within the
	// 1,200-day history have fewer than asked for): just over a million jobs.
	e := newEnv(b, sim.Options{Seed: 1000000, Workspaces: 20, Streams: 1300, JobsPerStream: perStream})
	e.store.Close() // the child owns the file
	jobs := len(e.sim.Truth().Jobs)
	if perStream == 1000 && jobs < 1_000_000 {
		b.Fatalf("the account has %d jobs, fewer than the million the benchmark is for", jobs)
	}
	cmd := childCommand(e, "workspaces,streams,jobs")
	cmd.Args = append(cmd.Args, "-test.v")
	cmd.Env = append(cmd.Env, childDuckDBMemoryEnv+"="+duckdbMemory)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b.StartTimer()
	start := time.Now()
	out, err := cmd.Output()
	elapsed := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatalf("crawl child: %v\n%s\n%s", err, out, stderr.Bytes())
	}
	peakKB := -1
	for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), childPeakPrefix); ok {
			if peakKB, err = strconv.Atoi(v); err != nil {
				b.Fatalf("crawl child's peak: %v", err)
			}
		}
	}
	if peakKB < 0 {
		b.Fatalf("the crawl child did not report its peak memory:\n%s", out)
	}
	peakMB := float64(peakKB) / 1024
	e.openStore()
	if got := e.queryInt("SELECT count(*) FROM jobs WHERE NOT is_deleted"); got != jobs {
		b.Errorf("stored %d jobs, the account has %d", got, jobs)
	}
	if peakMB >= 300 && duckdbMemory == "" { // the target is for the store as it ships
		b.Errorf("peak RSS %.0f MB, target under 300 MB", peakMB)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		b.Logf("wait4 maxrss %d MB (inherits the parent's high-water mark, not the crawl's)", ru.Maxrss>>10)
	}
	b.Logf("child: %s%s", out, stderr.Bytes())
	b.ReportMetric(peakMB, "peak-RSS-MB")
	if fi, err := os.Stat(e.dbPath); err == nil {
		b.ReportMetric(float64(fi.Size())/(1<<20), "store-MB")
	}
	b.ReportMetric(float64(jobs)/elapsed.Seconds(), "job-rows/s")
	b.ReportMetric(float64(jobs), "jobs")
}

// watchChildMemory is for the crawl child: it samples memory while the crawl runs if
// childMemSampleEnv asks for it, and returns the function that stops the sampling and
// prints the process's peak resident memory for benchMillion.
func watchChildMemory(db *sql.DB) func() {
	stop := make(chan struct{})
	done := make(chan struct{})
	every, _ := time.ParseDuration(os.Getenv(childMemSampleEnv))
	go func() {
		defer close(done)
		if every <= 0 {
			return
		}
		start := time.Now()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fmt.Fprintf(os.Stderr, "mem %5.1fs %s\n", time.Since(start).Seconds(), memorySample(db))
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		fmt.Printf("%s%d\n", childPeakPrefix, procStatusKB("VmHWM"))
	}
}

// memorySample is one line of what the process's memory is made of: resident (current
// and peak), the Go heap, and DuckDB's buffer manager by tag.
func memorySample(db *sql.DB) string {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	line := fmt.Sprintf("rss %4d MB (anon %4d, file %3d) hwm %4d MB | go heap %4d MB sys %4d MB | duckdb",
		procStatusKB("VmRSS")>>10, procStatusKB("RssAnon")>>10, procStatusKB("RssFile")>>10,
		procStatusKB("VmHWM")>>10, ms.HeapInuse>>20, ms.Sys>>20)
	rows, err := db.Query(`SELECT tag, memory_usage_bytes >> 20, temporary_storage_bytes >> 20
		FROM duckdb_memory() WHERE memory_usage_bytes + temporary_storage_bytes >= 1 << 20
		ORDER BY memory_usage_bytes DESC`)
	if err != nil {
		return line + " " + err.Error()
	}
	defer rows.Close()
	for rows.Next() {
		var tag string
		var mem, tmp int64
		if rows.Scan(&tag, &mem, &tmp) == nil {
			line += fmt.Sprintf(" %s=%d", tag, mem)
			if tmp > 0 {
				line += fmt.Sprintf("(+%d on disk)", tmp)
			}
		}
	}
	return line
}

// procStatusKB is a field of /proc/self/status in KiB, or -1 if there is none.
func procStatusKB(field string) int {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
