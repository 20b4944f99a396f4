package run

import (
	"cmp"
	"context"
	"fmt"
	"io"

	"github.com/drextract/drextract/action"
	"github.com/drextract/drextract/audit"
	"github.com/drextract/drextract/extract"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
)

// ExtractOptions are what a crawl is asked to do.
type ExtractOptions struct {
	Full     bool
	Entities []string // empty: all
	MaxCalls int      // 0: no cap
	// Workspaces and Streams, when set, make a targeted crawl of only those (see
	// extract.Options): nothing outside them is read or marked deleted.
	Workspaces, Streams []int64
	// Workers is how many streams are read at once (0: DefaultWorkers).
	Workers int
	// Progress receives the crawl's progress line (a terminal) or lines; nil: none.
	Progress io.Writer
}

// DefaultWorkers is how many streams a command's or a schedule's crawl reads at once.
// Under the API's 60 calls a minute the budget paces them all the same; against a fast
// API (a mirror, the simulator) the pages they read while a commit runs share the next
// transaction, which is what makes the store keep up (bench: BenchmarkTable). A kill
// loses at most the page each worker had in flight.
const DefaultWorkers = 8

// CrawlDetails is what a crawl adds to its Result.
type CrawlDetails struct {
	ProbeCalls int // calls spent learning the stats page-size cap
}

// Extract crawls the account into st, then follows up earlier actions from the jobs it
// read and publishes. Incremental crawls spend scheduled calls (they leave the daily
// reserve alone); a full one spends backfill calls. The crawl records itself in runs.
func (r *Runner) Extract(ctx context.Context, st *load.Store, o ExtractOptions) *Result {
	res := &Result{Kind: KindExtract, Started: r.clock().Now()}
	if o.Full {
		res.Kind = KindExtractFull
	}
	// The crawl starts its runs row itself: the journal's Sink tags the recorder with it.
	rec := r.recorder(0, false)
	counter := extract.NewAudit()
	client, err := r.client(rec, counter)
	if err != nil {
		res.Status, res.Err = load.RunFailed, err
		r.notify(ctx, st, res)
		return res
	}
	prio := ratelimit.Scheduled
	if o.Full {
		prio = ratelimit.Backfill
	}
	cr := &extract.Crawler{Client: client, Sink: audit.Sink(st, rec), Audit: counter, Pool: r.Pool}
	cres, err := cr.Run(ratelimit.WithPriority(ctx, prio), extract.Options{
		Full: o.Full, Entities: o.Entities, MaxCalls: o.MaxCalls, Schedule: r.schedule(),
		Workspaces: o.Workspaces, Streams: o.Streams, Workers: cmp.Or(o.Workers, DefaultWorkers),
		Progress: o.Progress, Clock: r.clock(), Logger: r.Log,
	})
	res.RunID, res.Status, res.Calls, res.Rows = cres.RunID, cres.Status, cres.Calls, cres.Rows
	res.Incomplete, res.QuotaReset, res.Err = cres.Incomplete, cres.QuotaReset, cres.Err
	res.Crawl = &CrawlDetails{ProbeCalls: cres.ProbeCalls}
	if res.Err == nil {
		res.Err = err
	}
	if r.settleCalls(ctx, st, res, rec) && res.RunID != 0 {
		r.finishRun(ctx, st, res)
	}
	if ctx.Err() != nil {
		// Interrupted: the pages committed so far are kept, and the next run resumes.
		res.Interrupted = true
		return res
	}
	if res.RunID == 0 {
		r.notify(ctx, st, res) // the crawl could not start: nothing to follow up or publish
		return res
	}
	// Outcomes of earlier bulk actions come from the jobs just crawled; a crawl that
	// failed half-way still committed what it read.
	r.followUp(ctx, st, res)
	r.after(ctx, st, res)
	return res
}

// followUp fills in the outcomes of earlier action items from the store. A failure is
// logged and does not change the run's status: the next run follows up again.
func (r *Runner) followUp(ctx context.Context, st *load.Store, res *Result) {
	fu, err := action.FollowUp(ctx, st.DB())
	if err != nil {
		r.log().Warn("following up actions", "run_id", res.RunID, "error", fmt.Errorf("following up actions: %w", err))
		return
	}
	res.FollowUp = &fu
}
