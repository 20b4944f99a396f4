package run

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/drextract/drextract/action"
	"github.com/drextract/drextract/audit"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
)

// ActionOptions are what an action run is asked to do.
type ActionOptions struct {
	Request action.Request
	// DryRun plans and prints the calls to Out without sending or writing anything; the
	// store may then be open read-only, and no runs row is written.
	DryRun bool
	// OnPlan, when set, sees the plan before its guard rails are checked and anything is
	// sent: the caller prints it. An error stops the run.
	OnPlan func(*action.Plan) error
	// Out receives what Execute reports while it runs (the requests of a dry run).
	Out io.Writer
	// Priority of its API calls: ratelimit.Interactive when a person waits (it may spend
	// the daily reserve: reruns must work after a heavy crawl), Scheduled for a schedule.
	Priority ratelimit.Priority
}

// ActionDetails is what an action run adds to its Result.
type ActionDetails struct {
	Plan   *action.Plan
	Report *action.Report // nil when nothing was executed
}

// Action plans a bulk action and, unless it is a dry run, sends it under its guard
// rails, then follows up earlier actions and publishes. A plan that breaks a guard rail
// is refused before anything is sent (the error matches action.ErrBadInput).
func (r *Runner) Action(ctx context.Context, st *load.Store, o ActionOptions) *Result {
	if o.Out == nil {
		o.Out = io.Discard
	}
	eng := &action.Engine{DB: st.DB(), Clock: r.clock(), Logger: r.Log,
		OpenUserSQL: action.StoreSandbox(st, r.Config.Store.ServingPath(), load.SandboxOptions{Timeout: r.Config.SQLTimeoutDuration()})}
	if r.Pool != nil {
		eng.Budget = func() action.BudgetView { return PoolBudgetView(r.Pool) }
	}
	if o.DryRun {
		res := &Result{Kind: KindAction, Status: RunDryRun, Action: &ActionDetails{}, Started: r.clock().Now()}
		res.Err = r.plan(ctx, eng, o, res.Action)
		if res.Err == nil {
			res.Action.Report, res.Err = eng.Execute(ctx, res.Action.Plan, true, o.Out)
		}
		if res.Err != nil {
			res.Status = load.RunFailed
		}
		r.notify(ctx, st, res)
		return res
	}
	res := r.record(ctx, st, KindAction, func(ctx context.Context, res *Result, rec *audit.Recorder) error {
		ctx = ratelimit.WithPriority(ctx, o.Priority) // reconciliation reads included
		res.Action = &ActionDetails{}
		client, err := r.client(rec, nil)
		if err != nil {
			return err
		}
		eng.Client = client
		// What the run changes at Datorama is written to the store at once, stamped with
		// this runs row, so the publish after it shows it.
		eng.Sink, eng.RunID = st, res.RunID
		if err := r.plan(ctx, eng, o, res.Action); err != nil {
			return err
		}
		rep, err := eng.Execute(ctx, res.Action.Plan, false, o.Out)
		res.Action.Report = rep
		if rep != nil {
			res.Rows["action_items"] = rep.Sent + rep.Failed + rep.Skipped
			res.QuotaReset = rep.QuotaReset
			res.Status = actionStatus(rep.Status)
			if len(rep.Unstored) > 0 {
				// It took effect, but the store does not show it yet: not sure of its data.
				for _, u := range rep.Unstored {
					res.Incomplete = append(res.Incomplete, "store: "+u)
				}
				if res.Status == load.RunOK {
					res.Status = load.RunPartial
				}
			}
		}
		return err
	})
	if res.RunID != 0 && !res.Interrupted {
		r.followUp(ctx, st, res)
	}
	r.after(ctx, st, res)
	return res
}

// plan prepares the request, shows the plan to OnPlan and checks its guard rails.
func (r *Runner) plan(ctx context.Context, eng *action.Engine, o ActionOptions, d *ActionDetails) error {
	p, err := eng.Prepare(ctx, o.Request)
	if err != nil {
		return fmt.Errorf("planning %s: %w", o.Request.Source.Name, err)
	}
	d.Plan = p
	if o.OnPlan != nil {
		if err := o.OnPlan(p); err != nil {
			return err
		}
	}
	return p.Check()
}

// actionStatus maps an action run's status to the runs table's.
func actionStatus(s string) string {
	switch s {
	case action.RunOK:
		return load.RunOK
	case action.RunPartial, action.RunInterrupted:
		return load.RunPartial
	case action.RunQuotaExhausted:
		return load.RunQuotaExhausted
	}
	return load.RunFailed
}

// PoolBudgetView sums what the pool's tokens have left: an action's calls to a workspace
// can go through any token that sees it.
func PoolBudgetView(pool *ratelimit.Pool) action.BudgetView {
	var v action.BudgetView
	for _, st := range pool.Status() {
		b := action.BudgetViewOf(st)
		if !b.Known {
			continue
		}
		v.Known = true
		v.PerMinute += b.PerMinute
		v.MinuteRemaining += b.MinuteRemaining
		v.DailyRemaining += b.DailyRemaining
		if v.MinuteReset.IsZero() || b.MinuteReset.Before(v.MinuteReset) {
			v.MinuteReset = b.MinuteReset
		}
		if v.DailyReset.IsZero() || b.DailyReset.Before(v.DailyReset) {
			v.DailyReset = b.DailyReset
		}
	}
	return v
}

// Reconcile settles the calls an interrupted action run left "sending", from the API's
// job lists, and returns what it settled. Its API calls belong to no run.
func (r *Runner) Reconcile(ctx context.Context, st *load.Store) ([]string, error) {
	rec := r.recorder(0, true)
	client, err := r.client(rec, nil)
	if err != nil {
		return nil, err
	}
	eng := &action.Engine{DB: st.DB(), Client: client, Clock: r.clock(), Logger: r.Log}
	notes, err := eng.Reconcile(ratelimit.WithPriority(ctx, ratelimit.Interactive))
	r.settleCalls(ctx, st, &Result{}, rec)
	return notes, errors.Join(err, rec.Err())
}
