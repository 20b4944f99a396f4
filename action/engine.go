package action

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
)

// Engine plans and executes bulk actions against one store. An Engine is used by one
// run at a time; the data-dir lock keeps other writers out.
type Engine struct {
	// DB is the store drextract's own queries read (streams, jobs, cooldown, pending)
	// and the audit is written to. A selection's SQL never runs on it: see OpenUserSQL.
	DB *sql.DB
	// OpenUserSQL opens where a selection's own SQL runs, once per selection, and the
	// engine closes it as soon as the rows are read (StoreSandbox gives the one drextract
	// uses). Without it, selections are refused; CSV and command rows need none.
	OpenUserSQL func(ctx context.Context) (UserSQL, error)
	Client      *datorama.Client // may be nil for dry runs
	Clock       clock.Clock      // default clock.Real{}
	Logger      *slog.Logger
	// Budget, when set, tells the plan's estimate what the rate budget has left.
	Budget func() BudgetView
	// WrapSender, when set, wraps the API sender; tests inject faults with it. It sits
	// below the audit, so to the audit a fault looks exactly like the API failing.
	WrapSender func(Sender) Sender
	// PollEvery is the first wait between re-checks of our pending jobs' status when the
	// cap holds a call back (default 2m; it doubles while nothing finishes); MaxWait is
	// how long a run waits without any of them finishing before giving up (default 6h).
	PollEvery time.Duration
	MaxWait   time.Duration
	// PageSize is the stats page size used to read a stream's jobs when reconciling.
	PageSize int
	// Sink and RunID, when both are set, make the store show at once what a run did: the
	// rows a sent call changed are written through Sink from the API's answer (or one
	// GET), stamped with RunID, the runs row of the run (see writeback.go). Without them
	// the next crawl brings the store up to date.
	Sink  load.Sink
	RunID int64

	// unstored collects the write-backs that failed, for the run's Report.
	unstored []string
}

func (e *Engine) clock() clock.Clock {
	if e.Clock == nil {
		return clock.Real{}
	}
	return e.Clock
}

func (e *Engine) log() *slog.Logger {
	l := e.Logger
	if l == nil {
		l = slog.Default()
	}
	return l.With("component", "action")
}

func (e *Engine) budget() BudgetView {
	if e.Budget == nil {
		return BudgetView{}
	}
	return e.Budget()
}

func (e *Engine) pollEvery() time.Duration {
	if e.PollEvery <= 0 {
		return 2 * time.Minute
	}
	return e.PollEvery
}

func (e *Engine) maxWait() time.Duration {
	if e.MaxWait <= 0 {
		return 6 * time.Hour
	}
	return e.MaxWait
}

func (e *Engine) pageSize() int {
	if e.PageSize <= 0 {
		return 1000
	}
	return e.PageSize
}

// BudgetViewOf converts a rate budget's status for the estimate.
func BudgetViewOf(s ratelimit.Status) BudgetView {
	return BudgetView{
		PerMinute:       s.Platform.Limit,
		MinuteRemaining: s.Platform.Remaining,
		MinuteReset:     s.Platform.Reset,
		DailyRemaining:  s.Daily.Remaining,
		DailyReset:      s.Daily.Reset,
		Known:           s.Platform.Limit > 0 && !s.Updated.IsZero(),
	}
}

// auditSender is the audit decorator: a batch's calls and their items are 'sending'
// (committed) before any request leaves, and 'sent' with the created job ids, or
// 'failed'/'skipped', after. A call whose outcome is unknown stays 'sending' for
// reconciliation.
type auditSender struct {
	next  Sender
	audit *audit
	runID int64
}

func (a *auditSender) Send(ctx context.Context, calls []*Call) []Result {
	if err := a.audit.markSending(ctx, a.runID, calls); err != nil {
		out := make([]Result, len(calls))
		for i := range out {
			out[i] = Result{Err: definite(fmt.Errorf("not sent, the audit could not mark it first: %w", err))}
		}
		return out
	}
	res := a.next.Send(ctx, calls)
	if err := a.audit.record(ctx, a.runID, calls, res); err != nil {
		// The requests went out but their record did not: the calls stay 'sending' and
		// are reconciled as after a crash.
		for i := range res {
			if res[i].Err == nil || !OutcomeUnknown(res[i].Err) {
				res[i] = Result{Err: fmt.Errorf("call %d: %w: %w", calls[i].No, errUnrecorded, err)}
			}
		}
	}
	return res
}

var errUnrecorded = errors.New("the outcome could not be recorded")

// ErrReplan is matched when Execute found calls of an interrupted run to settle that the
// plan did not know about: plan again, so the cooldown sees what they sent.
var ErrReplan = errors.New("plan again")

// stack builds the sender for a run. The order is the point: a dry run replaces the
// whole stack (nothing below it runs, nothing is written); otherwise the audit wraps
// everything that may fail, and test faults sit right above the API, where a real
// failure would happen.
func (e *Engine) stack(dryRun bool, out io.Writer, a *audit, runID int64) Sender {
	if dryRun {
		return &dryRunSender{w: out}
	}
	var s Sender = EachCall((&apiSender{c: e.Client, runID: runID}).send)
	if e.WrapSender != nil {
		s = e.WrapSender(s)
	}
	return &auditSender{next: s, audit: a, runID: runID}
}

// Report is how a run went.
type Report struct {
	RunID       int64
	Status      string // one of the Run* constants
	Sent        int    // items sent
	Failed      int
	Skipped     int
	CallsSent   int
	QuotaReset  time.Time
	Reconciled  []string // what reconciliation settled first
	Interrupted bool
	// Unstored names what took effect at Datorama but could not be written to the store
	// at once (the next crawl stores it); the run is then not sure of its data.
	Unstored []string
}

// maxFailuresInARow stops a run whose calls keep failing: something is wrong beyond
// one bad row.
const maxFailuresInARow = 5

// batchSize is how many calls that start no jobs share one audit transaction. Such
// calls are idempotent and cheap to reconcile (read the stream), so a crash leaving a
// batch 'sending' costs a few reads; calls that start jobs or create something always
// go one by one.
const batchSize = 25

// Execute carries out a plan. With dryRun it prints the calls to out and sends and
// writes nothing. Otherwise it first settles calls an earlier run left 'sending' (and
// refuses to go on if it cannot), records the run, and sends the calls, waiting while
// the workspace has too many of our jobs pending. It returns a report also when it
// stopped early (quota, interruption, repeated failures), together with the error.
func (e *Engine) Execute(ctx context.Context, p *Plan, dryRun bool, out io.Writer) (*Report, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	if dryRun {
		e.stack(true, out, nil, 0).Send(ctx, p.Calls)
		return &Report{Status: RunDryRun, Skipped: len(p.Items) - p.Planned()}, nil
	}
	if e.Client == nil {
		return nil, errors.New("no API client: cannot send")
	}
	rep := &Report{Reconciled: p.Reconciled}
	defer func() { rep.Unstored = append(rep.Unstored, e.unstored...); e.unstored = nil }()
	notes, err := e.Reconcile(ctx)
	rep.Reconciled = append(rep.Reconciled, notes...)
	if err != nil {
		return rep, fmt.Errorf("refusing to send anything: %w", err)
	}
	if len(notes) > 0 {
		// The plan was made before these were settled: it may hold what they sent.
		return rep, badInput(fmt.Errorf("%w: %d call(s) of an interrupted run were settled just now", ErrReplan, len(notes)))
	}
	a := &audit{db: e.DB, now: e.clock().Now}
	runID, err := a.startRun(ctx, p)
	if err != nil {
		return rep, err
	}
	rep.RunID = runID
	x := &execution{e: e, p: p, rep: rep, a: a, runID: runID, status: RunOK,
		log: e.log().With("run", runID, "operation", string(p.Op))}
	x.log.InfoContext(ctx, "action run started", "items", len(p.Items), "planned", p.Planned(), "calls", len(p.Calls))
	x.sendAll(ctx)
	return rep, x.finish(ctx)
}

// execution is one run of Execute: the calls still to send and how the run goes.
type execution struct {
	e      *Engine
	p      *Plan
	rep    *Report
	a      *audit
	runID  int64
	log    *slog.Logger
	sender Sender
	pend   *pendingTracker

	status   string // the run's status so far (RunOK until something stops it)
	stopErr  error  // why it stopped, once it did
	failures int    // calls that failed in a row
}

func (x *execution) stop(status string, err error) { x.status, x.stopErr = status, err }

// sendAll sends the plan's calls until they are all sent or something stops the run.
func (x *execution) sendAll(ctx context.Context) {
	x.sender = x.e.stack(false, nil, x.a, x.runID)
	x.pend = newPendingTracker(x.e, x.p.Options.QueueMax)
	if err := x.pend.load(ctx); err != nil {
		x.stop(RunFailed, err)
		return
	}
	x.pend.plan(x.p.Calls)
	queue := slices.Clone(x.p.Calls)
	for len(queue) > 0 && x.stopErr == nil {
		if err := ctx.Err(); err != nil {
			x.stop(RunInterrupted, err)
			return
		}
		var batch []*Call
		var err error
		if batch, queue, err = x.nextBatch(ctx, queue); err != nil {
			x.stop(stopStatus(err), err)
			return
		}
		for i, r := range x.sender.Send(ctx, batch) {
			x.settle(ctx, batch[i], r)
		}
	}
}

// nextBatch takes the next calls to send from queue: up to batchSize calls that change
// records, or the first job-creating call the pending cap lets through (waiting for it
// if need be), or one creation.
func (x *execution) nextBatch(ctx context.Context, queue []*Call) (batch, rest []*Call, err error) {
	switch {
	case x.p.Op.CreatesJobs():
		i, err := x.pend.next(ctx, queue)
		if err != nil {
			return nil, queue, err
		}
		c := queue[i] // before Delete, which clears the tail it leaves
		return []*Call{c}, slices.Delete(queue, i, i+1), nil
	case x.p.Op.Creates():
		return queue[:1:1], queue[1:], nil
	}
	n := min(batchSize, len(queue))
	return queue[:n:n], queue[n:], nil
}

// settle takes in what one call came to: it stores what a sent call changed, settles an
// unknown outcome at the API before going on, and stops the run on the quota, an
// interruption or too many failures in a row.
func (x *execution) settle(ctx context.Context, c *Call, r Result) {
	switch {
	case r.Err == nil:
		x.failures = 0
		x.pend.add(c, r.Answer)
		x.e.storeAfter(ctx, c.Op, c.WorkspaceID, c.StreamIDs, r.Answer)
		return
	case errors.Is(r.Err, ErrNotAttempted):
		return // an earlier call of the batch stopped it; the audit skipped this one
	case errors.Is(r.Err, datorama.ErrQuotaExhausted):
		var qe *datorama.QuotaError
		if errors.As(r.Err, &qe) {
			x.rep.QuotaReset = qe.Reset
		}
		x.stop(RunQuotaExhausted, r.Err)
		return
	case OutcomeUnknown(r.Err):
		if ctx.Err() != nil {
			x.stop(RunInterrupted, r.Err)
			return
		}
		x.log.WarnContext(ctx, "call outcome unknown; checking at the API before going on", "call", c.No, "err", r.Err)
		sent, jobIDs, rerr := x.e.reconcileOne(ctx, x.runID, c.No)
		if rerr != nil {
			x.stop(RunFailed, fmt.Errorf("call %d: %w; checking whether it took effect failed: %w", c.No, r.Err, rerr))
			return
		}
		x.e.refreshFromStore(ctx, x.runID, c)
		if sent {
			x.failures = 0
			x.pend.addIDs(c, jobIDs)
			return
		}
	default:
		x.log.WarnContext(ctx, "action call failed", "call", c.No, "err", r.Err)
	}
	x.failures++
	if x.failures >= maxFailuresInARow && x.stopErr == nil {
		x.stop(RunFailed, fmt.Errorf("stopping after %d failed calls in a row; last: %w", x.failures, r.Err))
	}
}

// finish settles the calls the run did not send, counts what it did and records its
// end. Its error is why the run stopped, joined with any failure to record that.
func (x *execution) finish(ctx context.Context) error {
	var reason string
	switch x.status {
	case RunOK:
	case RunQuotaExhausted:
		reason = "not sent: " + x.stopErr.Error()
	case RunInterrupted:
		reason = "not sent: the run was interrupted"
	default:
		reason = "not sent: the run stopped: " + x.stopErr.Error()
	}
	errs := []error{x.stopErr}
	var rest []*Call
	for _, c := range x.p.Calls {
		if c.status == StatusPlanned {
			rest = append(rest, c)
		}
	}
	if len(rest) > 0 {
		errs = append(errs, x.a.markNotSent(ctx, x.runID, rest, StatusSkipped, reason))
	}
	rep := x.rep
	for _, it := range x.p.Items {
		switch it.Status {
		case StatusSent:
			rep.Sent++
		case StatusFailed:
			rep.Failed++
		case StatusSkipped:
			rep.Skipped++
		}
	}
	for _, c := range x.p.Calls {
		if c.status == StatusSent {
			rep.CallsSent++
		}
	}
	if x.status == RunOK && rep.Failed > 0 {
		x.status = RunPartial
	}
	rep.Status, rep.Interrupted = x.status, x.status == RunInterrupted
	errText := ""
	if x.stopErr != nil {
		errText = x.stopErr.Error()
	}
	errs = append(errs, x.a.finishRun(ctx, x.runID, x.status, errText))
	x.log.InfoContext(ctx, "action run finished", "status", x.status, "sent", rep.Sent, "failed", rep.Failed, "skipped", rep.Skipped)
	return errors.Join(errs...)
}

func stopStatus(err error) string {
	switch {
	case errors.Is(err, datorama.ErrQuotaExhausted):
		return RunQuotaExhausted
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return RunInterrupted
	}
	return RunFailed
}

// refreshFromStore reloads the statuses reconciliation wrote for a call's items.
func (e *Engine) refreshFromStore(ctx context.Context, runID int64, c *Call) {
	var st string
	if err := e.DB.QueryRowContext(ctx, `SELECT status FROM action_calls WHERE action_run_id = $1 AND call_no = $2`, runID, c.No).Scan(&st); err == nil {
		c.status = st
	}
	for _, it := range c.Items {
		var s string
		var reason sql.NullString
		if err := e.DB.QueryRowContext(ctx, `SELECT status, reason FROM action_items WHERE id = $1`, it.id).Scan(&s, &reason); err == nil {
			it.Status, it.Reason = s, reason.String
		}
	}
}
