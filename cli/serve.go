package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drextract/drextract/action"
	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/extract"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
	"github.com/drextract/drextract/report"
	"github.com/drextract/drextract/serve"
)

func init() { register(newServeCommand) }

type serveOptions struct {
	listen    string
	listenAny bool

	// Test hooks: the clock every component runs on, and a callback once the scheduler
	// and the status endpoint are up.
	clock   clock.Clock
	onReady func(s *serve.Scheduler, addr net.Addr)
}

func (o *serveOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.listen, "listen", serve.DefaultListen, "address of the read-only status endpoint (/healthz, /status, /metrics)")
	f.BoolVar(&o.listenAny, "listen-any", false, "allow --listen on a non-loopback address (the endpoint has no authentication)")
}

func newServeCommand(g *globalOptions) *cobra.Command {
	var opts serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the schedules of the configuration file as a daemon",
		Long: `serve runs the schedules of the configuration file (--config) until SIGTERM or SIGINT.

One run writes at a time: a schedule that fires while another run is under way is queued
or skipped, as its "concurrency" says. serve holds the data directory's lock for its whole
life, so a second serve or a writing command (extract, act, export) is refused with the
holder's pid; read-only commands (query, status) keep working. The live store is open only
while a run writes, and serving.duckdb is published after every run.

A read-only HTTP endpoint answers on --listen (loopback only unless --listen-any):
  GET /healthz   "ok"
  GET /status    JSON: schedules (last and next run, last result), budget per token
                 fingerprint, data freshness per table
  GET /metrics   Prometheus text: API calls by endpoint and status, 429s, quota left,
                 run durations, rows loaded

SIGTERM/SIGINT: the run in progress finishes its page, commits and stops; serve exits
within seconds. A second signal exits at once (the store stays consistent: every page
commits atomically).

Exit codes: 0 stopped by a signal, 1 failure (config, lock, listener), 2 usage,
130 abandoned by a second signal.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runServe(cmd.Context(), cmd, opts, g, args) },
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runServe(ctx context.Context, cmd *cobra.Command, opts serveOptions, g *globalOptions, _ []string) error {
	// The first SIGINT/SIGTERM cancels ctx (cli.Do); a second one abandons the graceful
	// wait. Both arrive here too, so the first is counted as well.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	if opts.clock != nil {
		w.clock = opts.clock
	}
	cfg, log := w.cfg, w.log
	if len(cfg.Schedules) == 0 {
		return withExit(ExitUsage, fmt.Errorf("%s has no schedules: nothing to serve", g.configPath))
	}
	tokens, err := w.tokens()
	if err != nil {
		return err
	}
	// Listen before taking the lock and touching the store: a port in use or a refused
	// address is the commonest start-up mistake and costs nothing to report.
	ln, err := serve.Listen(ctx, opts.listen, opts.listenAny)
	if err != nil {
		return err
	}
	defer ln.Close()

	unlock, err := load.LockDir(cfg.Store.DataDir)
	if err != nil {
		return err
	}
	defer func() {
		if err := unlock(); err != nil {
			log.Warn("releasing the data-directory lock", "error", err)
		}
	}()

	metrics := serve.NewMetrics()
	d, err := newDaemon(ctx, w, tokens, metrics)
	if err != nil {
		return err
	}
	sched, err := serve.New(serve.Options{
		Schedules: cfg.Schedules, Runner: d, Clock: w.clock, Logger: log, Metrics: metrics,
	})
	if err != nil {
		return err
	}
	handler := serve.NewHandler(serve.HTTPOptions{
		Scheduler: sched, Metrics: metrics, Budget: d.budget, Freshness: d.freshness,
		Version: Version, Logger: log,
	})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	httpErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		httpErr <- serve.Serve(ctx, ln, handler)
	}()
	schedDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(schedDone)
		_ = sched.Run(ctx)
	}()
	log.Info("serving", "listen", ln.Addr().String(), "schedules", len(cfg.Schedules),
		"data_dir", cfg.Store.DataDir, "tokens", len(tokens))
	if opts.onReady != nil {
		opts.onReady(sched, ln.Addr())
	}

	var runErr error
	select {
	case err := <-httpErr:
		runErr = err // the endpoint died: stop the daemon rather than run blind
		cancel()
	case <-ctx.Done():
	}
	log.Info("stopping: waiting for the run in progress to commit")
	signals := 0
	for {
		select {
		case <-schedDone:
			wg.Wait()
			if runErr != nil {
				return runErr
			}
			log.Info("stopped")
			return nil
		case <-sigs:
			signals++
			if signals >= 2 {
				log.Warn("second signal: exiting without waiting for the run in progress")
				return withExit(ExitCanceled, errors.New("interrupted twice: abandoned the run in progress (every committed page is kept)"))
			}
		}
	}
}

// daemon is the serve.Runner of `drextract serve`: it runs each kind of schedule with the
// real packages, opening the live store only for the run and publishing serving.duckdb
// after it. The scheduler calls Run from one goroutine at a time.
type daemon struct {
	w       *wiring
	cfg     *config.Config
	clock   clock.Clock
	log     *slog.Logger
	metrics *serve.Metrics
	pool    *ratelimit.Pool
	catalog *action.Catalog

	mu       sync.Mutex
	fresh    []serve.TableFreshness
	freshErr error
}

var _ serve.Runner = (*daemon)(nil)

func newDaemon(ctx context.Context, w *wiring, tokens []string, m *serve.Metrics) (*daemon, error) {
	// The selections folder is optional: LoadCatalog gives the built-ins alone without it.
	cat, err := action.LoadCatalog(w.cfg.SelectionsDir)
	if err != nil {
		return nil, fmt.Errorf("loading selections: %w", err)
	}
	d := &daemon{w: w, cfg: w.cfg, clock: w.clock, log: w.log, metrics: m, pool: w.pool(tokens), catalog: cat}
	// Open the store once at start: it migrates, closes runs a dead process left
	// "running", and gives /status its freshness before the first run.
	store, err := d.open(ctx)
	if err != nil {
		return nil, err
	}
	d.refreshFreshness(ctx, store)
	if err := store.Close(); err != nil {
		return nil, fmt.Errorf("closing the store: %w", err)
	}
	return d, nil
}

func (d *daemon) open(ctx context.Context) (*load.Store, error) {
	path := d.cfg.Store.DuckDBPath()
	s, err := load.Open(ctx, path, load.Options{Clock: d.clock, Logger: d.log})
	if err != nil {
		return nil, fmt.Errorf("opening the store %s: %w", path, err)
	}
	return s, nil
}

// newClient builds a client on the shared pool; obs sees every attempt besides the
// metrics.
func (d *daemon) newClient(obs datorama.Observer) (*datorama.Client, error) {
	observers := multiObserver{metricsObserver{d.metrics}}
	if obs != nil {
		observers = append(observers, obs)
	}
	return d.w.client(d.pool, observers)
}

// Run runs one schedule: the store is opened for the run, the serving copy published and
// the freshness refreshed after it, and the store closed again.
func (d *daemon) Run(ctx context.Context, sc *config.Schedule) (out serve.Outcome, err error) {
	store, err := d.open(ctx)
	if err != nil {
		return serve.Outcome{Status: load.RunFailed}, err
	}
	defer func() {
		if cerr := store.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing the store: %w", cerr)
		}
	}()
	defer func() {
		// A bug in one run must not leave its runs row "running" for ever, nor take the
		// daemon down: record it and report it as a failure.
		if r := recover(); r != nil {
			d.log.Error("run panicked", "schedule", sc.Name, "panic", fmt.Sprint(r))
			perr := fmt.Errorf("run of schedule %q panicked: %v", sc.Name, r)
			d.closeRunning(context.WithoutCancel(ctx), store, perr)
			out, err = serve.Outcome{Status: load.RunFailed}, perr
		}
	}()

	switch sc.Kind() {
	case "extract":
		out, err = d.runExtract(ctx, store, sc)
	case "action":
		out, err = d.runAction(ctx, store, sc)
	case "export":
		out, err = d.runExport(ctx, store, sc)
	case "report":
		out, err = d.runReport(ctx, store, sc)
	default:
		return serve.Outcome{Status: load.RunFailed}, fmt.Errorf("schedule %q runs nothing", sc.Name)
	}

	// Whatever ended the run, no runs row may stay "running": the lock makes every such
	// row this process's, and its run is over. Closing them before publishing keeps the
	// serving copy from showing a finished run as running.
	d.closeRunning(context.WithoutCancel(ctx), store, errors.New("the run was interrupted before it recorded its end"))
	// Publish what was committed, now that the runs row records the run's end; unless we
	// are shutting down: the old serving copy stays complete and the next run publishes.
	if ctx.Err() == nil {
		if perr := store.Publish(ctx, d.cfg.Store.ServingPath()); perr != nil {
			d.log.Error("publishing the serving copy", "schedule", sc.Name, "error", perr)
			if err == nil {
				err = fmt.Errorf("publishing %s: %w", d.cfg.Store.ServingPath(), perr)
				out.Status = load.RunFailed
				if sc.Kind() == "export" {
					// Publishing is half of an export's job: as `drextract export` does, its
					// runs row is rewritten as failed.
					end := load.RunEnd{Finished: d.clock.Now(), Status: load.RunFailed, Calls: out.Calls,
						Rows: out.Rows, Incomplete: out.Incomplete, Error: err.Error()}
					if ferr := store.FinishRun(context.WithoutCancel(ctx), out.RunID, end); ferr != nil {
						d.log.Error("recording the failed publish in the export's run", "run_id", out.RunID, "error", ferr)
					}
				}
			}
		}
	}
	if sc.Kind() == "export" {
		// The runs row keeps the rows exported per table; to the daemon's metrics
		// (rows loaded into the store) an export adds none.
		out.Rows = nil
	}
	d.refreshFreshness(context.WithoutCancel(ctx), store)
	return out, err
}

func (d *daemon) runExtract(ctx context.Context, store *load.Store, sc *config.Schedule) (serve.Outcome, error) {
	audit := extract.NewAudit()
	client, err := d.newClient(audit)
	if err != nil {
		return serve.Outcome{Status: load.RunFailed}, err
	}
	cr := &extract.Crawler{Client: client, Sink: store, Audit: audit, Pool: d.pool}
	res, err := cr.Run(ratelimit.WithPriority(ctx, ratelimit.Scheduled), extract.Options{
		Full:     sc.Extract.Full,
		Entities: sc.Extract.Entities,
		MaxCalls: sc.MaxCalls,
		Schedule: sc.Name,
		Clock:    d.clock,
		Logger:   d.log,
	})
	out := serve.Outcome{RunID: res.RunID, Status: res.Status, Calls: res.Calls, Rows: res.Rows,
		QuotaReset: res.QuotaReset, Incomplete: res.Incomplete}
	if err == nil && res.Err != nil {
		err = res.Err
	}
	if ctx.Err() == nil && res.Status != load.RunFailed {
		// Outcomes of earlier actions come from the jobs just crawled.
		if _, ferr := action.FollowUp(ctx, store.DB()); ferr != nil {
			d.log.Warn("following up actions", "error", ferr)
		}
	}
	return out, err
}

func (d *daemon) runAction(ctx context.Context, store *load.Store, sc *config.Schedule) (serve.Outcome, error) {
	return d.recorded(ctx, store, sc, "action", func(ctx context.Context) (serve.Outcome, error) {
		a := sc.Action
		sel, err := d.catalog.Get(a.Selection)
		if err != nil {
			return serve.Outcome{Status: load.RunFailed}, err
		}
		client, err := d.newClient(nil)
		if err != nil {
			return serve.Outcome{Status: load.RunFailed}, err
		}
		maxCalls := a.MaxCalls
		if maxCalls == 0 {
			maxCalls = sc.MaxCalls
		}
		eng := &action.Engine{DB: store.DB(), Client: client, Clock: d.clock, Logger: d.log, Budget: d.budgetView,
			OpenUserSQL: action.StoreSandbox(store, d.cfg.Store.ServingPath(), load.SandboxOptions{Timeout: d.cfg.SQLTimeoutDuration()})}
		var plan bytes.Buffer
		rep, err := runSelection(ctx, eng, sel, a.Params, action.Options{MaxCalls: maxCalls, MaxRows: a.MaxRows},
			"schedule:"+sc.Name, !a.Yes, &plan)
		if plan.Len() > 0 {
			d.log.Debug("action plan", "schedule", sc.Name, "plan", plan.String())
		}
		out := serve.Outcome{Status: load.RunOK}
		if rep != nil {
			out.Calls = rep.CallsSent
			out.Rows = map[string]int{"action_items": rep.Sent + rep.Failed + rep.Skipped}
			out.QuotaReset = rep.QuotaReset
			switch rep.Status {
			case action.RunPartial, action.RunInterrupted:
				out.Status = load.RunPartial
			case action.RunFailed:
				out.Status = load.RunFailed
			case action.RunQuotaExhausted:
				out.Status = load.RunQuotaExhausted
			}
		}
		if err != nil && out.Status == load.RunOK {
			out.Status = load.RunFailed
		}
		return out, err
	})
}

// runSelection plans a selection and executes the plan (or only prints it, with dryRun).
// A plan over its guard rails is an error before anything is sent.
func runSelection(ctx context.Context, eng *action.Engine, sel *action.Selection, params map[string]string,
	opts action.Options, startedBy string, dryRun bool, out io.Writer) (*action.Report, error) {
	plan, err := eng.Prepare(ctx, action.Request{
		Selection: sel, Params: params, Options: opts, StartedBy: startedBy,
		Source: action.Source{Kind: "selection", Name: sel.Name},
	})
	if err != nil {
		return nil, fmt.Errorf("planning selection %s: %w", sel.Name, err)
	}
	if err := plan.Check(); err != nil {
		return nil, fmt.Errorf("selection %s: %w", sel.Name, err)
	}
	rep, err := eng.Execute(ctx, plan, dryRun, out)
	if err != nil {
		return rep, fmt.Errorf("running selection %s: %w", sel.Name, err)
	}
	return rep, nil
}

// runExport writes the Parquet files. The serving copy is Run's to publish, after the
// runs row records the export's end.
func (d *daemon) runExport(ctx context.Context, store *load.Store, sc *config.Schedule) (serve.Outcome, error) {
	return d.recorded(ctx, store, sc, "export", func(ctx context.Context) (serve.Outcome, error) {
		st, err := store.Export(ctx, d.cfg.Store.ParquetDir())
		if err != nil {
			return serve.Outcome{Status: load.RunFailed}, fmt.Errorf("exporting Parquet: %w", err)
		}
		rows := map[string]int{}
		for t, n := range st.Rows {
			if n > 0 {
				rows[t] = int(n)
			}
		}
		d.log.Info("exported", "schedule", sc.Name, "tables", st.Tables(), "rows", st.TotalRows(), "dir", d.cfg.Store.ParquetDir())
		return serve.Outcome{Status: load.RunOK, Rows: rows}, nil
	})
}

func (d *daemon) runReport(ctx context.Context, store *load.Store, sc *config.Schedule) (serve.Outcome, error) {
	return d.recorded(ctx, store, sc, "report", func(ctx context.Context) (serve.Outcome, error) {
		def, ok := d.cfg.Report(sc.Report.Name)
		if !ok {
			return serve.Outcome{Status: load.RunFailed}, fmt.Errorf("schedule %q: no report named %q", sc.Name, sc.Report.Name)
		}
		var calls callCounter
		client, err := d.newClient(&calls)
		if err != nil {
			return serve.Outcome{Status: load.RunFailed}, err
		}
		r := &report.Runner{Client: client, Store: store, Clock: d.clock, Logger: d.log}
		results, err := r.Run(ratelimit.WithPriority(ctx, ratelimit.Scheduled), []config.Report{*def}, report.Options{})
		out := serve.Outcome{Status: load.RunOK, Calls: int(calls.n.Load()), Rows: map[string]int{}}
		for _, res := range results {
			out.Rows[res.Table] += int(res.Rows)
		}
		if err != nil {
			out.Status = load.RunFailed
			if reset, ok := quotaReset(err); ok {
				out.Status, out.QuotaReset = load.RunQuotaExhausted, reset
			}
			err = fmt.Errorf("report %s: %w", def.Name, err)
		}
		return out, err
	})
}

// callCounter counts API attempts, for runs whose package does not report its calls.
type callCounter struct{ n atomic.Int64 }

func (c *callCounter) ObserveCall(datorama.CallRecord) { c.n.Add(1) }

// recorded wraps a run that does not record itself in runs (everything but a crawl).
func (d *daemon) recorded(ctx context.Context, store *load.Store, sc *config.Schedule, kind string,
	run func(context.Context) (serve.Outcome, error)) (serve.Outcome, error) {
	id, err := store.StartRun(ctx, load.RunStart{Schedule: sc.Name, Kind: kind, Started: d.clock.Now()})
	if err != nil {
		return serve.Outcome{Status: load.RunFailed}, fmt.Errorf("recording the run: %w", err)
	}
	out, err := run(ctx)
	out.RunID = id
	if out.Status == "" {
		out.Status = load.RunOK
	}
	end := load.RunEnd{Finished: d.clock.Now(), Status: out.Status, Calls: out.Calls, Rows: out.Rows, Incomplete: out.Incomplete}
	if err != nil {
		end.Error = err.Error()
		if out.Status == load.RunOK {
			end.Status, out.Status = load.RunFailed, load.RunFailed
		}
	}
	// The run's end is recorded even when shutdown cancelled ctx.
	if ferr := store.FinishRun(context.WithoutCancel(ctx), id, end); ferr != nil && err == nil {
		err = fmt.Errorf("recording the run's end: %w", ferr)
	}
	return out, err
}

// closeRunning marks the runs a panicking run left "running" as failed. The lock makes
// every running row this process's.
func (d *daemon) closeRunning(ctx context.Context, store *load.Store, cause error) {
	res, err := load.Query(ctx, store.DB(), "SELECT id FROM runs WHERE status = 'running'")
	if err != nil {
		d.log.Error("finding runs left running", "error", err)
		return
	}
	for _, r := range res.Rows {
		id, ok := r[0].(int64)
		if !ok {
			continue
		}
		if err := store.FinishRun(ctx, id, load.RunEnd{Finished: d.clock.Now(), Status: load.RunFailed, Error: cause.Error()}); err != nil {
			d.log.Error("closing a run left running", "run_id", id, "error", err)
		}
	}
}

// freshnessTables are the tables whose rows carry last_seen and run_id.
var freshnessTables = extract.Entities

// refreshFreshness reads max(last_seen) and the last writing run per table while the
// store is open, for /status and /metrics between runs.
func (d *daemon) refreshFreshness(ctx context.Context, store *load.Store) {
	var out []serve.TableFreshness
	var ferr error
	for _, table := range freshnessTables {
		q := fmt.Sprintf(`SELECT count(*) FILTER (WHERE NOT is_deleted), max(last_seen), arg_max(run_id, last_seen) FROM %s`, table)
		res, err := load.Query(ctx, store.DB(), q)
		if err != nil {
			ferr = fmt.Errorf("table %s: %w", table, err)
			break
		}
		rows := res.Rows
		f := serve.TableFreshness{Table: table}
		if len(rows) == 1 {
			f.Rows = asInt64(rows[0][0])
			if t, ok := rows[0][1].(time.Time); ok {
				t = t.UTC()
				f.LastSeen = &t
			}
			f.LastRunID = asInt64(rows[0][2])
		}
		out = append(out, f)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if ferr != nil {
		d.freshErr = ferr
		return
	}
	d.fresh, d.freshErr = out, nil
}

func asInt64(v any) int64 {
	switch n := v.(type) {
	case int64:
		return n
	case int32:
		return int64(n)
	case int:
		return int64(n)
	case uint64:
		return int64(n)
	case float64:
		return int64(n)
	}
	return 0
}

func (d *daemon) freshness(context.Context) ([]serve.TableFreshness, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]serve.TableFreshness(nil), d.fresh...), d.freshErr
}

// budget converts the pool's status for /status and /metrics; only fingerprints leave.
func (d *daemon) budget() []serve.BudgetStatus {
	var out []serve.BudgetStatus
	for _, st := range d.pool.Status() {
		out = append(out, serve.BudgetStatus{
			Fingerprint:    st.Fingerprint,
			PlatformMinute: windowOf(st.Platform.Known || st.Platform.Limit > 0, st.Platform.Limit, st.Platform.Remaining, st.Platform.Reset),
			QueryMinute:    windowOf(st.Query.Known || st.Query.Limit > 0, st.Query.Limit, st.Query.Remaining, st.Query.Reset),
			Daily:          windowOf(st.Daily.Known || st.Daily.Limit > 0, st.Daily.Limit, st.Daily.Remaining, st.Daily.Reset),
			ReserveHeld:    st.Daily.Reserve,
			InFlight:       st.InFlight,
		})
	}
	return out
}

func windowOf(known bool, limit, remaining int, reset time.Time) serve.Window {
	w := serve.Window{Known: known, Limit: limit, Remaining: remaining}
	if !reset.IsZero() {
		r := reset.UTC()
		w.Reset = &r
	}
	return w
}

// budgetView is what the action planner's estimate needs: the budget of every token.
func (d *daemon) budgetView() action.BudgetView { return poolBudgetView(d.pool) }

// metricsObserver feeds API call attempts to the daemon's metrics.
type metricsObserver struct{ m *serve.Metrics }

func (o metricsObserver) ObserveCall(r datorama.CallRecord) {
	o.m.ObserveAPICall(r.Method+" "+r.PathTemplate, r.Status, r.Latency)
}

// multiObserver hands every attempt to each observer in turn.
type multiObserver []datorama.Observer

func (m multiObserver) ObserveCall(r datorama.CallRecord) {
	for _, o := range m {
		o.ObserveCall(r)
	}
}
