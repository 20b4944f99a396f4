package run

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/drextract/drextract/action"
	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
	"github.com/drextract/drextract/serve"
)

// Daemon is the serve.Runner of `drextract serve`: each schedule's run goes through the
// same Runner methods as the commands, with the live store opened for the run and
// closed after it. The caller holds the data directory's lock for the daemon's life.
type Daemon struct {
	runner  *Runner
	catalog *action.Catalog

	mu       sync.Mutex
	fresh    []load.TableFreshness
	freshErr error
}

var _ serve.Runner = (*Daemon)(nil)

// NewDaemon loads the selections and opens the store once, which migrates it, closes
// runs a dead process left running and reads the freshness /status shows before the
// first run. r.Schedule is set per run.
func NewDaemon(ctx context.Context, r *Runner) (*Daemon, error) {
	cat, err := action.LoadCatalog(r.Config.SelectionsDir)
	if err != nil {
		return nil, fmt.Errorf("loading selections: %w", err)
	}
	d := &Daemon{runner: r, catalog: cat}
	st, err := d.open(ctx)
	if err != nil {
		return nil, err
	}
	d.refreshFreshness(ctx, st)
	if err := st.Close(); err != nil {
		return nil, fmt.Errorf("closing the store: %w", err)
	}
	return d, nil
}

func (d *Daemon) open(ctx context.Context) (*load.Store, error) {
	path := d.runner.Config.Store.DuckDBPath()
	st, err := load.Open(ctx, path, StoreOptions(d.runner.Config, d.runner.clock(), d.runner.Log))
	if err != nil {
		return nil, fmt.Errorf("opening the store %s: %w", path, err)
	}
	return st, nil
}

// Run runs one schedule with the store open for the run.
func (d *Daemon) Run(ctx context.Context, sc *config.Schedule) (out serve.Outcome, err error) {
	st, err := d.open(ctx)
	if err != nil {
		return serve.Outcome{Status: load.RunFailed}, err
	}
	defer func() {
		if cerr := st.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing the store: %w", cerr)
		}
	}()
	defer func() {
		// A bug in one run must not leave its runs row "running" for ever, nor take the
		// daemon down: record it and report it as a failure.
		if p := recover(); p != nil {
			perr := fmt.Errorf("run of schedule %q panicked: %v", sc.Name, p)
			d.runner.log().Error("run panicked", "schedule", sc.Name, "panic", fmt.Sprint(p))
			if _, ferr := st.FailRunning(context.WithoutCancel(ctx), perr.Error()); ferr != nil {
				d.runner.log().Error("closing the run left running", "error", ferr)
			}
			out, err = serve.Outcome{Status: load.RunFailed}, perr
			r := *d.runner
			r.Schedule = sc.Name
			r.notify(ctx, st, &Result{Kind: sc.Kind(), Status: load.RunFailed, Err: perr})
		}
	}()
	res := d.dispatch(ctx, st, sc)
	d.refreshFreshness(context.WithoutCancel(ctx), st)
	// The scheduler waits on the host's clock for a reset the API named in its own time.
	out = serve.Outcome{RunID: res.RunID, Status: res.Status, Calls: res.Calls, Rows: res.Rows,
		QuotaReset: d.runner.hostTime(res.QuotaReset), Incomplete: res.Incomplete}
	if out.Status == RunDryRun {
		out.Status = load.RunOK // a scheduled plan that sends nothing (yes: false) did its job
	}
	if res.Kind == KindExport {
		// The runs row keeps the rows exported per table; to the daemon's metrics (rows
		// loaded into the store) an export adds none.
		out.Rows = nil
	}
	if res.Interrupted && ctx.Err() != nil {
		return out, ctx.Err()
	}
	return out, res.Err
}

// dispatch runs the schedule's kind of work with a Runner naming the schedule.
func (d *Daemon) dispatch(ctx context.Context, st *load.Store, sc *config.Schedule) *Result {
	r := *d.runner
	r.Schedule = sc.Name
	switch sc.Kind() {
	case "extract":
		return r.Extract(ctx, st, ExtractOptions{Full: sc.Extract.Full, Entities: sc.Extract.Entities, MaxCalls: sc.MaxCalls,
			Workers: sc.Extract.Workers})
	case "export":
		return r.Export(ctx, st)
	case "report":
		def, ok := r.Config.Report(sc.Report.Name)
		if !ok {
			return &Result{Kind: KindReport, Status: load.RunFailed,
				Err: fmt.Errorf("schedule %q: no report named %q", sc.Name, sc.Report.Name)}
		}
		return r.Report(ctx, st, ReportOptions{Definition: *def, Priority: ratelimit.Scheduled})
	case "action":
		a := sc.Action
		sel, err := d.catalog.Get(a.Selection)
		if err != nil {
			return &Result{Kind: KindAction, Status: load.RunFailed, Err: err}
		}
		maxCalls := a.MaxCalls
		if maxCalls == 0 {
			maxCalls = sc.MaxCalls
		}
		req := action.Request{Selection: sel, Params: a.Params, StartedBy: "schedule:" + sc.Name,
			Options: action.Options{MaxCalls: maxCalls, MaxRows: a.MaxRows},
			Source:  action.Source{Kind: "selection", Name: sel.Name}}
		return r.Action(ctx, st, ActionOptions{Request: req, DryRun: !a.Yes, Priority: ratelimit.Scheduled})
	}
	return &Result{Status: load.RunFailed, Err: fmt.Errorf("schedule %q runs nothing", sc.Name)}
}

// refreshFreshness reads the tables' freshness while the store is open, for /status and
// /metrics between runs.
func (d *Daemon) refreshFreshness(ctx context.Context, st *load.Store) {
	fr, err := st.Freshness(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		d.freshErr = err
		return
	}
	d.fresh, d.freshErr = fr, nil
}

// Freshness is what the last run left, for serve's /status.
func (d *Daemon) Freshness(context.Context) ([]serve.TableFreshness, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]serve.TableFreshness, 0, len(d.fresh))
	for _, f := range d.fresh {
		tf := serve.TableFreshness{Table: f.Table, Rows: f.Rows, LastRunID: f.LastRunID}
		if !f.LastSeen.IsZero() {
			t := f.LastSeen
			tf.LastSeen = &t
		}
		out = append(out, tf)
	}
	return out, d.freshErr
}

// Budget is the rate budget of every token, for serve's /status and /metrics; only
// fingerprints leave.
func (d *Daemon) Budget() []serve.BudgetStatus {
	var out []serve.BudgetStatus
	for _, st := range d.runner.Pool.Status() {
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

// MetricsObserver feeds every API attempt to the daemon's metrics.
func MetricsObserver(m *serve.Metrics) datorama.Observer { return metricsObserver{m} }

type metricsObserver struct{ m *serve.Metrics }

func (o metricsObserver) ObserveCall(rec datorama.CallRecord) {
	o.m.ObserveAPICall(rec.Method+" "+rec.PathTemplate, rec.Status, rec.Latency)
}
