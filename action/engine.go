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
}

// maxFailuresInARow stops a run whose calls keep failing: something is wrong beyond
// one bad row.
const maxFailuresInARow = 5

// batchSize is how many calls that start no jobs share one audit transaction. Such
// calls are idempotent and cheap to reconcile (read the stream), so a crash leaving a
// batch 'sending' costs a few reads; calls that start jobs always go one by one.
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
	log := e.log().With("run", runID, "operation", string(p.Op))
	log.InfoContext(ctx, "action run started", "items", len(p.Items), "planned", p.Planned(), "calls", len(p.Calls))
	sender := e.stack(false, nil, a, runID)
	pend := newPendingTracker(e, p.Options.QueueMax)
	if err := pend.load(ctx); err != nil {
		_ = a.finishRun(ctx, runID, RunFailed, err.Error())
		return rep, err
	}
	pend.plan(p.Calls)
	size := batchSize
	if p.Op.CreatesJobs() {
		size = 1
	}
	status, stopErr := RunOK, error(nil)
	failures := 0
	stop := func(st string, err error) { status, stopErr = st, err }
	queue := slices.Clone(p.Calls)
	for len(queue) > 0 && stopErr == nil {
		if err := ctx.Err(); err != nil {
			stop(RunInterrupted, err)
			break
		}
		var batch []*Call
		if size == 1 {
			i, err := pend.next(ctx, queue)
			if err != nil {
				stop(stopStatus(err), err)
				break
			}
			batch = []*Call{queue[i]}
			queue = slices.Delete(queue, i, i+1)
		} else {
			n := min(size, len(queue))
			batch, queue = queue[:n:n], queue[n:]
		}
		for i, r := range sender.Send(ctx, batch) {
			c := batch[i]
			switch {
			case r.Err == nil:
				failures = 0
				pend.add(c, r.Answer)
			case errors.Is(r.Err, ErrNotAttempted):
				// an earlier call of the batch stopped it; the audit skipped this one
			case errors.Is(r.Err, datorama.ErrQuotaExhausted):
				var qe *datorama.QuotaError
				if errors.As(r.Err, &qe) {
					rep.QuotaReset = qe.Reset
				}
				stop(RunQuotaExhausted, r.Err)
			case OutcomeUnknown(r.Err):
				if ctx.Err() != nil {
					stop(RunInterrupted, r.Err)
					continue
				}
				log.WarnContext(ctx, "call outcome unknown; checking at the API before going on", "call", c.No, "err", r.Err)
				sent, jobIDs, rerr := e.reconcileOne(ctx, runID, c.No)
				if rerr != nil {
					stop(RunFailed, fmt.Errorf("call %d: %w; checking whether it took effect failed: %w", c.No, r.Err, rerr))
					continue
				}
				e.refreshFromStore(ctx, runID, c)
				if sent {
					failures = 0
					pend.addIDs(c, jobIDs)
					continue
				}
				failures++
			default:
				failures++
				log.WarnContext(ctx, "action call failed", "call", c.No, "err", r.Err)
			}
			if failures >= maxFailuresInARow && stopErr == nil {
				stop(RunFailed, fmt.Errorf("stopping after %d failed calls in a row; last: %w", failures, r.Err))
			}
		}
	}
	reason := ""
	switch status {
	case RunQuotaExhausted:
		reason = "not sent: " + stopErr.Error()
	case RunInterrupted:
		reason = "not sent: the run was interrupted"
	case RunOK:
	default:
		reason = "not sent: the run stopped: " + stopErr.Error()
	}
	var rest []*Call
	for _, c := range p.Calls {
		if c.status == StatusPlanned {
			rest = append(rest, c)
		}
	}
	if len(rest) > 0 {
		if err := a.markNotSent(ctx, runID, rest, StatusSkipped, reason); err != nil {
			stopErr = errors.Join(stopErr, err)
		}
	}
	for _, it := range p.Items {
		switch it.Status {
		case StatusSent:
			rep.Sent++
		case StatusFailed:
			rep.Failed++
		case StatusSkipped:
			rep.Skipped++
		}
	}
	for _, c := range p.Calls {
		if c.status == StatusSent {
			rep.CallsSent++
		}
	}
	if status == RunOK && rep.Failed > 0 {
		status = RunPartial
	}
	rep.Status = status
	rep.Interrupted = status == RunInterrupted
	errText := ""
	if stopErr != nil {
		errText = stopErr.Error()
	}
	if err := a.finishRun(ctx, runID, status, errText); err != nil {
		stopErr = errors.Join(stopErr, err)
	}
	log.InfoContext(ctx, "action run finished", "status", status, "sent", rep.Sent, "failed", rep.Failed, "skipped", rep.Skipped)
	return rep, stopErr
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
	if err := e.DB.QueryRowContext(ctx, `SELECT status FROM action_calls WHERE run_id = $1 AND call_no = $2`, runID, c.No).Scan(&st); err == nil {
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
