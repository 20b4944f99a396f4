package extract

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
)

// Crawler reads a Datorama account into a load.Sink. Its fields are its dependencies;
// set them and call Run. A Crawler runs one crawl at a time.
type Crawler struct {
	// Client is the API client, with its rate gate and, ideally, Audit as its observer.
	Client *datorama.Client
	// Sink is the store.
	Sink load.Sink
	// Audit is the observer wired into Client. With it every attempt counts towards
	// Result.Calls; without it the crawler counts its own requests.
	Audit *Audit
	// Pool, when the client's gate is a pool of several tokens, makes the workspace list
	// read once per token and merged (each token sees only its user's workspaces), and
	// tells the pool what each token sees.
	Pool *ratelimit.Pool
	// Quota tells Plan today's remaining daily quota; nil or ok=false: unknown.
	Quota func() (q QuotaStatus, ok bool)

	// queued, when set by a test, learns how many batches wait for the next commit each
	// time that changes. It is called under the committer's lock and must not block.
	queued func(n int)
}

func (c *Crawler) noteQueue(n int) {
	if c.queued != nil {
		c.queued(n)
	}
}

// QuotaStatus is the daily quota as the rate budget knows it, summed over tokens.
type QuotaStatus struct {
	Limit, Remaining int
	Reset            time.Time
}

// Errors that end a crawl early. They never escape Run: they set the run's status.
var (
	errCallCap = errors.New("call cap reached")
)

// storeError marks a failure of the store, which ends the crawl: nothing more could be
// kept.
type storeError struct{ err error }

func (e *storeError) Error() string { return e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// run is the state of one Run.
type run struct {
	c   *Crawler
	o   Options
	log *slog.Logger
	id  int64
	// parent is the caller's context without its cancellation: writes use it, so a page
	// already fetched is committed even while the crawl is being interrupted.
	parent context.Context

	sinkMu sync.Mutex // the Sink is used by one goroutine at a time

	acctMu     sync.Mutex
	acct       accountState
	acctStored accountState

	halted     atomic.Bool
	requests   atomic.Int64 // API requests made by this run (without an Audit)
	callsStart int
	probes     atomic.Int64
	prog       *progress

	mu         sync.Mutex
	rows       map[string]int
	incomplete []string
	quotaReset time.Time
	fatal      error

	wsComplete bool // the workspace list was read cleanly: workspaces missing from it are gone

	pendMu  sync.Mutex
	pending []*jobsReader

	commits committer
}

// committer groups the batches workers write at the same time into one transaction: the
// first writer to find no commit running leads, commits what is queued then, and hands
// the lead to a writer that queued meanwhile. Every writer waits until its batch is
// committed, so a worker has at most one page fetched and not stored, whatever the group
// size: with one worker every page commits alone, as soon as it is read, and a kill
// loses at most the page each worker had in flight; with several workers on a fast API
// the pages read while a commit runs share the next one.
type committer struct {
	mu      sync.Mutex
	queue   []*queuedWrite
	leading bool
}

type queuedWrite struct {
	b    load.Batch
	done chan commitResult // buffered: the leader never waits on a writer
}

// commitResult is what a queued writer learns: its batch's outcome, or that it leads now
// and commits group.
type commitResult struct {
	err   error
	group []*queuedWrite
}

// Run crawls the account once and records the run (runs). Its error is
// non-nil only when the crawl could not start or was interrupted by ctx; every other
// outcome, including a failure of the store, is in Result.Status and Result.Err.
func (c *Crawler) Run(ctx context.Context, opts Options) (Result, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return Result{Status: load.RunFailed, Err: err}, err
	}
	r := &run{c: c, o: o, log: o.Logger, parent: context.WithoutCancel(ctx), rows: map[string]int{}}
	r.callsStart = r.audited()
	r.prog = newProgress(o.Progress, o.Logger, o.Clock, r.calls)
	id, err := c.Sink.StartRun(ctx, load.RunStart{Schedule: o.Schedule, Kind: o.kind(), Started: o.Clock.Now()})
	if err != nil {
		err = fmt.Errorf("starting a crawl run: %w", err)
		return Result{Status: load.RunFailed, Err: err}, err
	}
	r.id = id
	r.log = r.log.With("run", id)
	r.log.Info("crawl started", "full", o.Full, "entities", o.Entities)

	// A cancelled ctx stops new requests at once; requests in flight get interruptGrace
	// to finish, so their pages are still committed.
	apiCtx, cancelAPI := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelAPI()
	stopWatch := context.AfterFunc(ctx, func() {
		r.halt(fmt.Errorf("%w: %w", errInterrupted, context.Cause(ctx)))
		time.AfterFunc(interruptGrace, cancelAPI)
	})
	defer stopWatch()
	r.crawl(apiCtx)
	r.prog.finish()
	return r.finish(ctx)
}

// interruptGrace is how long requests in flight may take to finish after the caller
// cancelled a crawl. It is real time: it bounds how long an interrupt waits.
const interruptGrace = 2 * time.Second

// errInterrupted marks a crawl stopped by its caller.
var errInterrupted = errors.New("interrupted")

// crawl runs the stages; a stage's failure to start ends it, a parent's failure is
// recorded and the crawl goes on.
func (r *run) crawl(ctx context.Context) {
	if err := r.loadAccount(ctx); err != nil {
		r.halt(err)
		return
	}
	var wss []int64
	if r.o.targeted() {
		wss = r.o.Workspaces
		if !r.learnVisibility(ctx) {
			return
		}
	} else {
		var ok bool
		if wss, ok = r.workspaces(ctx); !ok {
			return
		}
	}
	if r.done(ctx) {
		return
	}
	var streams []*streamWork
	if r.o.needsStreams() {
		streams = r.streams(ctx, wss)
		if len(r.o.Streams) > 0 && !r.done(ctx) {
			streams = r.targetStreams(ctx, streams)
		}
	}
	if r.done(ctx) {
		return
	}
	r.workspaceLists(ctx, wss)
	if r.done(ctx) {
		return
	}
	if r.o.wants(load.Jobs) || r.o.wants(load.Mappings) {
		r.streamItems(ctx, streams)
		if r.done(ctx) {
			return
		}
		r.resolvePending(ctx)
	}
	if !r.done(ctx) {
		r.saveAccount(ctx)
	}
}

// finish records the run's end and builds the Result.
func (r *run) finish(ctx context.Context) (Result, error) {
	res := Result{RunID: r.id, Rows: r.rows, ProbeCalls: int(r.probes.Load())}
	r.mu.Lock()
	res.Incomplete = slices.Clone(r.incomplete)
	fatal := r.fatal
	res.QuotaReset = r.quotaReset
	r.mu.Unlock()
	switch {
	case ctx.Err() != nil:
		// Everything committed is kept and the next run resumes: a partial run.
		res.Status, res.Err = load.RunPartial, fmt.Errorf("crawl %w: %w", errInterrupted, context.Cause(ctx))
		res.Incomplete = append(res.Incomplete, "interrupted before the end")
	case fatal != nil && errors.Is(fatal, datorama.ErrQuotaExhausted):
		// Kept in runs.error: whether the API's quota or drextract's reserve stopped it.
		res.Status, res.Err = load.RunQuotaExhausted, fatal
	case fatal != nil && errors.Is(fatal, errCallCap):
		res.Status = load.RunPartial
		res.Incomplete = append(res.Incomplete, fmt.Sprintf("stopped at the call cap (%d calls)", r.o.MaxCalls))
	case fatal != nil:
		res.Status, res.Err = load.RunFailed, fatal
	case len(res.Incomplete) > 0:
		res.Status = load.RunPartial
	default:
		res.Status = load.RunOK
	}
	// Record the calls and the end even when ctx was cancelled: the run happened.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	res.Calls = r.calls()
	end := load.RunEnd{Finished: r.o.Clock.Now(), Status: res.Status, Calls: res.Calls, Rows: res.Rows, Incomplete: res.Incomplete}
	if res.Err != nil {
		end.Error = res.Err.Error()
	}
	r.sinkMu.Lock()
	finErr := r.c.Sink.FinishRun(fctx, r.id, end)
	r.sinkMu.Unlock()
	r.log.Info("crawl finished", "status", res.Status, "calls", res.Calls, "rows", res.Rows,
		"incomplete", len(res.Incomplete), "probe_calls", res.ProbeCalls)
	if err := finErr; err != nil {
		if res.Err == nil {
			res.Err = err
		}
		if res.Status != load.RunFailed {
			r.log.Error("recording the end of the run", "err", err)
		}
	}
	if ctx.Err() != nil {
		return res, res.Err
	}
	return res, nil
}

// audited is the attempts the audit counted so far, or this run's requests without one.
func (r *run) audited() int {
	if r.c.Audit != nil {
		return r.c.Audit.Calls()
	}
	return int(r.requests.Load())
}

// calls is the API attempts made by this run.
func (r *run) calls() int {
	if r.c.Audit != nil {
		return r.c.Audit.Calls() - r.callsStart
	}
	return int(r.requests.Load())
}

// errHalted is what calls get once the crawl was halted.
var errHalted = errors.New("crawl halted")

// done reports whether the crawl must stop: the caller cancelled, or it was halted.
func (r *run) done(ctx context.Context) bool { return ctx.Err() != nil || r.halted.Load() }

// beforeCall is checked before every API request: it stops new requests once the crawl
// was halted and enforces MaxCalls. Requests already in flight are not cancelled by a
// halt, so their answers are still stored. A request takes its place under the cap
// before it starts, so workers calling at once cannot overshoot it together; only the
// client's retries of requests in flight can add attempts beyond it.
func (r *run) beforeCall(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	for {
		if r.halted.Load() {
			return errHalted
		}
		n := r.requests.Load()
		if r.o.MaxCalls > 0 && (int(n) >= r.o.MaxCalls || r.calls() >= r.o.MaxCalls) {
			r.halt(errCallCap)
			return errCallCap
		}
		if r.requests.CompareAndSwap(n, n+1) {
			return nil
		}
	}
}

// halt ends the crawl early for a reason that concerns all of it (quota, call cap, the
// store): no new request is started, answers in flight are still stored. The first
// reason wins.
func (r *run) halt(err error) {
	r.mu.Lock()
	if r.fatal == nil {
		r.fatal = err
		var qe *datorama.QuotaError
		if errors.As(err, &qe) {
			r.quotaReset = qe.Reset
		}
	}
	r.mu.Unlock()
	r.halted.Store(true)
}

// failed records that a parent's listing did not finish. An error that concerns the
// whole crawl (quota, call cap, cancellation) halts it instead.
func (r *run) failed(ctx context.Context, parent string, err error) {
	switch {
	case errors.Is(err, datorama.ErrQuotaExhausted), errors.Is(err, errCallCap):
		r.halt(err)
		return
	case errors.As(err, new(*storeError)):
		r.halt(err)
		return
	case datorama.IsUnauthorized(err):
		// A refused token is not one parent's problem: every further call would be
		// refused too, so the crawl stops as failed and says why.
		r.halt(fmt.Errorf("the API refused the token (401) while listing %s; check the token and the base URL: %w", parent, err))
		return
	case ctx.Err() != nil, errors.Is(err, errHalted), r.halted.Load():
		return // stopped: not this parent's fault
	}
	r.log.Warn("listing failed; it stays incomplete", "parent", parent, "err", err)
	r.mu.Lock()
	r.incomplete = append(r.incomplete, parent)
	r.mu.Unlock()
}

// write stores a batch with its checkpoint, in one transaction with the batches other
// workers write at the same time, and returns once it is committed.
func (r *run) write(b load.Batch) error {
	if b.ObservedAt.IsZero() {
		b.ObservedAt = r.o.Clock.Now()
	}
	own := &queuedWrite{b: b, done: make(chan commitResult, 1)}
	c := &r.commits
	c.mu.Lock()
	c.queue = append(c.queue, own)
	if c.leading {
		r.c.noteQueue(len(c.queue))
		c.mu.Unlock()
		res := <-own.done
		if res.group == nil {
			return res.err
		}
		return r.lead(own, res.group)
	}
	c.leading = true
	group := c.queue
	c.queue = nil
	r.c.noteQueue(0)
	c.mu.Unlock()
	return r.lead(own, group)
}

// lead commits group (own among them) in one transaction, tells the other writers, and
// hands the lead, with the batches queued meanwhile, to the first of their writers.
func (r *run) lead(own *queuedWrite, group []*queuedWrite) error {
	err := r.commitGroup(group)
	var ownErr error
	for _, w := range group {
		werr := err
		if err != nil {
			werr = &storeError{fmt.Errorf("writing %s of parent %d: %w", w.b.Entity, w.b.ParentID, err)}
		}
		if w == own {
			ownErr = werr
			continue
		}
		w.done <- commitResult{err: werr}
	}
	c := &r.commits
	c.mu.Lock()
	next := c.queue
	c.queue = nil
	c.leading = len(next) > 0
	r.c.noteQueue(0)
	c.mu.Unlock()
	if len(next) > 0 {
		next[0].done <- commitResult{group: next}
	}
	return ownErr
}

// commitGroup writes a group of batches in one transaction and counts their rows.
func (r *run) commitGroup(group []*queuedWrite) error {
	bs := make([]load.Batch, len(group))
	for i, w := range group {
		bs[i] = w.b
	}
	r.sinkMu.Lock()
	defer r.sinkMu.Unlock()
	if err := r.c.Sink.WriteBatches(r.parent, r.id, bs); err != nil {
		return err
	}
	r.mu.Lock()
	for i := range bs {
		if n := bs[i].Rows(); n > 0 {
			r.rows[bs[i].Entity] += n
		}
	}
	r.mu.Unlock()
	return nil
}

func (r *run) checkpoints(ctx context.Context, kind string) (map[int64]load.Checkpoint, error) {
	r.sinkMu.Lock()
	defer r.sinkMu.Unlock()
	cps, err := r.c.Sink.Checkpoints(ctx, kind)
	if err != nil {
		return nil, &storeError{fmt.Errorf("reading %s checkpoints: %w", kind, err)}
	}
	return cps, nil
}

func (r *run) jobIndex(ctx context.Context, streamID int64) ([]load.JobKey, error) {
	r.sinkMu.Lock()
	defer r.sinkMu.Unlock()
	idx, err := r.c.Sink.JobIndex(ctx, streamID)
	if err != nil {
		return nil, &storeError{fmt.Errorf("reading the stored jobs of stream %d: %w", streamID, err)}
	}
	return idx, nil // ascending by id, as the Sink promises
}

// parallel runs fn for 0..n-1 on the run's workers and returns when all are done or the
// crawl stopped.
func (r *run) parallel(ctx context.Context, n int, fn func(ctx context.Context, i int)) {
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for range min(r.o.Workers, n) {
		wg.Go(func() {
			for !r.done(ctx) {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(ctx, i)
			}
		})
	}
	wg.Wait()
}

// account returns a copy of what is known about the API.
func (r *run) account() accountState {
	r.acctMu.Lock()
	defer r.acctMu.Unlock()
	return r.acct
}

// updateAccount changes what is known about the API.
func (r *run) updateAccount(fn func(a *accountState)) accountState {
	r.acctMu.Lock()
	defer r.acctMu.Unlock()
	fn(&r.acct)
	return r.acct
}

// loadAccount reads the account checkpoint and folds in what the jobs checkpoints
// learned (they are written with every page; the account checkpoint only now and then).
func (r *run) loadAccount(ctx context.Context) error {
	cps, err := r.checkpoints(ctx, kindAccount)
	if err != nil {
		return err
	}
	a, _ := decodeState[accountState](r.log, cps[0])
	r.acct, r.acctStored = a, a
	return nil
}

// foldJobsCheckpoints merges the cap, floor and order the streams' checkpoints saw.
func (r *run) foldJobsCheckpoints(states map[int64]*jobsState) {
	r.updateAccount(func(a *accountState) { a.foldJobs(states) })
}

// foldJobs adds what the streams' jobs checkpoints learned to a: the longest page seen,
// a cap no page exceeded, and the order most streams showed.
func (a *accountState) foldJobs(states map[int64]*jobsState) {
	asc, desc := 0, 0
	for _, s := range states {
		a.Floor = max(a.Floor, s.MaxPage)
	}
	for _, s := range states {
		// A cap some page already exceeded is stale.
		if a.Cap == 0 && s.Cap >= a.Floor {
			a.Cap = s.Cap
		}
		switch s.Order {
		case orderAsc:
			asc++
		case orderDesc:
			desc++
		}
	}
	if a.Order == "" && asc+desc > 0 {
		a.Order = orderAsc
		if desc > asc {
			a.Order = orderDesc
		}
	}
}

// decodeJobStates decodes the jobs checkpoints; one that does not decode is logged and
// left out (its stream is read as if never crawled).
func decodeJobStates(log *slog.Logger, cps map[int64]load.Checkpoint) map[int64]*jobsState {
	out := make(map[int64]*jobsState, len(cps))
	for id, cp := range cps {
		if s, ok := decodeState[jobsState](log, cp); ok {
			out[id] = &s
		}
	}
	return out
}

// saveAccount writes the account checkpoint when it changed.
func (r *run) saveAccount(ctx context.Context) {
	a := r.account()
	if a == r.acctStored {
		return
	}
	err := r.write(load.Batch{
		Entity: load.Jobs, ParentID: 0,
		Checkpoint: &load.Checkpoint{Kind: kindAccount, ParentID: 0, State: encodeState(a), UpdatedAt: r.o.Clock.Now()},
	})
	if err != nil {
		r.halt(err)
		return
	}
	r.acctStored = a
}

// addProbe counts one cap-learning call, for the run and the account.
func (r *run) addProbe() {
	r.probes.Add(1)
	r.updateAccount(func(a *accountState) { a.Probes++ })
}
