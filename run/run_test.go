package run

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/action"
	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
	"github.com/drextract/drextract/sim"
)

var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

// env is a simulator over real HTTP, a store in a temporary data directory and a Runner
// over both, on a manual clock that only the test moves (no limit makes anyone wait).
type env struct {
	t      *testing.T
	sim    *sim.Sim
	clock  *clock.Manual
	store  *load.Store
	runner *Runner
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvWith(t, sim.Options{Seed: 7, Workspaces: 2, Streams: 12, JobsPerStream: 6}, nil)
}

// newEnvWith is newEnv over an account made with o (per-minute limits lifted, the daily
// quota o's or none, the env's clock), whose HTTP handler wrap may wrap (nil: the
// simulator as is).
func newEnvWith(t *testing.T, o sim.Options, wrap func(http.Handler) http.Handler) *env {
	t.Helper()
	const unlimited = 1_000_000
	mc := clock.NewManual(t0)
	o.Clock, o.PlatformLimit, o.QueryLimit = mc, unlimited, unlimited
	if o.DailyQuota == 0 {
		o.DailyQuota = unlimited
	}
	s := sim.New(o)
	var h http.Handler = s
	if wrap != nil {
		h = wrap(s)
	}
	srv := httptest.NewServer(http.StripPrefix("/base", h))
	t.Cleanup(srv.Close)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Default()
	cfg.API.BaseURL, cfg.Store.DataDir = srv.URL+"/base", t.TempDir()
	st, err := load.Open(context.Background(), cfg.Store.DuckDBPath(), load.Options{Clock: mc, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	pool := ratelimit.NewPool(s.Tokens(), ratelimit.Config{PlatformLimit: unlimited, QueryLimit: unlimited,
		DailyQuota: o.DailyQuota, Reserve: -1, Clock: mc, Logger: log})
	return &env{t: t, sim: s, clock: mc, store: st,
		runner: &Runner{Config: cfg, Clock: mc, Log: log, Pool: pool, Schedule: "test"}}
}

// runRow is one row of the runs table.
type runRow struct {
	id                                int64
	kind, status, publish, publishErr string
}

func (e *env) runs() []runRow {
	e.t.Helper()
	rows, err := e.store.DB().Query(`SELECT id, kind, status, coalesce(publish_status, ''), coalesce(publish_error, '')
		FROM runs ORDER BY id`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []runRow
	for rows.Next() {
		var r runRow
		if err := rows.Scan(&r.id, &r.kind, &r.status, &r.publish, &r.publishErr); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// servingRuns counts the runs serving.duckdb shows, by status.
func (e *env) servingRuns() map[string]int {
	e.t.Helper()
	ro, err := load.OpenReadOnly(context.Background(), e.runner.Config.Store.ServingPath())
	if err != nil {
		e.t.Fatal(err)
	}
	defer ro.Close()
	rows, err := ro.DB().Query(`SELECT status, count(*) FROM runs GROUP BY status`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			e.t.Fatal(err)
		}
		out[s] = n
	}
	return out
}

// TestExtractFollowsUpAndPublishes: a crawl records its run, fills in the outcomes of
// earlier actions from the jobs it read, and publishes a serving copy that shows the run
// finished.
func TestExtractFollowsUpAndPublishes(t *testing.T) {
	e := newEnv(t)
	res := e.runner.Extract(context.Background(), e.store, ExtractOptions{Full: true})
	if res.Status != load.RunOK || res.Err != nil || res.RunID == 0 || res.Calls == 0 {
		t.Fatalf("full crawl: %+v", res)
	}
	if res.FollowUp == nil {
		t.Error("the crawl did not follow up actions")
	}
	if res.Publish == nil || res.Publish.Err != nil {
		t.Fatalf("publish after the crawl: %+v", res.Publish)
	}
	runs := e.runs()
	if len(runs) != 1 || runs[0].kind != KindExtractFull || runs[0].status != load.RunOK || runs[0].publish != "ok" {
		t.Fatalf("runs = %+v, want one extract-full run, ok, published", runs)
	}
	if got := e.servingRuns(); got[load.RunOK] != 1 || len(got) != 1 {
		t.Errorf("serving.duckdb shows runs by status %v, want the one run ok", got)
	}
}

// TestFailedPublishKeepsTheRun: a PostgreSQL target that is down never undoes the run:
// the rows stay, the serving copy is still published, the run is partial, and its runs
// row says the publish failed (without the DSN's password).
func TestFailedPublishKeepsTheRun(t *testing.T) {
	e := newEnv(t)
	// Nothing listens on port 1 of the loopback: the connection is refused.
	t.Setenv("DRX_TEST_DSN", "postgres://drextract:CANARY-pw@127.0.0.1:1/analytics?connect_timeout=5")
	e.runner.Config.Publish = &config.Publish{Postgres: &config.PostgresTarget{
		DSN: config.SecretSource{Env: "DRX_TEST_DSN"}, Schema: "datorama"}}
	res := e.runner.Extract(context.Background(), e.store, ExtractOptions{})
	if res.Status != load.RunPartial {
		t.Fatalf("status %s, want partial after a failed publish", res.Status)
	}
	if res.Publish == nil || res.Publish.Err == nil {
		t.Fatalf("publish result %+v, want the failure", res.Publish)
	}
	var jobs int
	if err := e.store.DB().QueryRow(`SELECT count(*) FROM jobs`).Scan(&jobs); err != nil || jobs == 0 {
		t.Fatalf("jobs after the crawl: %d (%v), want the crawl's rows kept", jobs, err)
	}
	runs := e.runs()
	if len(runs) != 1 || runs[0].status != load.RunPartial || runs[0].publish != "failed" ||
		!strings.Contains(runs[0].publishErr, "PostgreSQL") || strings.Contains(runs[0].publishErr, "CANARY") {
		t.Fatalf("runs = %+v, want one partial run with publish failed, naming PostgreSQL and not the password", runs)
	}
	if _, err := os.Stat(e.runner.Config.Store.ServingPath()); err != nil {
		t.Errorf("the serving copy was not published beside the failing target: %v", err)
	}
}

// TestEveryRunKindIsRecorded: actions, exports and reports get a runs row of their kind,
// as crawls do; a dry run writes nothing.
func TestEveryRunKindIsRecorded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if res := e.runner.Extract(ctx, e.store, ExtractOptions{}); res.Status != load.RunOK {
		t.Fatalf("crawl: %+v", res)
	}
	cat, err := action.LoadCatalog("")
	if err != nil {
		t.Fatal(err)
	}
	sel, err := cat.Get("failed-streams")
	if err != nil {
		t.Fatal(err)
	}
	req := action.Request{Selection: sel, Source: action.Source{Kind: "selection", Name: sel.Name}, StartedBy: "cli:test"}
	var planned *action.Plan
	dry := e.runner.Action(ctx, e.store, ActionOptions{Request: req, DryRun: true,
		OnPlan: func(p *action.Plan) error { planned = p; return nil }})
	if dry.Status != RunDryRun || dry.RunID != 0 || planned == nil {
		t.Fatalf("dry run: status %s, run %d, plan shown %v", dry.Status, dry.RunID, planned != nil)
	}
	if n := len(e.runs()); n != 1 {
		t.Fatalf("a dry run wrote a runs row: %d rows", n)
	}
	act := e.runner.Action(ctx, e.store, ActionOptions{Request: req, Priority: ratelimit.Interactive})
	if act.Status != load.RunOK || act.RunID == 0 || act.Action.Report == nil {
		t.Fatalf("action: %+v", act)
	}
	exp := e.runner.Export(ctx, e.store)
	if exp.Status != load.RunOK || exp.Export == nil || exp.Rows[load.Jobs] == 0 {
		t.Fatalf("export: %+v", exp)
	}
	def := config.Report{Name: "rows", Workspace: e.firstWorkspace(), Table: "report_rows",
		DateRange: config.DateRange{LastDays: 3}, Dimensions: []string{"Data Stream"},
		Measurements: []string{"Data Stream Total Rows"}, Mode: config.ModeReplace, Timezone: "UTC"}
	rep := e.runner.Report(ctx, e.store, ReportOptions{Definition: def})
	if rep.Status != load.RunOK || rep.Calls == 0 || len(rep.Reports) != 1 {
		t.Fatalf("report: %+v (%v)", rep, rep.Err)
	}
	var kinds []string
	for _, r := range e.runs() {
		if r.status != load.RunOK || r.publish != "ok" {
			t.Errorf("run %d (%s): status %s, publish %q; want ok and published", r.id, r.kind, r.status, r.publish)
		}
		kinds = append(kinds, r.kind)
	}
	want := []string{KindExtract, KindAction, KindExport, KindReport}
	if len(kinds) != len(want) {
		t.Fatalf("run kinds %v, want %v", kinds, want)
	}
	for i := range want {
		if kinds[i] != want[i] {
			t.Fatalf("run kinds %v, want %v", kinds, want)
		}
	}
}

func (e *env) firstWorkspace() int64 {
	e.t.Helper()
	var id sql.NullInt64
	if err := e.store.DB().QueryRow(`SELECT min(id) FROM workspaces`).Scan(&id); err != nil || !id.Valid {
		e.t.Fatalf("no workspace stored: %v", err)
	}
	return id.Int64
}

// TestRefusedPlanSendsNothing: a plan over its guard rails is refused with an error that
// says bad input (the command's exit 2), recorded as a failed run, and nothing is sent.
func TestRefusedPlanSendsNothing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if res := e.runner.Extract(ctx, e.store, ExtractOptions{}); res.Status != load.RunOK {
		t.Fatalf("crawl: %+v", res)
	}
	var streams []action.Row
	rows, err := e.store.DB().Query(`SELECT id FROM streams ORDER BY id LIMIT 3`)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; rows.Next(); i++ {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		streams = append(streams, action.Row{Line: i, StreamID: id, Name: "renamed"})
	}
	rows.Close()
	before := e.sim.Calls().Total
	res := e.runner.Action(ctx, e.store, ActionOptions{Request: action.Request{Op: action.OpRename, Rows: streams,
		Source: action.Source{Kind: "command", Name: "rename"}, Options: action.Options{MaxCalls: 1}}})
	if !errors.Is(res.Err, action.ErrBadInput) || res.Status != load.RunFailed {
		t.Fatalf("status %s, error %v; want failed with a bad-input error", res.Status, res.Err)
	}
	if after := e.sim.Calls().Total; after != before {
		t.Errorf("the refused plan made %d API calls", after-before)
	}
}

// TestDaemonRunsTheSameSequence: a schedule goes through the same Runner methods, with
// the store opened for the run, and what the daemon reports matches the runs table.
func TestDaemonRunsTheSameSequence(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if err := e.store.Close(); err != nil { // the daemon opens the store for each run
		t.Fatal(err)
	}
	d, err := NewDaemon(ctx, e.runner)
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.Run(ctx, &config.Schedule{Name: "hourly", Extract: &config.Extract{}})
	if err != nil || out.Status != load.RunOK || out.RunID == 0 || out.Calls == 0 {
		t.Fatalf("scheduled crawl: %+v, %v", out, err)
	}
	fresh, err := d.Freshness(ctx)
	if err != nil || len(fresh) == 0 || fresh[2].Table != load.Jobs || fresh[2].Rows == 0 {
		t.Fatalf("freshness after the run: %+v, %v", fresh, err)
	}
	st, err := load.OpenReadOnly(ctx, e.runner.Config.Store.DuckDBPath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var schedule, status string
	if err := st.DB().QueryRow(`SELECT schedule, status FROM runs WHERE id = $1`, out.RunID).Scan(&schedule, &status); err != nil {
		t.Fatal(err)
	}
	if schedule != "hourly" || status != load.RunOK {
		t.Errorf("runs row of the scheduled crawl: schedule %q, status %q", schedule, status)
	}
	if _, err := os.Stat(filepath.Join(e.runner.Config.Store.DataDir, load.ServingFile)); err != nil {
		t.Errorf("the scheduled crawl did not publish: %v", err)
	}
}
