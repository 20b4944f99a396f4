package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drextract/drextract/action"
	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
	"github.com/drextract/drextract/run"
	"github.com/drextract/drextract/sim"
)

func init() { register(newDemoCommand) }

// demoMarker marks a folder as the demo's own, so a later demo may clear and reuse it.
const demoMarker = ".drextract-demo"

// demoDefaultDir is where the demo writes unless --dir says otherwise.
const demoDefaultDir = "drextract-demo"

// demoStart is the simulated "now" the demo starts at: fixed, so every demo prints the
// same account and the same numbers.
var demoStart = time.Date(2026, 6, 15, 8, 0, 0, 0, time.UTC)

// demoTimeout bounds the whole demo.
const demoTimeout = 5 * time.Minute

type demoOptions struct {
	dir  string
	seed int64
}

func (o *demoOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.dir, "dir", "", "folder to write the demo's store into (default ./"+demoDefaultDir+", or a fresh temporary folder if that exists)")
	f.Int64Var(&o.seed, "seed", 42, "simulator seed")
}

func newDemoCommand(g *globalOptions) *cobra.Command {
	var opts demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Crawl a simulated Datorama account end to end and show what drextract stores",
		Long: `demo starts the API simulator in-process (seed 42, on 127.0.0.1) and, on simulated time:
  1. crawls the whole account into a DuckDB store,
  2. lets six hours pass (streams run, some fail) and crawls again incrementally,
  3. plans the built-in selection failed-jobs-24h as a dry run, then reruns those jobs,
  4. exports Parquet and publishes serving.duckdb,
and prints a summary with a few SQL results. It needs no token and no network, and
writes only under the folder it names (--dir; it refuses a non-empty folder that is not
an earlier demo's).

Exit codes: 0 ok, 1 failure, 2 usage (e.g. --dir not empty).`,
		Example: `  drextract demo
  drextract demo --dir /tmp/drx-demo --seed 7`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return runDemo(cmd.Context(), opts, g, args) },
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runDemo(ctx context.Context, opts demoOptions, g *globalOptions, _ []string) (err error) {
	began := time.Now()
	// The demo takes seconds; if a step ever hangs, fail instead of leaving a newcomer
	// staring at a silent terminal.
	ctx, cancel := context.WithTimeout(ctx, demoTimeout)
	defer cancel()
	dir, err := demoDir(opts.dir)
	if err != nil {
		return err
	}
	out := g.stdout
	fmt.Fprintf(out, "drextract demo: a simulated account (seed %d), written under %s\n\n", opts.seed, dir)

	level := slog.LevelWarn
	if strings.EqualFold(g.logLevel, "debug") {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(g.stderr, &slog.HandlerOptions{Level: level}))

	// Everything runs on one virtual clock: the simulator's jobs, the rate budget and the
	// crawler. It jumps ahead whenever all of them wait, so simulated hours take
	// milliseconds.
	mc := clock.NewManual(demoStart)
	stopClock := mc.AutoAdvance(3 * time.Millisecond)
	defer stopClock()

	const generous = 1_000_000 // the demo shows the pipeline, not the pacing
	s := sim.New(sim.Options{
		Seed: opts.seed, Workspaces: 3, Streams: 60, JobsPerStream: 40, Clock: mc,
		PlatformLimit: generous, QueryLimit: generous, DailyQuota: 10 * generous,
	})
	baseURL, stopSim, err := serveDemoSim(s)
	if err != nil {
		return err
	}
	defer stopSim()

	cfg := config.Default()
	cfg.API.BaseURL, cfg.Store.DataDir, cfg.SelectionsDir = baseURL, filepath.Join(dir, "data"), ""
	unlock, err := load.LockDir(cfg.Store.DataDir)
	if err != nil {
		return err
	}
	defer closing(&err, unlock)
	store, err := load.Open(ctx, cfg.Store.DuckDBPath(), run.StoreOptions(cfg, mc, log))
	if err != nil {
		return fmt.Errorf("opening the demo store: %w", err)
	}
	defer closing(&err, store.Close)
	d := &demo{ctx: ctx, out: out, sim: s, store: store, clock: mc, runner: &run.Runner{
		Config: cfg, Clock: mc, Log: log, Schedule: "demo", UserAgent: "drextract-demo/" + Version,
		Pool: ratelimit.NewPool(s.Tokens()[:1], ratelimit.Config{
			PlatformLimit: generous, QueryLimit: generous, DailyQuota: 10 * generous, Reserve: -1,
			Clock: mc, StateDir: ratelimit.StateDirIn(cfg.Store.DataDir), Logger: log,
		}),
	}}
	for _, step := range []func() error{d.fullCrawl, d.incrementalCrawl, d.rerunFailed, d.export} {
		if err := step(); err != nil {
			return err
		}
	}
	if err := store.Close(); err != nil {
		return fmt.Errorf("closing the demo store: %w", err)
	}
	if err := d.questions(cfg.Store.ServingPath()); err != nil {
		return err
	}
	fmt.Fprintf(out, "Done in %s (simulated time: %s → %s).\n", time.Since(began).Round(100*time.Millisecond),
		demoStart.Format("2006-01-02 15:04"), mc.Now().UTC().Format("2006-01-02 15:04"))
	fmt.Fprintf(out, "Try: drextract query --data-dir %s \"SELECT status, count(*) FROM jobs GROUP BY ALL\"\n", cfg.Store.DataDir)
	fmt.Fprintf(out, "     duckdb %s    (or point DBeaver, Python or Polars at it)\n", cfg.Store.ServingPath())
	return nil
}

// demo is the state the demo's steps share: each step is one run of the run layer, as a
// command or a schedule would make it, on the simulator's virtual clock.
type demo struct {
	ctx    context.Context
	out    io.Writer
	sim    *sim.Sim
	store  *load.Store
	clock  *clock.Manual
	runner *run.Runner

	fullCalls int
}

// crawl runs one crawl and prints its line; a crawl that does not end ok ends the demo.
func (d *demo) crawl(step, title string, full bool) (*run.Result, error) {
	t := time.Now()
	res := d.runner.Extract(d.ctx, d.store, run.ExtractOptions{Full: full})
	if err := runErr(res); err != nil {
		return res, fmt.Errorf("%s: %w", strings.ToLower(title), err)
	}
	fmt.Fprintf(d.out, "%s %s: %d API calls, %s (run %d, %s)\n", step, title, res.Calls, rowsText(res.Rows), res.RunID,
		time.Since(t).Round(time.Millisecond))
	return res, nil
}

// fullCrawl is step 1.
func (d *demo) fullCrawl() error {
	res, err := d.crawl("1.", "Full crawl", true)
	if err == nil {
		d.fullCalls = res.Calls
	}
	return err
}

// incrementalCrawl is step 2: six simulated hours later, a tenth of the streams ran (some
// fail), and an incremental crawl reads only what changed.
func (d *demo) incrementalCrawl() error {
	var ran []int64
	ids, err := load.Query(d.ctx, d.store.DB(), "SELECT id FROM streams WHERE enabled AND NOT is_deleted ORDER BY id")
	if err != nil {
		return fmt.Errorf("choosing streams to run: %w", err)
	}
	for i, r := range ids.Rows {
		if id, ok := r[0].(int64); ok && i%10 == 3 {
			ran = append(ran, id)
		}
	}
	d.sim.Advance(5 * time.Hour)
	d.sim.RunStreams(ran)
	d.sim.Advance(time.Hour)
	fmt.Fprintf(d.out, "   … 6 simulated hours pass; %d streams run again\n", len(ran))
	res, err := d.crawl("2.", "Incremental crawl", false)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "   (%.0f%% of the full crawl's calls)\n", 100*float64(res.Calls)/float64(max(d.fullCalls, 1)))
	return nil
}

// rerunFailed is step 3: the built-in selection failed-jobs-24h as a dry run, then for
// real, then a crawl that picks up the reruns' outcomes.
func (d *demo) rerunFailed() error {
	cat, err := action.LoadCatalog("")
	if err != nil {
		return fmt.Errorf("loading the built-in selections: %w", err)
	}
	sel, err := cat.Get("failed-jobs-24h")
	if err != nil {
		return err
	}
	req := action.Request{Selection: sel, Source: action.Source{Kind: "selection", Name: sel.Name}, StartedBy: "cli:demo"}
	dry := d.runner.Action(d.ctx, d.store, run.ActionOptions{Request: req, DryRun: true})
	if err := runErr(dry); err != nil {
		return fmt.Errorf("planning failed-jobs-24h: %w", err)
	}
	plan := dry.Action.Plan
	fmt.Fprintf(d.out, "3. Selection failed-jobs-24h (dry run): %d failed jobs to rerun in %d API calls; nothing sent\n", plan.Planned(), len(plan.Calls))
	res := d.runner.Action(d.ctx, d.store, run.ActionOptions{Request: req, Priority: ratelimit.Interactive})
	if err := runErr(res); err != nil {
		return err
	}
	rep := res.Action.Report
	fmt.Fprintf(d.out, "   … for real (--yes): %d reruns sent in %d calls, status %s (action run %d)\n", rep.Sent, rep.CallsSent, rep.Status, rep.RunID)

	// The reruns finish; a crawl picks up their outcomes.
	d.sim.Advance(time.Hour)
	crawl, err := d.crawl("   …", "Follow-up crawl", false)
	if err != nil {
		return err
	}
	if fu := crawl.FollowUp; fu != nil {
		fmt.Fprintf(d.out, "   outcomes of the reruns: %d succeeded, %d failed again, %d still pending\n", fu.Succeeded, fu.Failed, fu.Pending)
	}
	return nil
}

// export is step 4: Parquet, and the serving copy published after it.
func (d *demo) export() error {
	t := time.Now()
	res := d.runner.Export(d.ctx, d.store)
	if err := runErr(res); err != nil {
		return err
	}
	cfg := d.runner.Config.Store
	fmt.Fprintf(d.out, "4. Export: %d tables, %d rows to %s; BI copy %s (%s)\n\n", res.Export.Tables(), res.Export.TotalRows(),
		cfg.ParquetDir(), cfg.ServingPath(), time.Since(t).Round(time.Millisecond))
	return nil
}

// questions is step 5: a few questions, asked of the serving copy as a BI tool would.
func (d *demo) questions(serving string) (err error) {
	ro, err := load.OpenReadOnly(d.ctx, serving)
	if err != nil {
		return fmt.Errorf("opening %s: %w", serving, err)
	}
	defer closing(&err, ro.Close)
	for _, q := range demoQueries {
		fmt.Fprintf(d.out, "%s\n", q.title)
		res, err := load.Query(d.ctx, ro.DB(), q.sql)
		if err != nil {
			return fmt.Errorf("%s: %w", q.title, err)
		}
		var table strings.Builder
		if err := writeResult(&table, "table", res); err != nil {
			return err
		}
		for _, line := range strings.SplitAfter(table.String(), "\n") {
			if line != "" {
				fmt.Fprint(d.out, "  "+line)
			}
		}
		fmt.Fprintln(d.out)
	}
	return nil
}

var demoQueries = []struct{ title, sql string }{
	{"Jobs by status:", `SELECT status, count(*) AS jobs FROM jobs WHERE NOT is_deleted GROUP BY status ORDER BY jobs DESC, status`},
	{"Top failing streams:", `SELECT s.id AS stream_id, s.name, s.data_source_name AS source, count(*) AS failed_jobs
FROM jobs j JOIN streams s ON s.id = j.stream_id
WHERE j.status = 'FAILURE' AND NOT j.is_deleted
GROUP BY ALL ORDER BY failed_jobs DESC, stream_id LIMIT 5`},
	{"Runs recorded:", `SELECT id, kind, status, calls FROM runs ORDER BY id`},
}

// demoDir picks and prepares the folder the demo writes into. An explicit folder must be
// absent, empty or an earlier demo's (then cleared); the default is ./drextract-demo,
// or a fresh temporary folder if that is taken by something else.
func demoDir(dir string) (string, error) {
	if dir == "" {
		switch ok, err := usableDemoDir(demoDefaultDir); {
		case err != nil:
			return "", err
		case ok:
			dir = demoDefaultDir
		default:
			tmp, err := os.MkdirTemp("", "drextract-demo-")
			if err != nil {
				return "", fmt.Errorf("creating a demo folder: %w", err)
			}
			dir = tmp
		}
	} else if ok, err := usableDemoDir(dir); err != nil {
		return "", err
	} else if !ok {
		return "", usage(fmt.Errorf("refusing to write into %s: it is not empty and not an earlier demo's folder; pass an empty or new --dir", dir))
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := clearDemoDir(abs); err != nil {
		return "", err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", abs, err)
	}
	if err := os.WriteFile(filepath.Join(abs, demoMarker), []byte("written by drextract demo; safe to delete\n"), 0o644); err != nil {
		return "", fmt.Errorf("marking %s: %w", abs, err)
	}
	return abs, nil
}

// usableDemoDir reports whether dir is absent, empty, or an earlier demo's.
func usableDemoDir(dir string) (bool, error) {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("reading %s: %w", dir, err)
	case len(ents) == 0:
		return true, nil
	}
	_, err = os.Stat(filepath.Join(dir, demoMarker))
	return err == nil, nil
}

// clearDemoDir removes an earlier demo's files (only if the marker says it is one).
func clearDemoDir(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, demoMarker)); err != nil {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("clearing the earlier demo in %s: %w", dir, err)
		}
	}
	return nil
}

// serveDemoSim serves the simulator on a loopback port under a base path, as the real
// API is served under its host.
func serveDemoSim(s *sim.Sim) (baseURL string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("starting the simulator: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/demo-api/", http.StripPrefix("/demo-api", s))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return "http://" + ln.Addr().String() + "/demo-api", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// rowsText summarises rows per table, biggest tables first.
func rowsText(rows map[string]int) string {
	order := []string{load.Jobs, load.Streams, load.Workspaces, load.Mappings}
	var parts []string
	seen := map[string]bool{}
	for _, t := range order {
		if n := rows[t]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, t))
		}
		seen[t] = true
	}
	other := 0
	for t, n := range rows {
		if !seen[t] {
			other += n
		}
	}
	if other > 0 {
		parts = append(parts, fmt.Sprintf("%d metadata rows", other))
	}
	if len(parts) == 0 {
		return "no rows changed"
	}
	return strings.Join(parts, ", ") + " written"
}
