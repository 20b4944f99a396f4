package run

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/drextract/drextract/action"
	"github.com/drextract/drextract/audit"
	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/notify"
	"github.com/drextract/drextract/publish"
	"github.com/drextract/drextract/ratelimit"
)

// Kinds of run, as recorded in runs.kind.
const (
	KindExtract     = "extract"
	KindExtractFull = "extract-full"
	KindAction      = "action"
	KindExport      = "export"
	KindReport      = "report"
)

// Runner runs one thing at a time against an open store. Its fields are set once by the
// caller; a Runner is used by one goroutine at a time (the data directory has one writer).
type Runner struct {
	Config *config.Config
	// Clock is the time of runs: the observed-at of rows, $now of selections, cadences,
	// cooldowns. Give it a *clock.Remote (the API's clock, as the budget has it) and every
	// client feeds it the Date of each answer, so all of these follow the API's time
	// rather than the host's.
	Clock clock.Clock
	Log   *slog.Logger
	// Pool is the tokens' rate budget every API call passes; nil for a Runner that only
	// exports or plans dry runs.
	Pool *ratelimit.Pool
	// Observer, when set, sees every API attempt besides the run's own audit (the
	// daemon's metrics).
	Observer datorama.Observer
	// UserAgent is sent with every request.
	UserAgent string
	// Schedule names who started the runs: "cli" or the schedule's name.
	Schedule string
	// Notifier, when set, hears how every run ended (the last step of each run); nil
	// sends nothing.
	Notifier *notify.Notifier
}

// Result is how one run ended, with what each kind has to tell.
type Result struct {
	Kind  string
	RunID int64 // the runs row; 0 when the run could not even be recorded
	// Status is one of load.RunOK, RunPartial, RunQuotaExhausted, RunFailed, or
	// RunDryRun for an action that only planned.
	Status     string
	Calls      int
	Rows       map[string]int
	Incomplete []string
	QuotaReset time.Time // set with RunQuotaExhausted
	// Err is what made the run fail or stop early (nil when it ended ok or partial for a
	// reason Incomplete names).
	Err error
	// Interrupted says the caller's context ended the run.
	Interrupted bool
	// Started and Ended bound the run: from before its runs row was written to after
	// its publish was recorded.
	Started, Ended time.Time

	// Publish is how publishing after the run went (nil: not attempted).
	Publish *PublishResult

	// What each kind adds.
	Crawl    *CrawlDetails
	Action   *ActionDetails
	Export   *load.ExportStats
	Reports  []ReportDetails
	FollowUp *action.FollowUpStats
}

// RunDryRun is the status of an action run that planned and sent nothing.
const RunDryRun = "dry_run"

// PublishResult is how the store was published after a run: serving.duckdb, then
// PostgreSQL when configured (package publish).
type PublishResult struct {
	publish.Result
	// Err is what failed (a *publish.Error naming the part); nil when everything was
	// published. It never holds the DSN.
	Err error
}

func (r *Runner) log() *slog.Logger {
	l := r.Log
	if l == nil {
		l = slog.Default()
	}
	return l.With("component", "run")
}

func (r *Runner) clock() clock.Clock {
	if r.Clock == nil {
		return clock.Real{}
	}
	return r.Clock
}

// hostTime converts a time on the Runner's clock (the API's, when it is a clock.Remote)
// to the host's, for whoever waits for it on the host clock (the daemon's scheduler).
func (r *Runner) hostTime(t time.Time) time.Time {
	api, ok := r.clock().(*clock.Remote)
	if !ok || t.IsZero() {
		return t
	}
	return t.Add(api.Host().Now().Sub(api.Now()))
}

func (r *Runner) schedule() string {
	if r.Schedule == "" {
		return "cli"
	}
	return r.Schedule
}

// ErrNoTokens is returned by runs that call the API when the Runner has no rate pool.
var ErrNoTokens = errors.New("no API token configured")

// client is an API client on the Runner's pool. Every attempt is appended to the store's
// api_calls journal by rec, and reported to obs (nil: none) and to the Runner's Observer.
func (r *Runner) client(rec *audit.Recorder, obs datorama.Observer) (*datorama.Client, error) {
	if r.Pool == nil {
		return nil, ErrNoTokens
	}
	observers := multiObserver{rec}
	for _, o := range []datorama.Observer{r.Observer, obs} {
		if o != nil {
			observers = append(observers, o)
		}
	}
	opts := []datorama.Option{
		datorama.WithGate(r.Pool), datorama.WithLogger(r.Log),
		datorama.WithSandbox(r.Config.API.Sandbox), datorama.WithUserAgent(r.UserAgent),
	}
	if api, ok := r.clock().(*clock.Remote); ok {
		opts = append(opts, datorama.WithClock(api.Host()), datorama.WithAPIClock(api))
	} else {
		opts = append(opts, datorama.WithClock(r.clock()))
	}
	opts = append(opts, datorama.WithObserver(observers))
	c, err := datorama.New(r.Config.API.BaseURL, "", opts...)
	if err != nil {
		return nil, fmt.Errorf("building the API client: %w", err)
	}
	return c, nil
}

// recorder journals the API attempts of run runID (0: not known yet, or none) for the
// store's api_calls; syncEach makes each durable at once (see audit.Options).
func (r *Runner) recorder(runID int64, syncEach bool) *audit.Recorder {
	return audit.New(load.NewJournal(r.Config.Store.DuckDBPath()), audit.Options{RunID: runID, SyncEach: syncEach, Logger: r.Log})
}

// settleCalls runs once a run's calls are made: it folds the api_calls journal into the
// store, so the copies published after the run hold them (a failure leaves them for the
// next open of the store), and makes the run partial when some of its calls could not be
// journaled: its audit is incomplete. It reports whether it changed res.
func (r *Runner) settleCalls(ctx context.Context, st *load.Store, res *Result, rec *audit.Recorder) bool {
	if _, err := st.FoldJournal(context.WithoutCancel(ctx)); err != nil {
		r.log().Warn("folding the api_calls journal; the next open of the store folds it", "run_id", res.RunID, "error", err)
	}
	err := rec.Err()
	if err == nil {
		return false
	}
	res.Incomplete = append(res.Incomplete, "api_calls: "+err.Error())
	if res.Status == load.RunOK {
		res.Status = load.RunPartial
	}
	return true
}

// multiObserver hands every attempt to each observer in turn.
type multiObserver []datorama.Observer

func (m multiObserver) ObserveCall(rec datorama.CallRecord) {
	for _, o := range m {
		o.ObserveCall(rec)
	}
}

// record wraps work that does not record itself in runs (everything but a crawl): a
// runs row is started before it and finished after it, also when ctx was cancelled. The
// work's API clients journal their calls through rec, which counts them in res.Calls.
func (r *Runner) record(ctx context.Context, st *load.Store, kind string, work func(ctx context.Context, res *Result, rec *audit.Recorder) error) *Result {
	res := &Result{Kind: kind, Status: load.RunOK, Rows: map[string]int{}, Started: r.clock().Now()}
	id, err := st.StartRun(ctx, load.RunStart{Schedule: r.schedule(), Kind: kind, Started: res.Started})
	if err != nil {
		res.Status, res.Err = load.RunFailed, fmt.Errorf("recording the start of the %s run: %w", kind, err)
		return res
	}
	res.RunID = id
	rec := r.recorder(id, true)
	if err := work(ctx, res, rec); err != nil && res.Err == nil {
		res.Err = err
	}
	res.Calls = rec.Calls()
	r.settleCalls(ctx, st, res, rec)
	if res.Err != nil && res.Status == load.RunOK {
		res.Status = load.RunFailed
	}
	if ctx.Err() != nil {
		res.Interrupted = true
	}
	r.finishRun(ctx, st, res)
	return res
}

// finishRun records res's end on its runs row.
func (r *Runner) finishRun(ctx context.Context, st *load.Store, res *Result) {
	end := load.RunEnd{Finished: r.clock().Now(), Status: res.Status, Calls: res.Calls, Rows: res.Rows,
		Incomplete: res.Incomplete}
	if res.Err != nil {
		end.Error = res.Err.Error()
	}
	if err := st.FinishRun(context.WithoutCancel(ctx), res.RunID, end); err != nil {
		r.log().Error("recording the end of a run", "run_id", res.RunID, "error", err)
		if res.Err == nil {
			res.Status, res.Err = load.RunFailed, fmt.Errorf("recording the end of run %d: %w", res.RunID, err)
		}
	}
}

// after is what every run does once its work is recorded: publish (when it wrote the
// store), then notify.
func (r *Runner) after(ctx context.Context, st *load.Store, res *Result) {
	if ctx.Err() == nil && res.RunID != 0 {
		r.publishRun(ctx, st, res)
	}
	r.notify(ctx, st, res)
}

// publishRun publishes the copies readers use (serving.duckdb, PostgreSQL when
// configured), which records how that went on the runs row. A failed publish never undoes
// the run; it makes an ok run partial, since readers do not see it yet, and the next
// publish catches up. Nothing is published once the caller cancelled: the copies stay
// whole and the next run publishes.
func (r *Runner) publishRun(ctx context.Context, st *load.Store, res *Result) {
	pr, err := publish.Run(ctx, st, r.Config, publish.Options{Run: res.RunID, Logger: r.Log})
	res.Publish = &PublishResult{Result: pr, Err: err}
	if err != nil && res.Status == load.RunOK {
		res.Status = load.RunPartial
		res.Incomplete = append(res.Incomplete, "publish: "+err.Error())
		r.finishRun(ctx, st, res)
	}
}

// StoreOptions are the options every command and the daemon open the live store with:
// where its copies for readers live and who may read them, so that Open cleans up after
// an interrupted publish or export and names them as the last good state.
func StoreOptions(cfg *config.Config, clk clock.Clock, log *slog.Logger) load.Options {
	return load.Options{Clock: clk, Logger: log, Serving: cfg.Store.ServingPath(), Parquet: cfg.Store.ParquetDir(),
		Share: load.Share(cfg.Store.Share)}
}
