package bench

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/drextract/drextract/audit"
	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/extract"
	"github.com/drextract/drextract/extract/extracttest"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// Settings: a flag, or the environment variable named in its usage when the flag is not
// given (go test passes flags it does not know to the test binary:
// go test ./bench -bench Table -benchtime 1x -calls-seed 7).
var (
	callsSeed     = flag.Int64("calls-seed", envInt("DREXTRACT_BENCH_CALLS_SEED", 2026), "seed of the calls account (DREXTRACT_BENCH_CALLS_SEED)")
	loadSeed      = flag.Int64("load-seed", envInt("DREXTRACT_BENCH_LOAD_SEED", 1000000), "seed of the million-job account (DREXTRACT_BENCH_LOAD_SEED)")
	jobsPerStream = flag.Int("jobs-per-stream", int(envInt("DREXTRACT_BENCH_JOBS_PER_STREAM", 1000)), "jobs asked per stream of the 1,300-stream account; 1000 gives a million (DREXTRACT_BENCH_JOBS_PER_STREAM)")
	workers       = flag.Int("workers", int(envInt("DREXTRACT_BENCH_WORKERS", 16)), "crawl workers of the jobs/s rows (DREXTRACT_BENCH_WORKERS)")
	tableOut      = flag.String("table-out", os.Getenv("DREXTRACT_BENCH_TABLE"), "also write the table to this file (DREXTRACT_BENCH_TABLE)")
)

func envInt(name string, def int64) int64 {
	if v, err := strconv.ParseInt(os.Getenv(name), 10, 64); err == nil {
		return v
	}
	return def
}

// Targets of issue 15.
const (
	targetCallsRatio    = 1.10
	targetJobsPerSec800 = 50_000
	targetJobsPerSec100 = 20_000
	targetPeakMB        = 300
	targetExportRatio   = 2.0
	targetExportPeakMB  = 400
)

// BenchmarkTable runs every measurement once and prints the table. Run it alone:
//
//	go test ./bench -run '^$' -bench Table -benchtime 1x -timeout 60m
func BenchmarkTable(b *testing.B) {
	for range b.N {
		b.StopTimer()
		var t table
		callsRows(b, &t)
		loadAndExportRows(b, &t)
		out := t.String()
		fmt.Print(out)
		if *tableOut != "" {
			if err := os.WriteFile(*tableOut, []byte(out), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// table is the printed result: one row per measurement.
type table struct{ rows []row }

type row struct {
	what              string
	got, ref          string // drextract's figure and the reference's
	ratio             string
	target            string
	met               bool
	peakMB, refPeakMB float64 // 0: not measured
	cpu, refCPU       float64 // CPU seconds of the child processes; 0: not measured
}

func (t *table) add(r row) { t.rows = append(t.rows, r) }

func (t *table) String() string {
	var buf bytes.Buffer
	w := tabwriter.NewWriter(&buf, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(w, "measure\t drextract\t reference\t ratio\t target\t peak RSS MB (drextract / reference)\t CPU s (drextract / reference)")
	secs := func(v float64) string {
		if v == 0 {
			return "—"
		}
		return fmt.Sprintf("%.1f", v)
	}
	mb := func(v float64) string {
		if v == 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f", v)
	}
	for _, r := range t.rows {
		target := r.target
		if target != "" {
			if r.met {
				target += " ✓"
			} else {
				target += " ✗"
			}
		}
		fmt.Fprintf(w, "%s\t %s\t %s\t %s\t %s\t %s / %s\t %s / %s\n", r.what, r.got, r.ref, r.ratio, target,
			mb(r.peakMB), mb(r.refPeakMB), secs(r.cpu), secs(r.refCPU))
	}
	_ = w.Flush()
	return buf.String()
}

// accountStart is when the simulated accounts are generated: every child's clock starts
// there too (plus the hours the benchmark lets pass).
var accountStart = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// server is a simulator over real HTTP, mounted under /base like the tests mount it.
type server struct {
	sim *sim.Sim
	clk *clock.Manual
	url string
}

func newServer(b *testing.B, o sim.Options) *server {
	b.Helper()
	// The account's time is fixed, so that a seed always makes the same account.
	clk := clock.NewManual(accountStart)
	o.Clock = clk
	o.PlatformLimit, o.DailyQuota = 1<<30, 1<<30 // the simulator, not the API's limits
	s := sim.New(o)
	srv := httptest.NewServer(http.StripPrefix("/base", s))
	b.Cleanup(srv.Close)
	return &server{sim: s, clk: clk, url: srv.URL + "/base"}
}

// callsRows crawls a 10-workspace, 600-stream account of 100 jobs per stream in full,
// then after each of three hours, then after a day, each against its minimum.
func callsRows(b *testing.B, t *table) {
	srv := newServer(b, sim.Options{Seed: *callsSeed, Workspaces: 10, Streams: 600, JobsPerStream: 100})
	db := filepath.Join(b.TempDir(), load.LiveFile)
	var before sim.Truth
	steps := []struct {
		name    string
		advance time.Duration
	}{
		{"full crawl", 0}, {"hourly incremental 1", time.Hour}, {"hourly incremental 2", time.Hour},
		{"hourly incremental 3", time.Hour}, {"after a 24 h gap", 24 * time.Hour},
	}
	sinceLists := time.Duration(0)
	for i, st := range steps {
		srv.sim.Advance(st.advance)
		sinceLists += st.advance
		after := srv.sim.Truth()
		due := i == 0 || sinceLists >= extract.DefaultWorkspaceListsEvery
		if due {
			sinceLists = 0
		}
		// The yardstick the crawl's own tests use (issue 15's ruling on the minimum).
		o := extracttest.Options{PageSize: simPageCap, WorkspaceLists: due}
		var m extracttest.Minimum
		var err error
		if i == 0 {
			m, err = extracttest.Full(after, o)
		} else {
			m, err = extracttest.Incremental(before, after, o)
		}
		if err != nil {
			b.Fatal(err)
		}
		minimum := m.Calls()
		srv.sim.ResetCalls()
		res := runChild(b, "crawl", spec{URL: srv.url, Token: srv.sim.Tokens()[0], DB: db, Now: srv.clk.Now()})
		calls := srv.sim.Calls().Total
		ratio := float64(calls) / float64(minimum)
		t.add(row{
			what: fmt.Sprintf("calls, %s (10 workspaces × 600 streams × 100 jobs)", st.name),
			got:  strconv.Itoa(calls), ref: fmt.Sprintf("%d minimum", minimum),
			ratio: fmt.Sprintf("%.2f×", ratio), target: fmt.Sprintf("≤ %.2f×", targetCallsRatio),
			met: ratio <= targetCallsRatio, peakMB: res.peakMB(), cpu: res.CPUSeconds,
		})
		before = after
	}
}

// simPageCap is the stats page size a default crawl ends up using: the simulator's
// default MaxPageSize, which it learns.
const simPageCap = 1000

// loadAndExportRows crawls a million jobs with 800-job and with 100-job pages, loads the
// same pages with a bare Appender, and exports the first store against a bare COPY.
func loadAndExportRows(b *testing.B, t *table) {
	srv := newServer(b, sim.Options{Seed: *loadSeed, Workspaces: 20, Streams: 1300, JobsPerStream: *jobsPerStream})
	jobs := len(srv.sim.Truth().Jobs)
	dir := b.TempDir()
	var exportDB string
	for _, page := range []struct {
		size   int
		target float64
	}{{800, targetJobsPerSec800}, {100, targetJobsPerSec100}} {
		db := filepath.Join(dir, fmt.Sprintf("page%d", page.size), load.LiveFile)
		if exportDB == "" {
			exportDB = db
		}
		res := runChild(b, "crawl", spec{URL: srv.url, Token: srv.sim.Tokens()[0], DB: db, Now: srv.clk.Now(),
			Workers: *workers, PageSize: page.size, Entities: "workspaces,streams,jobs"})
		if res.Rows != int64(jobs) {
			b.Errorf("the crawl with %d-job pages stored %d job rows, the account has %d", page.size, res.Rows, jobs)
		}
		bare := runChild(b, "bare-load", spec{URL: srv.url, Token: srv.sim.Tokens()[0],
			DB: filepath.Join(dir, fmt.Sprintf("bare%d.duckdb", page.size)), PageSize: page.size})
		if bare.Rows != int64(jobs) {
			b.Errorf("the bare load of %d-job pages appended %d rows, the account has %d", page.size, bare.Rows, jobs)
		}
		rate, bareRate := float64(res.Rows)/res.Seconds, float64(bare.Rows)/bare.Seconds
		t.add(row{
			what: fmt.Sprintf("jobs/s, %d-job pages (%d jobs in %d pages, %d workers)", page.size, res.Rows, res.Pages, *workers),
			got:  fmt.Sprintf("%.0f", rate), ref: fmt.Sprintf("%.0f bare Appender", bareRate),
			ratio: fmt.Sprintf("%.2f", rate/bareRate), target: fmt.Sprintf("≥ %d, < %d MB", int(page.target), targetPeakMB),
			met: rate >= page.target && res.peakMB() < targetPeakMB, peakMB: res.peakMB(), refPeakMB: bare.peakMB(),
			cpu: res.CPUSeconds, refCPU: bare.CPUSeconds,
		})
	}
	exp := runChild(b, "export", spec{DB: exportDB, Dir: filepath.Join(dir, "export")})
	bare := runChild(b, "bare-export", spec{DB: exportDB, Dir: filepath.Join(dir, "bare-export")})
	ratio := exp.Seconds / bare.Seconds
	t.add(row{
		what: fmt.Sprintf("export s (%d rows, the store of the 800-job crawl)", exp.Rows),
		got:  fmt.Sprintf("%.1f", exp.Seconds), ref: fmt.Sprintf("%.1f bare COPY", bare.Seconds),
		ratio: fmt.Sprintf("%.2f×", ratio), target: fmt.Sprintf("≤ %.0f×, ≤ %d MB", targetExportRatio, targetExportPeakMB),
		met: ratio <= targetExportRatio && exp.peakMB() <= targetExportPeakMB, peakMB: exp.peakMB(), refPeakMB: bare.peakMB(),
		cpu: exp.CPUSeconds, refCPU: bare.CPUSeconds,
	})
}

// Child processes: the test binary run again with childEnv set to a role runs it instead
// of the tests and reports one result line.
const (
	childEnv     = "DREXTRACT_BENCH_CHILD"
	childSpecEnv = "DREXTRACT_BENCH_SPEC"
	// profileEnv, when set to a folder, makes every child write a CPU profile there.
	profileEnv   = "DREXTRACT_BENCH_PROFILE"
	resultPrefix = "bench-result: "
)

// spec is what a child is asked to do.
type spec struct {
	URL, Token string
	DB         string // store (crawl, export) or DuckDB file (bare-load, bare-export)
	Dir        string // export target
	Now        time.Time
	Workers    int
	PageSize   int
	Entities   string
}

// result is what a child reports.
type result struct {
	Status  string
	Calls   int
	Rows    int64
	Pages   int
	Seconds float64 // of the measured work only
	PeakKB  int     // VmHWM of the child
	// CPUSeconds is the child's CPU time, user and system, for all it did (not only the
	// measured work): steadier than the rates on a busy machine.
	CPUSeconds float64
}

func (r result) peakMB() float64 { return float64(r.PeakKB) / 1024 }

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(child(role))
	}
	os.Exit(m.Run())
}

// runChild runs role in a child process and returns its result.
func runChild(b *testing.B, role string, sp spec) result {
	b.Helper()
	js, err := json.Marshal(sp)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+role, childSpecEnv+"="+string(js))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("%s child: %v\n%s\n%s", role, err, out, stderr.Bytes())
	}
	for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), resultPrefix); ok {
			var r result
			if err := json.Unmarshal([]byte(v), &r); err != nil {
				b.Fatalf("%s child's result %q: %v", role, v, err)
			}
			return r
		}
	}
	b.Fatalf("%s child reported no result:\n%s\n%s", role, out, stderr.Bytes())
	return result{}
}

func child(role string) int {
	var sp spec
	if err := json.Unmarshal([]byte(os.Getenv(childSpecEnv)), &sp); err != nil {
		fmt.Fprintln(os.Stderr, "bench child: spec:", err)
		return 2
	}
	ctx := context.Background()
	if dir := os.Getenv(profileEnv); dir != "" {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", role, os.Getpid())))
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench child: profile:", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	var r result
	var err error
	switch role {
	case "crawl":
		r, err = crawlChild(ctx, sp)
	case "bare-load":
		r, err = bareLoadChild(ctx, sp)
	case "export":
		r, err = exportChild(ctx, sp)
	case "bare-export":
		r, err = bareExportChild(ctx, sp)
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench child %s: %v\n", role, err)
		return 1
	}
	r.PeakKB = procStatusKB("VmHWM")
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		r.CPUSeconds = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	js, _ := json.Marshal(r)
	fmt.Printf("%s%s\n", resultPrefix, js)
	return 0
}

var quiet = slog.New(slog.DiscardHandler)

// childClock is the account's time, moving on at the wall clock's pace from when the
// child starts; its timers wait real time.
type childClock struct {
	base  time.Time
	start time.Time
}

func newChildClock(now time.Time) *childClock { return &childClock{base: now, start: time.Now()} }

func (c *childClock) Now() time.Time { return c.base.Add(time.Since(c.start)) }

func (c *childClock) After(d time.Duration) <-chan time.Time { return clock.Real{}.After(d) }

func (c *childClock) Timer(d time.Duration) (<-chan time.Time, func()) { return clock.Real{}.Timer(d) }

// crawlChild crawls the simulator into the store the way drextract extract does.
func crawlChild(ctx context.Context, sp spec) (result, error) {
	clk := newChildClock(sp.Now)
	st, err := load.Open(ctx, sp.DB, load.Options{Clock: clk, Logger: quiet})
	if err != nil {
		return result{}, err
	}
	// As run.Runner.Extract wires a crawl: every attempt journaled for api_calls, and the
	// journal made durable before each commit of pages (audit.Sink).
	rec := audit.New(load.NewJournal(sp.DB), audit.Options{Logger: quiet})
	counter := extract.NewAudit()
	c, err := datorama.New(sp.URL, sp.Token, datorama.WithObserver(multiObserver{rec, counter}),
		datorama.WithClock(clk), datorama.WithLogger(quiet))
	if err != nil {
		return result{}, errors.Join(err, st.Close())
	}
	o := extract.Options{Workers: sp.Workers, RequestPageSize: sp.PageSize, Clock: clk, Logger: quiet}
	if sp.Entities != "" {
		o.Entities = []string{sp.Entities}
	}
	cr := &extract.Crawler{Client: c, Sink: audit.Sink(st, rec), Audit: counter}
	start := time.Now()
	res, err := cr.Run(ctx, o)
	elapsed := time.Since(start)
	var pages int
	if err == nil {
		_, err = st.FoldJournal(ctx)
	}
	if err == nil {
		err = st.DB().QueryRowContext(ctx, `SELECT count(*) FROM api_calls
			WHERE run_id = $1 AND path_template LIKE '%/stats' AND status = 200`, res.RunID).Scan(&pages)
	}
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err == nil && res.Status != load.RunOK {
		err = fmt.Errorf("crawl ended %s: %v %v", res.Status, res.Incomplete, res.Err)
	}
	return result{Status: res.Status, Calls: res.Calls, Rows: int64(res.Rows[load.Jobs]), Pages: pages,
		Seconds: elapsed.Seconds()}, err
}

// multiObserver hands every attempt to each observer.
type multiObserver []datorama.Observer

func (m multiObserver) ObserveCall(r datorama.CallRecord) {
	for _, o := range m {
		o.ObserveCall(r)
	}
}

// jobsDDL is the store's jobs table (sql/migrations/0001_core.sql), for the bare load.
const jobsDDL = `CREATE TABLE jobs (id BIGINT NOT NULL, stream_id BIGINT, workspace_id BIGINT,
	status VARCHAR, status_reason VARCHAR, data_start_date DATE, data_end_date DATE,
	start_execution_time TIMESTAMPTZ, end_execution_time TIMESTAMPTZ, user_id BIGINT, raw JSON,
	run_id BIGINT, first_seen TIMESTAMPTZ NOT NULL, last_seen TIMESTAMPTZ NOT NULL,
	is_deleted BOOLEAN NOT NULL DEFAULT false, deleted_at TIMESTAMPTZ)`

// bareLoadChild reads every stream's jobs with pages of sp.PageSize, one after the other,
// and appends the decoded rows to a plain DuckDB table with one Appender: DuckDB's own
// load speed for the same rows. Only the appending is timed.
func bareLoadChild(ctx context.Context, sp spec) (r result, err error) {
	c, err := datorama.New(sp.URL, sp.Token, datorama.WithLogger(quiet))
	if err != nil {
		return r, err
	}
	connector, err := duckdb.NewConnector(sp.DB, nil)
	if err != nil {
		return r, err
	}
	db := sql.OpenDB(connector)
	defer func() { err = errors.Join(err, db.Close()) }()
	if _, err := db.ExecContext(ctx, jobsDDL); err != nil {
		return r, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return r, err
	}
	defer conn.Close()
	var timed time.Duration
	err = conn.Raw(func(dc any) error {
		a, err := duckdb.NewAppender(dc.(driver.Conn), "", "", "jobs")
		if err != nil {
			return err
		}
		now := time.Now()
		wss, err := c.Workspaces.List(ctx)
		if err != nil {
			return err
		}
		for _, ws := range wss {
			streams, err := c.Streams.List(ctx, ws.ID)
			if err != nil {
				return err
			}
			for _, s := range streams {
				for p := 1; ; p++ {
					jobs, err := c.Jobs.Page(ctx, s.ID, sp.PageSize, p)
					if err != nil {
						return err
					}
					start := time.Now()
					for i := range jobs {
						j := &jobs[i]
						if err := a.AppendRow(j.ID, s.ID, ws.ID, j.Status, j.StatusReason, nullTime(j.DataStartDate.Time),
							nullTime(j.DataEndDate.Time), nullTime(j.StartExecutionTime.Time), nullTime(j.EndExecutionTime.Time),
							int64(j.UserID), string(j.Raw), int64(1), now, now, false, nil); err != nil {
							return err
						}
					}
					timed += time.Since(start)
					r.Rows += int64(len(jobs))
					r.Pages++
					if len(jobs) < sp.PageSize {
						break
					}
				}
			}
		}
		start := time.Now()
		err = a.Close()
		timed += time.Since(start)
		return err
	})
	r.Seconds = timed.Seconds()
	return r, err
}

func nullTime(t time.Time) driver.Value {
	if t.IsZero() {
		return nil
	}
	return t
}

// exportChild runs the store's Parquet export.
func exportChild(ctx context.Context, sp spec) (result, error) {
	st, err := load.Open(ctx, sp.DB, load.Options{Logger: quiet})
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	stats, err := st.Export(ctx, sp.Dir)
	elapsed := time.Since(start)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	return result{Rows: stats.TotalRows(), Seconds: elapsed.Seconds()}, err
}

// bareExportChild copies the same tables to Parquet with DuckDB alone, at its default
// settings: jobs partitioned by year and month like the export, zstd.
func bareExportChild(ctx context.Context, sp spec) (r result, err error) {
	connector, err := duckdb.NewConnector(sp.DB+"?access_mode=read_only", nil)
	if err != nil {
		return r, err
	}
	db := sql.OpenDB(connector)
	defer func() { err = errors.Join(err, db.Close()) }()
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM duckdb_tables()
		WHERE database_name = current_database() AND schema_name = 'main' AND NOT temporary
		AND table_name <> 'schema_migrations' ORDER BY table_name`)
	if err != nil {
		return r, err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return r, err
		}
		tables = append(tables, t)
	}
	rows.Close()
	if err := os.MkdirAll(sp.Dir, 0o755); err != nil {
		return r, err
	}
	start := time.Now()
	for _, t := range tables {
		var n int64
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM "`+t+`"`).Scan(&n); err != nil {
			return r, err
		}
		r.Rows += n
		q := fmt.Sprintf(`COPY "%s" TO '%s' (FORMAT PARQUET, COMPRESSION ZSTD)`, t, filepath.Join(sp.Dir, t+".parquet"))
		if t == load.Jobs {
			q = fmt.Sprintf(`COPY (SELECT *, year(data_start_date) AS year, month(data_start_date) AS month FROM jobs)
				TO '%s' (FORMAT PARQUET, COMPRESSION ZSTD, PARTITION_BY (year, month))`, filepath.Join(sp.Dir, t))
		}
		if _, err := db.ExecContext(ctx, q); err != nil {
			return r, fmt.Errorf("copying %s: %w", t, err)
		}
	}
	r.Seconds = time.Since(start).Seconds()
	return r, nil
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
