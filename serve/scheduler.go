package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/config"
)

// Run statuses, the same strings as the store's runs.status.
const (
	StatusOK             = "ok"
	StatusPartial        = "partial"
	StatusQuotaExhausted = "quota_exhausted"
	StatusFailed         = "failed"
	// StatusCanceled marks a run cut short by shutdown; it is not a failure.
	StatusCanceled = "canceled"
)

// Concurrency policies of a schedule that fires while another run is under way.
const (
	ConcurrencyQueue = config.ConcurrencyQueue
	ConcurrencySkip  = config.ConcurrencySkip
)

// Runner does the work of one schedule. The scheduler calls Run from one goroutine at a
// time, never concurrently, so an implementation may hold the store open for the run.
//
// Run must honour ctx: when it is cancelled, finish the page in hand, commit, and return
// promptly (an Outcome and/or ctx's error). A run that returns an error is a failure
// unless the error is the context's own cancellation or the Outcome says quota_exhausted.
// Recording the run in the store's runs table is the Runner's job; a panic escaping Run is
// recovered by the scheduler and treated as a failed run.
type Runner interface {
	Run(ctx context.Context, sched *config.Schedule) (Outcome, error)
}

// RunnerFunc adapts a function to Runner.
type RunnerFunc func(ctx context.Context, sched *config.Schedule) (Outcome, error)

// Run calls f.
func (f RunnerFunc) Run(ctx context.Context, sched *config.Schedule) (Outcome, error) {
	return f(ctx, sched)
}

// Outcome is how one run ended.
type Outcome struct {
	RunID    int64          // the runs row the Runner wrote; 0 when it wrote none
	Status   string         // ok | partial | quota_exhausted | failed; "" means ok
	Calls    int            // API calls made
	Rows     map[string]int // rows written per table
	Duration time.Duration  // filled by the scheduler from its clock when zero
	// QuotaReset is when the exhausted quota comes back; the schedule skips fire times
	// until then. Zero when unknown or not exhausted.
	QuotaReset time.Time
	// Incomplete names the parents whose listing failed (partial runs).
	Incomplete []string
}

// Options configure a Scheduler.
type Options struct {
	Schedules []*config.Schedule
	Runner    Runner
	Clock     clock.Clock  // default clock.Real{}
	Logger    *slog.Logger // default slog.Default()
	Metrics   *Metrics     // optional; receives run results and skips

	// BackoffMin and BackoffMax bound the back-off after consecutive failures: the
	// first failure holds the schedule for BackoffMin, each further one doubles it up to
	// BackoffMax. Defaults 1 min and 1 h.
	BackoffMin, BackoffMax time.Duration
	// ErrorLogEvery is how often an unchanged repeated error is logged at error level;
	// in between it is logged at debug. Default 10 min.
	ErrorLogEvery time.Duration
}

// Scheduler fires schedules and runs them one at a time. Create it with New; Run it once.
// Its Snapshot method is safe for concurrent use, also while Run is going.
type Scheduler struct {
	runner  Runner
	clock   clock.Clock
	log     *slog.Logger
	metrics *Metrics
	opts    Options

	entries []*entry

	mu      sync.Mutex
	started time.Time
	running *entry
	runFrom time.Time
	queue   []*entry
	wake    chan struct{} // buffered 1: "the queue may have work"
}

// entry is one schedule's state; its mutable fields are guarded by Scheduler.mu.
type entry struct {
	sched *config.Schedule
	kind  string

	next      time.Time
	queued    bool
	last      *RunRecord
	lastOK    time.Time
	failures  int
	holdUntil time.Time
	holdWhy   string
	skipped   int
	fired     int

	lastErr    string
	lastErrLog time.Time

	followers []*entry // the schedules that run after this one (after:), in file order
	trigger   string   // why it is queued: "cron" or "after LEADER"
}

// RunRecord is the last result of a schedule, as /status shows it.
type RunRecord struct {
	RunID      int64          `json:"run_id,omitempty"`
	Started    time.Time      `json:"started"`
	Finished   time.Time      `json:"finished"`
	Duration   float64        `json:"duration_seconds"`
	Status     string         `json:"status"`
	Calls      int            `json:"calls"`
	Rows       map[string]int `json:"rows,omitempty"`
	Incomplete []string       `json:"incomplete,omitempty"`
	Error      string         `json:"error,omitempty"`
	// Trigger says what started the run: "cron", or "after NAME" for a chained run.
	Trigger string `json:"trigger"`
}

// New checks the options and returns a Scheduler.
func New(o Options) (*Scheduler, error) {
	if o.Runner == nil {
		return nil, errors.New("serve: no Runner")
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = time.Minute
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = max(time.Hour, o.BackoffMin)
	}
	if o.ErrorLogEvery <= 0 {
		o.ErrorLogEvery = 10 * time.Minute
	}
	s := &Scheduler{
		runner:  o.Runner,
		clock:   o.Clock,
		log:     o.Logger.With("component", "serve"),
		metrics: o.Metrics,
		opts:    o,
		wake:    make(chan struct{}, 1),
	}
	seen := map[string]bool{}
	for _, sc := range o.Schedules {
		if sc == nil {
			return nil, errors.New("serve: nil schedule")
		}
		if seen[sc.Name] {
			return nil, fmt.Errorf("serve: schedule %q listed twice", sc.Name)
		}
		seen[sc.Name] = true
		switch sc.Concurrency {
		case "", ConcurrencyQueue, ConcurrencySkip:
		default:
			return nil, fmt.Errorf("serve: schedule %q: concurrency %q is neither queue nor skip", sc.Name, sc.Concurrency)
		}
		kind := sc.Kind()
		if kind == "" {
			return nil, fmt.Errorf("serve: schedule %q runs nothing", sc.Name)
		}
		s.entries = append(s.entries, &entry{sched: sc, kind: kind})
	}
	if err := s.link(); err != nil {
		return nil, err
	}
	return s, nil
}

func concurrencyOf(sc *config.Schedule) string {
	if sc.Concurrency == ConcurrencySkip {
		return ConcurrencySkip
	}
	return ConcurrencyQueue
}

// Run fires the schedules until ctx is done, then waits for the run in progress to
// return (the Runner honours ctx: it finishes its page and commits) and returns nil.
// Runs that had been queued but not started are dropped. Run is called once.
func (s *Scheduler) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	s.mu.Lock()
	if !s.started.IsZero() {
		s.mu.Unlock()
		return errors.New("serve: Scheduler.Run called twice")
	}
	s.started = s.clock.Now()
	s.mu.Unlock()
	s.log.Info("scheduler started", "schedules", len(s.entries))

	var wg sync.WaitGroup
	for _, e := range s.entries {
		if e.sched.Cron == "" {
			continue // it only runs after another (chain)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.tick(ctx, e)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.execute(ctx)
	}()
	<-ctx.Done()
	wg.Wait()
	s.log.Info("scheduler stopped")
	return nil
}

// tick waits for each fire time of one schedule and hands it to fire.
func (s *Scheduler) tick(ctx context.Context, e *entry) {
	after := s.clock.Now()
	for {
		next := e.sched.Next(after)
		if next.IsZero() {
			s.log.Warn("schedule never fires again", "schedule", e.sched.Name)
			return
		}
		s.mu.Lock()
		e.next = next
		s.mu.Unlock()
		// Waking early is harmless (we wait again); the loop guards against clocks whose
		// timers fire before the time they were set for.
		for {
			now := s.clock.Now()
			if !now.Before(next) {
				break
			}
			if clock.SleepUntil(ctx, s.clock, next) != nil {
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		s.fire(e, next)
		// A clock that jumped past several fire times fires once, like cron after a
		// suspend, instead of replaying every missed time.
		after = next
		if now := s.clock.Now(); now.After(after) {
			after = now
		}
	}
}

// fire applies the schedule's hold and concurrency policy to one fire time.
func (s *Scheduler) fire(e *entry, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := e.sched.Name
	e.fired++
	if at.Before(e.holdUntil) {
		e.skipped++
		s.metrics.skipped(name, e.holdWhy)
		s.log.Info("schedule skipped", "schedule", name, "reason", e.holdWhy, "until", e.holdUntil)
		return
	}
	if e.queued {
		e.skipped++
		s.metrics.skipped(name, "already_queued")
		s.log.Info("schedule already queued; fire coalesced", "schedule", name)
		return
	}
	busy := s.running != nil || len(s.queue) > 0
	if busy && concurrencyOf(e.sched) == ConcurrencySkip {
		e.skipped++
		s.metrics.skipped(name, "busy")
		s.log.Info("schedule skipped: another run is under way", "schedule", name, "running", s.runningName())
		return
	}
	if busy {
		s.metrics.queued(name)
		s.log.Info("schedule queued behind the run under way", "schedule", name, "running", s.runningName(), "position", len(s.queue)+1)
	}
	e.queued, e.trigger = true, "cron"
	s.queue = append(s.queue, e)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Scheduler) runningName() string {
	if s.running != nil {
		return s.running.sched.Name
	}
	if len(s.queue) > 0 {
		return s.queue[0].sched.Name
	}
	return ""
}

// execute is the single writer: it takes queued schedules one at a time.
func (s *Scheduler) execute(ctx context.Context) {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
			}
			continue
		}
		if ctx.Err() != nil {
			s.mu.Unlock()
			return
		}
		e := s.queue[0]
		s.queue = s.queue[1:]
		e.queued = false
		s.running = e
		s.runFrom = s.clock.Now()
		s.mu.Unlock()

		s.runOne(ctx, e)

		s.mu.Lock()
		s.running = nil
		s.mu.Unlock()
	}
}

// runOne runs one schedule and records its result.
func (s *Scheduler) runOne(ctx context.Context, e *entry) {
	name := e.sched.Name
	start := s.clock.Now()
	s.log.Info("run started", "schedule", name, "kind", e.kind)
	out, err := s.call(ctx, e)
	end := s.clock.Now()
	if out.Duration <= 0 {
		out.Duration = end.Sub(start)
	}
	status := out.Status
	switch {
	case err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled):
		status = StatusCanceled
	case err != nil && status != StatusQuotaExhausted:
		status = StatusFailed
	case status == "":
		status = StatusOK
	}
	s.mu.Lock()
	trigger := e.trigger
	s.mu.Unlock()
	rec := &RunRecord{
		RunID: out.RunID, Started: start, Finished: end, Duration: out.Duration.Seconds(),
		Status: status, Calls: out.Calls, Rows: out.Rows, Incomplete: out.Incomplete, Trigger: trigger,
	}
	if err != nil && status != StatusCanceled {
		rec.Error = err.Error()
	} else if status == StatusFailed {
		rec.Error = "run reported failure"
	}
	s.metrics.run(name, e.kind, status, out.Duration, out.Rows)

	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.chain(e, status)
	e.last = rec
	attrs := []any{"schedule", name, "kind", e.kind, "status", status, "calls", out.Calls,
		"rows", sumRows(out.Rows), "duration", out.Duration.Round(time.Millisecond)}
	if out.RunID != 0 {
		attrs = append(attrs, "run_id", out.RunID)
	}
	switch status {
	case StatusCanceled:
		s.log.Info("run stopped by shutdown", attrs...)
	case StatusFailed:
		s.failed(e, end, rec.Error, attrs)
	case StatusQuotaExhausted:
		s.log.Warn("run stopped: daily quota exhausted", append(attrs, "reset", out.QuotaReset)...)
		if out.QuotaReset.After(end) {
			e.holdUntil, e.holdWhy = out.QuotaReset, "quota_exhausted"
		}
	default:
		if e.failures > 0 {
			s.log.Info("recovered", "schedule", name, "after_failures", e.failures)
		}
		e.failures, e.lastErr, e.lastErrLog = 0, "", time.Time{}
		e.lastOK = end
		if !e.holdUntil.IsZero() && e.holdUntil.Before(end) {
			e.holdUntil, e.holdWhy = time.Time{}, ""
		}
		if status == StatusPartial {
			s.log.Warn("run finished partially", append(attrs, "incomplete", out.Incomplete)...)
		} else {
			s.log.Info("run finished", attrs...)
		}
	}
}

// failed counts a failure, sets the back-off and logs, throttling repeats. Called with
// s.mu held.
func (s *Scheduler) failed(e *entry, now time.Time, msg string, attrs []any) {
	e.failures++
	d := s.opts.BackoffMin
	for i := 1; i < e.failures && d < s.opts.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, s.opts.BackoffMax)
	e.holdUntil, e.holdWhy = now.Add(d), "backoff"
	attrs = append(attrs, "error", msg, "failures", e.failures, "backoff", d)
	if msg != e.lastErr || e.lastErrLog.IsZero() || now.Sub(e.lastErrLog) >= s.opts.ErrorLogEvery {
		s.log.Error("run failed", attrs...)
		e.lastErr, e.lastErrLog = msg, now
		return
	}
	s.log.Debug("run failed again (same error)", attrs...)
}

// call runs the Runner, turning a panic into an error so one bad run cannot take the
// daemon down.
func (s *Scheduler) call(ctx context.Context, e *entry) (out Outcome, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("run panicked", "schedule", e.sched.Name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			out = Outcome{Status: StatusFailed}
			err = fmt.Errorf("run of schedule %q panicked: %v", e.sched.Name, r)
		}
	}()
	return s.runner.Run(ctx, e.sched)
}

func sumRows(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// ScheduleStatus is one schedule's state as /status shows it.
type ScheduleStatus struct {
	Name                string     `json:"name"`
	Kind                string     `json:"kind"`
	Cron                string     `json:"cron"`
	After               string     `json:"after,omitempty"`     // the schedule it runs after
	When                string     `json:"when,omitempty"`      // with after: ok or always
	Followers           []string   `json:"followers,omitempty"` // the schedules that run after it
	Concurrency         string     `json:"concurrency"`
	NextRun             *time.Time `json:"next_run"`
	LastRun             *RunRecord `json:"last_run"`
	LastSuccess         *time.Time `json:"last_success"`
	Running             bool       `json:"running"`
	Queued              bool       `json:"queued"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	HoldUntil           *time.Time `json:"hold_until,omitempty"`
	HoldReason          string     `json:"hold_reason,omitempty"`
	Fired               int        `json:"fired"`
	Skipped             int        `json:"skipped"`
}

// Snapshot is the scheduler's state at one instant.
type Snapshot struct {
	Now       time.Time        `json:"now"`
	Started   time.Time        `json:"started"`
	Running   *RunningRun      `json:"running"`
	Queue     []string         `json:"queue"`
	Schedules []ScheduleStatus `json:"schedules"`
}

// RunningRun is the run under way.
type RunningRun struct {
	Schedule string    `json:"schedule"`
	Since    time.Time `json:"since"`
}

// Snapshot returns the current state, schedules in name order. Safe for concurrent use.
func (s *Scheduler) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{Now: s.clock.Now(), Started: s.started, Queue: []string{}}
	if s.running != nil {
		snap.Running = &RunningRun{Schedule: s.running.sched.Name, Since: s.runFrom}
	}
	for _, e := range s.queue {
		snap.Queue = append(snap.Queue, e.sched.Name)
	}
	for _, e := range s.entries {
		st := ScheduleStatus{
			Name:                e.sched.Name,
			Kind:                e.kind,
			Cron:                e.sched.Cron,
			After:               e.sched.After,
			When:                whenOf(e.sched),
			Followers:           names(e.followers),
			Concurrency:         concurrencyOf(e.sched),
			NextRun:             timePtr(e.next),
			LastSuccess:         timePtr(e.lastOK),
			Running:             s.running == e,
			Queued:              e.queued,
			ConsecutiveFailures: e.failures,
			Fired:               e.fired,
			Skipped:             e.skipped,
		}
		if e.last != nil {
			c := *e.last
			st.LastRun = &c
		}
		if e.holdUntil.After(snap.Now) {
			st.HoldUntil, st.HoldReason = timePtr(e.holdUntil), e.holdWhy
		}
		snap.Schedules = append(snap.Schedules, st)
	}
	sort.Slice(snap.Schedules, func(i, j int) bool { return snap.Schedules[i].Name < snap.Schedules[j].Name })
	return snap
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
