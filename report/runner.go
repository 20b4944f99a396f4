package report

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
)

// DefaultMaxBatch is how many queries one /v1/query-batch request carries at most. The
// API documents no limit (facts file §10, [I]); a small one keeps one bad or slow query
// from holding many others.
const DefaultMaxBatch = 10

// Runner runs report definitions. Its fields are set once; Run is safe for concurrent
// use.
type Runner struct {
	// Client sends the queries; its gate (the rate budget) paces them in the query
	// bucket. The priority is the caller's: ratelimit.WithPriority on the context.
	Client *datorama.Client
	// Store receives the results; Run writes only report_* tables through Store.DB().
	Store *load.Store
	// Clock resolves relative date ranges and stamps rows; default clock.Real{}.
	Clock clock.Clock
	// Logger gets component=report; default slog.Default().
	Logger *slog.Logger
	// WorkspaceZone returns the time zone of a workspace, for definitions without a
	// timezone. Nil means UTC: the API gives a workspace's zone only as a numeric
	// timezoneId whose zone names are not documented.
	WorkspaceZone func(ctx context.Context, workspace int64) (*time.Location, error)
	// MaxBatch caps the queries of one batch request (default DefaultMaxBatch); 1 never
	// batches.
	MaxBatch int
	// Parallel is how many requests may be in flight at once (default 2). The budget
	// still paces them; this only overlaps slow answers.
	Parallel int

	// noBatch is set once /v1/query-batch answered 404 or 405; later runs of this Runner
	// send single queries straight away.
	noBatch atomic.Bool
	// writeMu serialises the write transactions: the API calls overlap, the writes need not.
	writeMu sync.Mutex
}

// Options are the settings of one Run.
type Options struct {
	// Span, when set, replaces every definition's own date range (drextract report
	// --from --to).
	Span *Span
}

// Result is what happened to one definition.
type Result struct {
	Report   string
	Table    string
	RunID    int64 // the report_runs row; 0 when the run could not even be recorded
	Span     Span
	Rows     int64 // rows inserted
	Replaced int64 // rows deleted first (mode replace)
	Added    []string
	Widened  []string
	Batched  bool // answered through /v1/query-batch
	Err      error
}

// job is one definition being run.
type job struct {
	def   *config.Report
	res   *Result
	query datorama.QueryRequest
}

// Run runs every definition and returns one Result per definition, in order. A
// definition that fails writes nothing and records its error in report_runs; the others
// still run. The returned error joins the failures, each a *DefinitionError naming its
// definition; it matches datorama.ErrQuotaExhausted when the quota ran out.
//
// Definitions of the same workspace go through /v1/query-batch, several per request,
// unless the API answered that endpoint 404 or 405 once, in which case this Runner sends
// single queries from then on.
func (r *Runner) Run(ctx context.Context, defs []config.Report, opts Options) ([]Result, error) {
	if r.Store == nil || r.Client == nil {
		return nil, errNoStore
	}
	clk := r.clock()
	log := r.logger()
	results := make([]Result, len(defs))
	jobs := make([]*job, 0, len(defs))
	for i := range defs {
		def := &defs[i]
		res := &results[i]
		*res = Result{Report: def.Name, Table: def.Table}
		span, err := r.span(ctx, def, opts)
		if err != nil {
			res.Err = definitionError(def, err)
			continue
		}
		res.Span = span
		q, err := buildQuery(def, span)
		if err != nil {
			res.Err = definitionError(def, err)
			continue
		}
		if res.RunID, err = startRun(ctx, r.Store.DB(), def, span, clk.Now()); err != nil {
			res.Err = definitionError(def, err)
			continue
		}
		jobs = append(jobs, &job{def: def, res: res, query: q})
	}

	units := r.group(jobs)
	sem := make(chan struct{}, r.parallel())
	var wg sync.WaitGroup
	for _, u := range units {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if len(u) == 1 {
				r.runSingle(ctx, u[0])
			} else {
				r.runBatch(ctx, u)
			}
		}()
	}
	wg.Wait()

	var errs []error
	for i := range results {
		res := &results[i]
		if res.Err != nil {
			errs = append(errs, res.Err)
			if res.RunID != 0 {
				if err := failRun(r.Store.DB(), res.RunID, clk.Now(), res.Err); err != nil {
					log.Warn("recording a failed report run", "report", res.Report, "run", res.RunID, "error", err)
				}
			}
			// The caller reports the returned error once; this is for tracing only.
			log.Debug("report failed", "report", res.Report, "run", res.RunID, "error", res.Err)
			continue
		}
		log.Info("report landed", "report", res.Report, "table", res.Table, "run", res.RunID, "span", res.Span.String(),
			"rows", res.Rows, "replaced", res.Replaced, "added", res.Added, "widened", res.Widened, "batched", res.Batched)
	}
	return results, errors.Join(errs...)
}

func (r *Runner) parallel() int {
	if r.Parallel <= 0 {
		return 2
	}
	return r.Parallel
}

func (r *Runner) clock() clock.Clock {
	if r.Clock == nil {
		return clock.Real{}
	}
	return r.Clock
}

func (r *Runner) logger() *slog.Logger {
	l := r.Logger
	if l == nil {
		l = slog.Default()
	}
	return l.With("component", "report")
}

func (r *Runner) span(ctx context.Context, def *config.Report, opts Options) (Span, error) {
	if opts.Span != nil {
		if opts.Span.To.Before(opts.Span.From.Time) {
			return Span{}, fmt.Errorf("date range %s ends before it starts", opts.Span)
		}
		return *opts.Span, nil
	}
	loc := time.UTC
	switch {
	case def.Timezone != "":
		l, err := time.LoadLocation(def.Timezone)
		if err != nil {
			return Span{}, fmt.Errorf("time zone: %w", err)
		}
		loc = l
	case r.WorkspaceZone != nil:
		l, err := r.WorkspaceZone(ctx, def.Workspace)
		if err != nil {
			return Span{}, fmt.Errorf("time zone of workspace %d: %w", def.Workspace, err)
		}
		if l != nil {
			loc = l
		}
	}
	return Resolve(def.DateRange, r.clock().Now(), loc)
}

// group splits jobs into units: batches of the same workspace, up to MaxBatch each, and
// single queries for the rest.
func (r *Runner) group(jobs []*job) [][]*job {
	maxBatch := r.MaxBatch
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	if maxBatch == 1 || r.noBatch.Load() {
		return singles(jobs)
	}
	var order []int64
	byWS := map[int64][]*job{}
	for _, j := range jobs {
		if _, ok := byWS[j.def.Workspace]; !ok {
			order = append(order, j.def.Workspace)
		}
		byWS[j.def.Workspace] = append(byWS[j.def.Workspace], j)
	}
	var units [][]*job
	for _, ws := range order {
		js := byWS[ws]
		for len(js) > 0 {
			n := min(len(js), maxBatch)
			units = append(units, js[:n])
			js = js[n:]
		}
	}
	return units
}

func singles(jobs []*job) [][]*job {
	units := make([][]*job, len(jobs))
	for i, j := range jobs {
		units[i] = []*job{j}
	}
	return units
}

func (r *Runner) runSingle(ctx context.Context, j *job) {
	res, err := r.Client.Query.Run(ctx, j.query, false)
	if err != nil {
		j.res.Err = definitionError(j.def, err)
		return
	}
	r.land(ctx, j, res, false)
}

// runBatch sends the unit as one batch. A 404 or 405 means the API has no batch form:
// remember it and send single queries. A 422 fails the whole batch without saying which
// query was wrong in a form we can rely on, so the unit is resent as single queries,
// which lands the good ones and names the bad one.
func (r *Runner) runBatch(ctx context.Context, u []*job) {
	if r.noBatch.Load() {
		r.runSingles(ctx, u)
		return
	}
	qs := make([]datorama.QueryRequest, len(u))
	for i, j := range u {
		qs[i] = j.query
	}
	out, err := r.Client.Query.Batch(ctx, qs)
	switch {
	case datorama.IsUnsupported(err):
		if !r.noBatch.Swap(true) {
			r.logger().Info("the API has no /v1/query-batch; sending single queries", "error", err)
		}
		r.runSingles(ctx, u)
		return
	case datorama.IsRejected(err):
		r.logger().Info("a query of the batch was refused; resending one by one to find it", "queries", len(u))
		r.runSingles(ctx, u)
		return
	}
	if out == nil {
		for _, j := range u {
			j.res.Err = definitionError(j.def, err)
		}
		return
	}
	failed := map[int]error{}
	for _, e := range flatten(err) {
		var qe *datorama.QueryError
		if errors.As(e, &qe) {
			failed[qe.Index] = e
		}
	}
	for i, j := range u {
		if e, ok := failed[i]; ok {
			j.res.Err = definitionError(j.def, e)
			continue
		}
		r.land(ctx, j, &out[i], true)
	}
}

func (r *Runner) runSingles(ctx context.Context, u []*job) {
	for _, j := range u {
		r.runSingle(ctx, j)
	}
}

// flatten lists the errors joined in err (errors.Join), or err itself.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func (r *Runner) land(ctx context.Context, j *job, res *datorama.QueryResult, batched bool) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	w, err := land(ctx, r.Store.DB(), landing{def: j.def, span: j.res.Span, runID: j.res.RunID, result: res, batched: batched}, r.clock().Now())
	if err != nil {
		j.res.Err = definitionError(j.def, err)
		return
	}
	j.res.Rows, j.res.Replaced, j.res.Added, j.res.Widened, j.res.Batched = w.rows, w.replaced, w.added, w.widened, batched
}
