package extract

import (
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
// million (1,000 streams, ~1,000,000 jobs): the crawl runs in a child process so its peak
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
	// The same with DuckDB's buffer memory capped, which the store leaves at DuckDB's
	// default (80% of RAM): the difference is DuckDB's cache, not the crawler.
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

func benchMillion(b *testing.B, duckdbMemory string) {
	b.StopTimer()
	e := newEnv(b, sim.Options{Seed: 1000000, Workspaces: 20, Streams: 1000, JobsPerStream: 1000})
	e.store.Close() // the child owns the file
	tr := e.sim.Truth()
	jobs := len(tr.Jobs)
	cmd := childCommand(e, "workspaces,streams,jobs")
	cmd.Args = append(cmd.Args, "-test.v")
	cmd.Env = append(cmd.Env, childDuckDBMemoryEnv+"="+duckdbMemory)
	b.StartTimer()
	start := time.Now()
	out, err := cmd.CombinedOutput()
	elapsed := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatalf("crawl child: %v\n%s", err, out)
	}
	ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		b.Fatal("no rusage for the child")
	}
	peakMB := float64(ru.Maxrss) / 1024 // Maxrss is in KiB on Linux
	e.openStore()
	if got := e.queryInt("SELECT count(*) FROM jobs WHERE NOT is_deleted"); got != jobs {
		b.Errorf("stored %d jobs, the account has %d", got, jobs)
	}
	if peakMB >= 300 {
		b.Errorf("peak RSS %.0f MB, target under 300 MB", peakMB)
	}
	b.Logf("child: %s", out)
	b.ReportMetric(peakMB, "peak-RSS-MB")
	b.ReportMetric(float64(jobs)/elapsed.Seconds(), "job-rows/s")
	b.ReportMetric(float64(jobs), "jobs")
}
