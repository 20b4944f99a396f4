package cli

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/serve"
	"github.com/drextract/drextract/sim"
)

// serveEnv is a simulator over real HTTP (under a base path), a schedules file pointing
// at it, and a data directory, all on one virtual clock.
type serveEnv struct {
	t       *testing.T
	mc      *clock.Manual
	sim     *sim.Sim
	dir     string
	dataDir string
	config  string
	token   string
	logs    *lockedBuffer
}

// t0Serve is a Monday in winter: "TZ=Europe/Paris 0 7 * * *" fires at 06:00 UTC.
var t0Serve = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func newServeEnv(t *testing.T, o sim.Options, schedules string) *serveEnv {
	t.Helper()
	mc := clock.NewManual(t0Serve)
	o.Clock = mc
	s := sim.New(o)
	srv := httptest.NewServer(http.StripPrefix("/base", s))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	e := &serveEnv{t: t, mc: mc, sim: s, dir: dir, dataDir: filepath.Join(dir, "data"),
		config: filepath.Join(dir, "schedules.yaml"), token: s.Tokens()[0], logs: &lockedBuffer{}}
	t.Setenv("DRX_SERVE_TEST_TOKEN", e.token)
	var ws struct{ ID int64 }
	if err := json.Unmarshal(s.Truth().Workspaces[0], &ws); err != nil {
		t.Fatal(err)
	}
	schedules = strings.ReplaceAll(schedules, "{{WS}}", fmt.Sprint(ws.ID))
	doc := fmt.Sprintf(`version: 1
api:
  base_url: %s/base
  tokens:
    - env: DRX_SERVE_TEST_TOKEN
store:
  data_dir: %s
budget:
  platform_limit: %d
  daily_quota: %d
%s`, srv.URL, e.dataDir, o.PlatformLimit, o.DailyQuota, schedules)
	if err := os.WriteFile(e.config, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// daemonHandle is one running `drextract serve`.
type daemonHandle struct {
	sched  *serve.Scheduler
	addr   string
	cancel context.CancelFunc
	done   chan struct{} // closed when runServe returned, with err set
	err    error
}

// start runs `drextract serve` in-process on the env's clock and waits until it serves.
func (e *serveEnv) start() *daemonHandle {
	e.t.Helper()
	ready := make(chan *daemonHandle, 1)
	ctx, cancel := context.WithCancel(context.Background())
	h := &daemonHandle{cancel: cancel, done: make(chan struct{})}
	opts := serveOptions{listen: "127.0.0.1:0", clock: e.mc, onReady: func(s *serve.Scheduler, addr net.Addr) {
		h.sched, h.addr = s, addr.String()
		ready <- h
	}}
	g := &globalOptions{configPath: e.config, dataDir: "./unused", logLevel: "info",
		stdin: strings.NewReader(""), stdout: io.Discard, stderr: e.logs}
	cmd := newServeCommand(g)
	go func() {
		h.err = runServe(ctx, cmd, opts, g, nil)
		close(h.done)
	}()
	select {
	case <-ready:
	case <-h.done:
		e.t.Fatalf("serve ended before serving: %v\n%s", h.err, e.logs)
	case <-time.After(60 * time.Second):
		e.t.Fatalf("serve did not start\n%s", e.logs)
	}
	e.t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(30 * time.Second):
		}
	})
	return h
}

// stop cancels the daemon (as SIGTERM does) and returns how long it took to exit.
func (h *daemonHandle) stop(t *testing.T) time.Duration {
	t.Helper()
	begin := time.Now()
	h.cancel()
	select {
	case <-h.done:
		if h.err != nil {
			t.Errorf("serve returned %v after a stop", h.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30 s")
	}
	return time.Since(begin)
}

// idle reports whether no run is under way or queued and every schedule waits for a fire
// time still ahead of the clock.
func (h *daemonHandle) idle(now time.Time) (bool, time.Time) {
	snap := h.sched.Snapshot()
	if snap.Running != nil || len(snap.Queue) > 0 {
		return false, time.Time{}
	}
	var next time.Time
	for _, st := range snap.Schedules {
		if st.NextRun == nil || !st.NextRun.After(now) {
			return false, time.Time{}
		}
		if next.IsZero() || st.NextRun.Before(next) {
			next = *st.NextRun
		}
	}
	return true, next
}

// driveUntil moves the virtual clock from fire time to fire time, each time waiting for
// the daemon to finish what fired, until the next fire time is after until. visit, if
// set, sees each fire time while the daemon is idle just before it. A run that waits on
// the clock itself (a rate window) gets it nudged forward.
func (e *serveEnv) driveUntil(h *daemonHandle, until time.Time, visit func(fired time.Time)) {
	e.t.Helper()
	deadline := time.Now().Add(120 * time.Second)
	for {
		stuckSince := time.Now()
		for {
			ok, next := h.idle(e.mc.Now())
			if ok {
				if next.After(until) {
					return
				}
				if visit != nil {
					visit(next)
				}
				e.mc.Set(next)
				break
			}
			if time.Now().After(deadline) {
				e.t.Fatalf("daemon still busy at %s\n%s", e.mc.Now(), e.logs)
			}
			if time.Since(stuckSince) > 500*time.Millisecond && e.mc.Pending() > len(h.sched.Snapshot().Schedules) {
				e.mc.Advance(time.Second)
				stuckSince = time.Now()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
}

type runRow struct {
	schedule, kind, status    string
	started                   time.Time
	errText                   string
	publishStatus, publishErr string
}

// runsTable reads the runs table once the daemon has released the store.
func (e *serveEnv) runsTable() []runRow {
	e.t.Helper()
	st, err := load.OpenReadOnly(context.Background(), filepath.Join(e.dataDir, load.LiveFile))
	if err != nil {
		e.t.Fatal(err)
	}
	defer st.Close()
	rows, err := st.DB().Query(`SELECT schedule, kind, status, started, coalesce(error, ''),
		coalesce(publish_status, ''), coalesce(publish_error, '') FROM runs ORDER BY started, id`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []runRow
	for rows.Next() {
		var r runRow
		if err := rows.Scan(&r.schedule, &r.kind, &r.status, &r.started, &r.errText, &r.publishStatus, &r.publishErr); err != nil {
			e.t.Fatal(err)
		}
		r.started = r.started.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// TestServe24h: the real daemon against the simulator over a simulated day. Every
// schedule fires at its time, runs never overlap, runs records each run, /status and
// /metrics answer with the run's numbers and never the token, and a second serve is
// refused naming the holder's pid.
func TestServe24h(t *testing.T) {
	e := newServeEnv(t, sim.Options{Seed: 11, Workspaces: 2, Streams: 8, JobsPerStream: 8,
		PlatformLimit: 100000, QueryLimit: 100000, DailyQuota: 1000000}, `
reports:
  - name: rows-per-stream
    workspace: {{WS}}
    date_range: {last_days: 7}
    timezone: UTC
    dimensions: [Data Stream, Date]
    measurements: [Data Stream Total Rows]
    table: report_rows_per_stream
schedules:
  - name: jobs-hourly
    cron: "5 * * * *"
    extract: {entities: [streams, jobs]}
  - name: metadata-daily
    cron: "30 2 * * *"
    extract: {entities: [workspaces, streams, mappings, dimensions, measurements]}
  - name: rerun-morning
    cron: "TZ=Europe/Paris 0 7 * * *"
    action: {selection: failed-jobs-24h, yes: true, max_calls: 200}
  - name: export-bi
    cron: "15 6 * * *"
    export: {}
  - name: report-rows
    cron: "45 12 * * *"
    report: {name: rows-per-stream}
`)
	h := e.start()

	checked := false
	e.driveUntil(h, t0Serve.Add(24*time.Hour), func(fired time.Time) {
		if checked || fired.Before(t0Serve.Add(2*time.Hour)) {
			return
		}
		checked = true // jobs-hourly ran at 00:05 and 01:05: look at the endpoint once
		e.checkEndpoint(h)
		e.checkSecondServeRefused()
	})
	if !checked {
		t.Error("the endpoint was never checked")
	}
	h.stop(t)

	var want []runRow
	for hr := 0; hr < 24; hr++ {
		want = append(want, runRow{schedule: "jobs-hourly", kind: "extract", started: t0Serve.Add(time.Duration(hr)*time.Hour + 5*time.Minute)})
	}
	want = append(want,
		runRow{schedule: "metadata-daily", kind: "extract", started: t0Serve.Add(2*time.Hour + 30*time.Minute)},
		runRow{schedule: "rerun-morning", kind: "action", started: t0Serve.Add(6 * time.Hour)},
		runRow{schedule: "export-bi", kind: "export", started: t0Serve.Add(6*time.Hour + 15*time.Minute)},
		runRow{schedule: "report-rows", kind: "report", started: t0Serve.Add(12*time.Hour + 45*time.Minute)},
	)
	sort.Slice(want, func(i, j int) bool { return want[i].started.Before(want[j].started) })
	got := e.runsTable()
	if len(got) != len(want) {
		t.Errorf("runs has %d rows, want %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		if g.schedule != w.schedule || !g.started.Equal(w.started) || !strings.HasPrefix(g.kind, w.kind) {
			t.Errorf("run %d: %s (%s) at %s, want %s (%s) at %s", i, g.schedule, g.kind, g.started.Format("15:04"), w.schedule, w.kind, w.started.Format("15:04"))
		}
		if g.status != load.RunOK {
			t.Errorf("run %d (%s at %s): status %s, error %q", i, g.schedule, g.started.Format("15:04"), g.status, g.errText)
		}
	}
	if n := countTable(t, e.dataDir, "report_rows_per_stream"); n == 0 {
		t.Error("the report schedule landed no rows")
	}
	for _, f := range []string{load.ServingFile, load.ParquetDir} {
		if _, err := os.Stat(filepath.Join(e.dataDir, f)); err != nil {
			t.Errorf("%s missing after the export: %v", f, err)
		}
	}
	if strings.Contains(e.logs.String(), e.token) {
		t.Error("the daemon's log shows the token")
	}
	if noRun, _ := checkCallsLanded(t, e.dataDir, e.sim); noRun != 0 {
		t.Errorf("%d api_calls rows of the daemon's runs have no run", noRun)
	}
}

// checkEndpoint reads /status and /metrics of the running daemon.
func (e *serveEnv) checkEndpoint(h *daemonHandle) {
	t := e.t
	t.Helper()
	body := httpGet(t, "http://"+h.addr+"/status")
	var doc struct {
		Schedules []struct {
			Name    string
			NextRun *time.Time `json:"next_run"`
			LastRun *struct {
				Status string
				Calls  int
				Rows   map[string]int
			} `json:"last_run"`
		}
		Budget []struct {
			Fingerprint string
			Daily       serve.Window
		}
		Freshness []struct {
			Table    string
			Rows     int64
			LastSeen *time.Time `json:"last_seen"`
		}
	}
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("/status: %v\n%s", err, body)
	}
	var jobs *struct {
		Status string
		Calls  int
		Rows   map[string]int
	}
	for _, s := range doc.Schedules {
		if s.Name == "jobs-hourly" {
			jobs = s.LastRun
		}
	}
	if jobs == nil || jobs.Status != load.RunOK || jobs.Calls == 0 {
		t.Errorf("/status last run of jobs-hourly = %+v", jobs)
	}
	if len(doc.Budget) != 1 || doc.Budget[0].Fingerprint != datorama.Fingerprint(e.token) {
		t.Errorf("/status budget = %+v", doc.Budget)
	}
	fresh := map[string]int64{}
	for _, f := range doc.Freshness {
		fresh[f.Table] = f.Rows
		if f.Table == load.Jobs && (f.LastSeen == nil || f.LastSeen.Before(t0Serve)) {
			t.Errorf("jobs last_seen = %v", f.LastSeen)
		}
	}
	if truth := len(e.sim.Truth().Streams); fresh[load.Streams] != int64(truth) {
		t.Errorf("/status freshness: %d streams, the simulator has %d", fresh[load.Streams], truth)
	}
	metrics := httpGet(t, "http://"+h.addr+"/metrics")
	for _, want := range []string{
		`drextract_api_calls_total{endpoint="POST /v1/data-streams/api/{id}/stats",status="200"}`,
		`drextract_runs_total{kind="extract",schedule="jobs-hourly",status="ok"} 2`,
		`drextract_quota_remaining{fingerprint="` + datorama.Fingerprint(e.token) + `",window="daily"}`,
		`drextract_rows_loaded_total{table="jobs"}`,
		`drextract_run_duration_seconds_count{kind="extract",schedule="jobs-hourly"} 2`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for what, text := range map[string]string{"/status": body, "/metrics": metrics} {
		if strings.Contains(text, e.token) {
			t.Errorf("%s shows the token", what)
		}
	}
	resp, err := http.Post("http://"+h.addr+"/status", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /status = %d, want 405", resp.StatusCode)
	}
}

// checkSecondServeRefused starts a second serve on the same data directory.
func (e *serveEnv) checkSecondServeRefused() {
	e.t.Helper()
	var stdout, stderr bytes.Buffer
	code := DoContext(context.Background(), []string{"serve", "--config", e.config, "--listen", "127.0.0.1:0"}, strings.NewReader(""), &stdout, &stderr)
	if code != ExitFailure || !strings.Contains(stderr.String(), fmt.Sprintf("pid %d", os.Getpid())) {
		e.t.Errorf("second serve: exit %d, stderr %q; want 1 and the holder's pid %d", code, stderr.String(), os.Getpid())
	}
}

// TestServeStopsDuringCrawl: a stop while the crawl waits on an API answer that never
// comes does not wait for it (the crawler gives answers in flight a short grace, then
// gives up), the run is recorded as ended (not left running), and the next serve's run
// completes the store to match the simulator.
func TestServeStopsDuringCrawl(t *testing.T) {
	// A slow answer is held for an hour: if the stop waited for it, the test would hang
	// until stop's bound and fail there, whatever the machine's speed.
	e := newServeEnv(t, sim.Options{Seed: 5, Workspaces: 2, Streams: 16, JobsPerStream: 10,
		PlatformLimit: 100000, QueryLimit: 100000, DailyQuota: 1000000,
		Faults: sim.Faults{Rates: map[string]float64{"slow": 0.15}, SlowDelay: time.Hour, OnlyReads: true}}, `
schedules:
  - name: crawl
    cron: "*/30 * * * *"
    extract: {full: true}
`)
	h := e.start()
	waitFor(t, 30*time.Second, func() bool { ok, _ := h.idle(e.mc.Now()); return ok }, "the schedule to wait for 00:30")
	e.mc.Set(t0Serve.Add(30 * time.Minute))
	waitFor(t, 60*time.Second, func() bool { return e.sim.Calls().Faults[sim.FaultSlow] > 0 }, "the crawl to meet a slow answer")
	if h.sched.Snapshot().Running == nil {
		t.Fatalf("the crawl finished although an answer is held for an hour (sim calls %+v)", e.sim.Calls())
	}
	d := h.stop(t)
	t.Logf("stopped during the crawl in %s", d)
	runs := e.runsTable()
	if len(runs) != 1 || runs[0].status == load.RunRunning || runs[0].status == load.RunOK {
		t.Fatalf("runs after the stop = %+v, want one ended, interrupted crawl", runs)
	}

	e.sim.SetFaults(sim.Faults{})
	begin := time.Now()
	h = e.start()
	e.driveUntil(h, t0Serve.Add(time.Hour), nil)
	h.stop(t)
	t.Logf("the resumed crawl took %s", time.Since(begin))
	runs = e.runsTable()
	if len(runs) != 2 || runs[1].status != load.RunOK || !runs[1].started.Equal(t0Serve.Add(time.Hour)) {
		t.Fatalf("runs after the restart = %+v, want the 01:00 crawl ok", runs)
	}
	st, err := load.OpenReadOnly(context.Background(), filepath.Join(e.dataDir, load.LiveFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	truth := e.sim.Truth()
	for table, want := range map[string]int{load.Streams: len(truth.Streams), load.Jobs: len(truth.Jobs), load.Workspaces: len(truth.Workspaces)} {
		if got := countRows(t, st.DB(), table); got != want {
			t.Errorf("%s: %d rows stored, the simulator has %d", table, got, want)
		}
	}
}

// TestServeRefusesBadStarts: configuration and listener mistakes are reported before
// anything runs.
func TestServeRefusesBadStarts(t *testing.T) {
	dir := t.TempDir()
	noSchedules := filepath.Join(dir, "empty.yaml")
	t.Setenv("DRX_SERVE_TEST_TOKEN", "x-token")
	os.WriteFile(noSchedules, []byte("version: 1\napi:\n  tokens:\n    - env: DRX_SERVE_TEST_TOKEN\n"), 0o600)
	withSchedule := filepath.Join(dir, "one.yaml")
	os.WriteFile(withSchedule, []byte("version: 1\napi:\n  tokens:\n    - env: DRX_SERVE_TEST_TOKEN\nschedules:\n  - name: x\n    cron: \"0 * * * *\"\n    export: {}\n"), 0o600)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"no schedules", []string{"serve", "--config", noSchedules}, ExitUsage, "no schedules"},
		{"missing config", []string{"serve", "--config", filepath.Join(dir, "nope.yaml")}, ExitUsage, "nope.yaml"},
		{"non-loopback", []string{"serve", "--config", withSchedule, "--listen", "0.0.0.0:0"}, ExitFailure, "--listen-any"},
		{"bad address", []string{"serve", "--config", withSchedule, "--listen", "nohost"}, ExitFailure, "listen address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := DoContext(context.Background(), append(tt.args, "--data-dir", filepath.Join(dir, "data")), strings.NewReader(""), &stdout, &stderr)
			if code != tt.wantCode || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.wantCode, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "data", load.LiveFile)); err == nil {
		t.Error("a refused start created the store")
	}
	// Loopback by default.
	if def := newServeCommand(&globalOptions{}).Flags().Lookup("listen").DefValue; def != serve.DefaultListen || !strings.HasPrefix(def, "127.0.0.1:") {
		t.Errorf("--listen defaults to %q", def)
	}
}

func countRows(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM ` + table + ` WHERE NOT is_deleted`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// countTable counts a table's rows in the live store (the daemon must have stopped).
func countTable(t *testing.T, dataDir, table string) int {
	t.Helper()
	st, err := load.OpenReadOnly(context.Background(), filepath.Join(dataDir, load.LiveFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var n int
	if err := st.DB().QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func waitFor(t *testing.T, d time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeExportRecordsItsEndBeforePublishing: a scheduled export is published only
// after its runs row records the end, so a serving copy that no later run replaces shows
// the export finished, not running; an export whose publish fails is recorded partial,
// with the publish's failure on its runs row.
func TestServeExportRecordsItsEndBeforePublishing(t *testing.T) {
	for _, tc := range []struct {
		name         string
		blockServing bool // a directory where serving.duckdb goes makes the publish fail
		wantStatus   string
	}{
		{name: "published", wantStatus: load.RunOK},
		{name: "publish fails", blockServing: true, wantStatus: load.RunPartial},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newServeEnv(t, sim.Options{Seed: 3, Workspaces: 1, Streams: 2, JobsPerStream: 2,
				PlatformLimit: 100000, QueryLimit: 100000, DailyQuota: 1000000}, `
schedules:
  - name: export-bi
    cron: "15 6 * * *"
    export: {}
`)
			serving := filepath.Join(e.dataDir, load.ServingFile)
			if tc.blockServing {
				if err := os.MkdirAll(filepath.Join(serving, "keep"), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			h := e.start()
			e.driveUntil(h, t0Serve.Add(7*time.Hour), nil)
			h.stop(t)

			runs := e.runsTable()
			if len(runs) != 1 || runs[0].schedule != "export-bi" || runs[0].status != tc.wantStatus {
				t.Fatalf("runs in the live store = %+v, want one export-bi run %s", runs, tc.wantStatus)
			}
			if tc.blockServing {
				if runs[0].publishStatus != "failed" || !strings.Contains(runs[0].publishErr, "serving copy") {
					t.Errorf("the export's runs row has publish_status %q, publish_error %q; want failed, saying publishing failed",
						runs[0].publishStatus, runs[0].publishErr)
				}
				return
			}
			st, err := load.OpenReadOnly(context.Background(), serving)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var status string
			if err := st.DB().QueryRow(`SELECT status FROM runs WHERE schedule = 'export-bi'`).Scan(&status); err != nil {
				t.Fatalf("reading the export's run in %s: %v", load.ServingFile, err)
			}
			if status != load.RunOK {
				t.Errorf("%s shows the export's run %s, want %s", load.ServingFile, status, load.RunOK)
			}
		})
	}
}
