package action

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
)

// Defaults of the guard rails.
const (
	DefaultChunkDays = 10
	DefaultCooldown  = 6 * time.Hour
	// DefaultQueueMax is the per-workspace cap on our jobs pending at once. It is high
	// enough for a month of 10-day chunks on 300 streams (1,200 jobs), low enough to stop
	// a selection gone wrong from queueing tens of thousands.
	DefaultQueueMax = 2000
	// apiChunkDays is how Datorama itself splits a processed range into jobs (facts §7).
	apiChunkDays = 10
	// maxBatchStreams bounds the stream ids of one batch process call; the API's own
	// limit is unknown.
	maxBatchStreams = 1000
	// DefaultMaxDelete is how many streams one run may delete unless told otherwise.
	DefaultMaxDelete = 10
	// RecentRun is how recently a stream must have run for its deletion to need Force.
	RecentRun = 24 * time.Hour
)

// Item statuses (action_items.status, action_calls.status).
const (
	StatusPlanned = "planned"
	StatusSending = "sending"
	StatusSent    = "sent"
	StatusFailed  = "failed"
	StatusSkipped = "skipped"
)

// Source says where a run's rows came from.
type Source struct {
	Kind string // "selection", "csv" or "command"
	Name string // the selection's name, the CSV file, or the command
}

func (s Source) label() string {
	switch s.Kind {
	case "selection":
		return s.Name
	default:
		return s.Kind + ":" + s.Name
	}
}

// Options are the guard-rail settings of one run. Zero values mean the defaults.
type Options struct {
	MaxCalls  int           // refuse a plan needing more API calls; 0: no limit
	MaxRows   int           // refuse more input rows; 0: the selection's max_rows (or DefaultMaxRows)
	ChunkDays int           // process chunk length; 0: DefaultChunkDays
	QueueMax  int           // cap on our pending jobs per workspace; 0: DefaultQueueMax, <0: none
	Cooldown  time.Duration // the same job/stream/range is not acted on twice within it; 0: DefaultCooldown, <0: none
	ForcePut  bool          // allow OpPut
	MaxDelete int           // delete: refuse a plan deleting more streams; 0: DefaultMaxDelete, <0: no limit
	Force     bool          // delete: also streams that ran within RecentRun
	OutDir    string        // downloads: folder for the files (default "downloads")
	OutFile   string        // downloads: the file, when exactly one job is downloaded
}

func (o Options) withDefaults() Options {
	if o.ChunkDays <= 0 {
		o.ChunkDays = DefaultChunkDays
	}
	if o.QueueMax == 0 {
		o.QueueMax = DefaultQueueMax
	}
	if o.Cooldown == 0 {
		o.Cooldown = DefaultCooldown
	}
	if o.OutDir == "" {
		o.OutDir = "downloads"
	}
	if o.MaxDelete == 0 {
		o.MaxDelete = DefaultMaxDelete
	}
	return o
}

// Request is one bulk action to plan: rows from a selection, or given rows (CSV or
// command flags), and the operation.
type Request struct {
	// Op is the operation. For a selection it defaults to the selection's declared
	// action and may not contradict it.
	Op        Op
	Selection *Selection
	Params    map[string]string
	Rows      []Row
	Source    Source
	Options   Options
	StartedBy string // "cli:USER", "schedule:NAME"
}

// Item is one input row in a plan.
type Item struct {
	Row         Row
	Op          Op
	WorkspaceID int64
	StreamName  string
	// JobStart/JobEnd are the days of the job a rerun item reruns (from the store).
	JobStart, JobEnd datorama.Date
	// KnownMaxJobID is the newest job of the stream in the store when planned: a job
	// with a larger id appeared later, which reconciliation and follow-up rely on.
	KnownMaxJobID int64
	ExpectedJobs  int // jobs the item should create; 0 unknown or none
	// LastRun is, for a delete, when the store last saw the stream run (its newest job's
	// execution times, its lastUpdate); Running says a job of it is not final.
	LastRun time.Time
	Running bool
	Status  string
	Reason  string

	calls []*Call
	// Set while executing.
	id int64
}

// Call is one API call of a plan (two for read-merge-write operations).
type Call struct {
	No          int
	Op          Op
	WorkspaceID int64
	StreamIDs   []int64
	JobIDs      []int64 // rerun, download
	Start, End  datorama.Date
	Body        json.RawMessage // PATCH fields, or the changes merged into PUT/mapping
	OutPath     string          // download target
	// TotalConnect says a download uses the TotalConnect (dynamic) form.
	TotalConnect bool
	// ExpectedJobs is how many jobs the call should create (for the pending cap).
	ExpectedJobs int
	Items        []*Item
	// KnownMaxJobIDs is, per stream, the newest job id the store knew when planning.
	KnownMaxJobIDs map[int64]int64

	status string
}

// Endpoint returns the method and path the call uses (the path with ids filled in).
func (c *Call) Endpoint() (method, path string) {
	s := int64(0)
	if len(c.StreamIDs) > 0 {
		s = c.StreamIDs[0]
	}
	id := strconv.FormatInt(s, 10)
	switch c.Op {
	case OpRerun:
		return "POST", "/v1/data-streams/api/" + id + "/rerun"
	case OpRerunAll:
		return "POST", "/v1/data-streams/api/" + id + "/rerun-all"
	case OpProcess:
		if len(c.StreamIDs) == 1 {
			return "POST", "/v1/data-streams/" + id + "/process"
		}
		return "POST", "/v1/data-streams/process"
	case OpRename, OpPatch, OpEnable, OpDisable:
		return "PATCH", "/v1/data-streams/" + id
	case OpPut:
		return "PUT", "/v1/data-streams/" + id
	case OpMapping:
		return "PUT", "/v1/data-streams/api/" + id + "/mapping"
	case OpDelete:
		return "DELETE", "/v1/data-streams/" + id
	case OpCreateStream:
		return "POST", "/v1/data-streams"
	case OpCreatePattern:
		return "POST", "/v1/harmonization/patterns"
	case OpCreateCalc:
		return "POST", fmt.Sprintf("/v1/workspaces/%d/calculated-measurements", c.WorkspaceID)
	case OpDownload:
		j := int64(0)
		if len(c.JobIDs) > 0 {
			j = c.JobIDs[0]
		}
		if c.TotalConnect {
			return "GET", fmt.Sprintf("/v1/data-stream-stats/dynamic/%d/download", j)
		}
		return "GET", fmt.Sprintf("/v1/data-stream-stats/api/%d/download", j)
	}
	return "", ""
}

// RequestBody is the JSON body the call sends (nil for none); for put and mapping, the
// changes that will be merged into the current record.
func (c *Call) RequestBody() json.RawMessage {
	switch c.Op {
	case OpRerun:
		b, _ := json.Marshal(c.JobIDs)
		return b
	case OpProcess:
		if len(c.StreamIDs) == 1 {
			b, _ := json.Marshal(map[string]string{"startDate": c.Start.String(), "endDate": c.End.String()})
			return b
		}
		b, _ := json.Marshal(map[string]any{"dataStreamIds": c.StreamIDs, "startDate": c.Start.String(), "endDate": c.End.String(), "create": false})
		return b
	case OpRename, OpPatch, OpEnable, OpDisable, OpPut, OpMapping, OpCreateStream, OpCreatePattern, OpCreateCalc:
		return c.Body
	}
	return nil
}

// Plan is what Execute will do: the items (planned or skipped, with the reason) and the
// grouped calls. It is made without any API call.
type Plan struct {
	Op        Op
	Source    Source
	Params    map[string]string
	Options   Options
	StartedBy string
	Created   time.Time

	Items    []*Item
	Calls    []*Call
	APICalls int            // what the calls cost (read-merge-write counts two)
	Skipped  map[string]int // reason kind → count
	Estimate Estimate
	Warnings []string
	// Unreconciled is how many calls of earlier runs are still 'sending' (Prepare
	// without a client cannot check them; Execute settles them before sending).
	Unreconciled int
	// Reconciled is what Prepare settled before planning, when it had a client.
	Reconciled []string

	streams map[int64]*streamInfo
}

// Planned counts the items that will be sent.
func (p *Plan) Planned() int {
	n := 0
	for _, it := range p.Items {
		if it.Status == StatusPlanned {
			n++
		}
	}
	return n
}

// ErrBadInput is matched by every planning error that the input is at fault for: a
// selection that is refused or lacks a column, a bad parameter, an unknown stream in a
// CSV file, too many rows. Nothing was sent, and retrying the same input cannot help.
var ErrBadInput = errors.New("bad input")

type inputError struct{ err error }

func (e *inputError) Error() string        { return e.err.Error() }
func (e *inputError) Unwrap() error        { return e.err }
func (e *inputError) Is(target error) bool { return target == ErrBadInput }

func badInput(err error) error {
	if err == nil {
		return nil
	}
	return &inputError{err}
}

// ErrTooManyCalls is matched when a plan needs more API calls than --max-calls allows.
var ErrTooManyCalls = errors.New("plan exceeds the call limit")

// ErrTooManyDeletes is matched when a plan deletes more streams than --max-delete allows.
var ErrTooManyDeletes = errors.New("plan exceeds the delete limit")

// ErrNeedsForce is matched when a plan deletes a stream that ran within RecentRun
// without Options.Force.
var ErrNeedsForce = errors.New("deleting a stream that ran recently needs --force")

// Check reports whether the plan may be executed under its guard rails.
func (p *Plan) Check() error {
	if p.Options.MaxCalls > 0 && p.APICalls > p.Options.MaxCalls {
		return badInput(fmt.Errorf("%w: %d API calls planned, --max-calls is %d", ErrTooManyCalls, p.APICalls, p.Options.MaxCalls))
	}
	if p.Op != OpDelete {
		return nil
	}
	if n, most := p.Planned(), p.Options.withDefaults().MaxDelete; most > 0 && n > most {
		return badInput(fmt.Errorf("%w: %d streams to delete, --max-delete is %d", ErrTooManyDeletes, n, most))
	}
	if p.Options.Force {
		return nil
	}
	var recent []string
	for _, it := range p.Items {
		switch {
		case it.Status != StatusPlanned:
		case it.Running:
			recent = append(recent, fmt.Sprintf("stream %d has a job running or pending", it.Row.StreamID))
		case !it.LastRun.IsZero() && !it.LastRun.Before(p.Created.Add(-RecentRun)):
			recent = append(recent, fmt.Sprintf("stream %d ran at %s", it.Row.StreamID, it.LastRun.UTC().Format(time.RFC3339)))
		}
	}
	if len(recent) > 0 {
		if len(recent) > 5 {
			recent = append(recent[:5], fmt.Sprintf("and %d more", len(recent)-5))
		}
		return badInput(fmt.Errorf("%w (within %s): %s", ErrNeedsForce, RecentRun, strings.Join(recent, "; ")))
	}
	return nil
}

// Prepare turns a request into a plan: it reads the selection (read-only) or takes the
// given rows, looks every stream (and job) up in the store, marks what must be skipped
// and groups the rest into calls. Without a client (a dry run) it makes no API call and
// writes nothing. With one, it first settles calls an interrupted run left in doubt
// (Reconcile), so that the plan knows what they sent.
func (e *Engine) Prepare(ctx context.Context, req Request) (*Plan, error) {
	now := e.clock().Now()
	opts := req.Options.withDefaults()
	op := req.Op
	var reconciled []string
	if e.Client != nil {
		// Settle what an interrupted run left open first, so that the selection and the
		// cooldown see what it really sent.
		notes, err := e.Reconcile(ctx)
		if err != nil {
			return nil, fmt.Errorf("refusing to plan: %w", err)
		}
		reconciled = notes
	}
	var rows []Row
	switch {
	case req.Selection != nil:
		sel := req.Selection
		if op == "" {
			op = sel.Action
		}
		if op == "" {
			return nil, badInput(fmt.Errorf("selection %s declares no action: pass --action (one of the operations)", sel.Name))
		}
		if sel.Action != "" && op != sel.Action {
			return nil, badInput(fmt.Errorf("selection %s is for action %s, not %s", sel.Name, sel.Action, op))
		}
		maxRows := opts.MaxRows
		if maxRows <= 0 {
			maxRows = sel.MaxRows
		}
		if maxRows <= 0 {
			maxRows = DefaultMaxRows
		}
		opts.MaxRows = maxRows
		res, err := e.runSelection(ctx, sel, req.Params, now, maxRows)
		if err != nil {
			return nil, err
		}
		if res.More {
			return nil, badInput(fmt.Errorf("selection %s returned more than %d rows (its max_rows): nothing planned; narrow it or raise the limit with --max-rows", sel.Name, maxRows))
		}
		rows, err = RowsFor(op, sel.Name, res)
		if err != nil {
			return nil, badInput(err)
		}
		if req.Source.Kind == "" {
			req.Source = Source{Kind: "selection", Name: sel.Name}
		}
	default:
		if op == "" {
			return nil, badInput(errors.New("no action given"))
		}
		if _, err := ParseOp(string(op)); err != nil {
			return nil, badInput(err)
		}
		rows = slices.Clone(req.Rows)
		if opts.MaxRows > 0 && len(rows) > opts.MaxRows {
			return nil, badInput(fmt.Errorf("%d rows, more than --max-rows %d: nothing planned", len(rows), opts.MaxRows))
		}
		for _, r := range rows {
			if err := r.check(op); err != nil {
				return nil, badInput(fmt.Errorf("row %d: %w", r.Line, err))
			}
		}
		if err := e.resolveJobStreams(ctx, rows); err != nil {
			return nil, err
		}
		if req.Source.Kind == "" {
			req.Source = Source{Kind: "command", Name: string(op)}
		}
	}
	if op == OpPut && !opts.ForcePut {
		return nil, badInput(errors.New("action put replaces the whole stream configuration and clears every field the merged record lacks: pass --force-put to allow it (prefer patch)"))
	}
	p := &Plan{Op: op, Source: req.Source, Params: req.Params, Options: opts, StartedBy: req.StartedBy, Created: now,
		Skipped: map[string]int{}, Reconciled: reconciled}
	if op == OpPut {
		p.Warnings = append(p.Warnings, "put sends the whole stream record (GET, merge, PUT): any field the API did not return is cleared")
	}
	if err := e.buildItems(ctx, p, rows, now); err != nil {
		return nil, err
	}
	e.group(p)
	n, err := unreconciledCalls(ctx, e.DB)
	if err != nil {
		return nil, err
	}
	p.Unreconciled = n
	p.Estimate = estimate(p.APICalls, e.budget(), now)
	return p, nil
}

// runSelection runs a selection's SQL where OpenUserSQL says, and closes that again.
func (e *Engine) runSelection(ctx context.Context, sel *Selection, params map[string]string, now time.Time, limit int) (*load.Result, error) {
	if e.OpenUserSQL == nil {
		return nil, fmt.Errorf("selection %s: no sandbox to run selections in (Engine.OpenUserSQL is not set)", sel.Name)
	}
	u, err := e.OpenUserSQL(ctx)
	if err != nil {
		return nil, fmt.Errorf("selection %s: %w", sel.Name, err)
	}
	res, err := sel.Run(ctx, u, params, now, limit)
	if cerr := u.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("selection %s: %w", sel.Name, cerr)
	}
	return res, err
}

// buildItems looks the rows up in the store and decides, row by row, whether to act.
func (e *Engine) buildItems(ctx context.Context, p *Plan, rows []Row, now time.Time) error {
	if p.Op.Creates() {
		return e.buildCreations(ctx, p, rows)
	}
	strict := p.Source.Kind != "selection" // CSV and command input: any unknown id refuses all
	ids := make([]int64, 0, len(rows))
	var jobIDs []int64
	for _, r := range rows {
		ids = append(ids, r.StreamID)
		if r.JobID != 0 {
			jobIDs = append(jobIDs, r.JobID)
		}
	}
	streams, err := lookupStreams(ctx, e.DB, ids)
	if err != nil {
		return err
	}
	jobs, err := lookupJobs(ctx, e.DB, jobIDs)
	if err != nil {
		return err
	}
	cool, err := e.cooldownIndex(ctx, p.Op, p.Options.Cooldown, now)
	if err != nil {
		return err
	}
	var runs map[int64]lastRun
	if p.Op == OpDelete {
		if runs, err = lastRuns(ctx, e.DB, ids); err != nil {
			return err
		}
	}
	where := func(r Row) string { return p.where(r) }
	for _, r := range rows {
		it := &Item{Row: r, Op: p.Op, Status: StatusPlanned}
		p.Items = append(p.Items, it)
		s, ok := streams[r.StreamID]
		if !ok {
			if strict {
				return badInput(fmt.Errorf("%sstream %d is not in the store (run drextract extract first, or check the id)", where(r), r.StreamID))
			}
			it.skip("unknown stream", "stream %d is not in the store", r.StreamID)
			continue
		}
		it.WorkspaceID, it.StreamName, it.KnownMaxJobID = s.WorkspaceID, s.Name, s.MaxJobID
		it.LastRun, it.Running = runs[r.StreamID].At, runs[r.StreamID].Running
		if p.Op == OpRerun || p.Op == OpDownload {
			j, ok := jobs[r.JobID]
			if !ok || j.StreamID != r.StreamID {
				msg := fmt.Sprintf("job %d of stream %d is not in the store", r.JobID, r.StreamID)
				if ok {
					msg = fmt.Sprintf("job %d belongs to stream %d, not %d", r.JobID, j.StreamID, r.StreamID)
				}
				if strict {
					return badInput(fmt.Errorf("%s%s", where(r), msg))
				}
				it.skip("unknown job", "%s", msg)
				continue
			}
			it.JobStart, it.JobEnd = j.Start, j.End
			if p.Op == OpRerun && !datorama.IsFinal(j.Status) && !j.Deleted {
				it.skip("job not finished", "job %d is %s; rerunning a job that has not finished is refused", r.JobID, j.Status)
				continue
			}
		}
		switch {
		case s.Deleted:
			it.skip("stream deleted", "stream %d is deleted", r.StreamID)
			continue
		case !s.Enabled && p.Op.CreatesJobs():
			it.skip("stream disabled", "stream %d is disabled; enable it first", r.StreamID)
			continue
		case p.Op == OpEnable && s.Enabled:
			it.skip("unchanged", "stream %d is already enabled", r.StreamID)
			continue
		case p.Op == OpDisable && !s.Enabled:
			it.skip("unchanged", "stream %d is already disabled", r.StreamID)
			continue
		case p.Op == OpRename && s.Name == r.Name:
			it.skip("unchanged", "stream %d is already named %q", r.StreamID, r.Name)
			continue
		}
		if why := cool.hit(p.Op, r); why != "" {
			it.skip("cooldown", "%s", why)
			continue
		}
		switch p.Op {
		case OpRerun:
			it.ExpectedJobs = 1
		case OpRerunAll:
			it.ExpectedJobs = s.Ranges // Datorama reruns the latest job of each range [I]
		case OpProcess:
			it.ExpectedJobs = jobsForRange(r.StartDate, r.EndDate, p.Options.ChunkDays)
		}
	}
	for _, it := range p.Items {
		if it.Status == StatusSkipped {
			p.Skipped[it.reasonKind()]++
		}
	}
	p.streams = streams
	return nil
}

// where names a row's place in its CSV file ("FILE:LINE: "), for errors; "" otherwise.
func (p *Plan) where(r Row) string {
	if p.Source.Kind == "csv" {
		return fmt.Sprintf("%s:%d: ", p.Source.Name, r.Line)
	}
	return ""
}

// buildCreations checks a creation's workspace in the store and skips an entity whose
// name its workspace already has, in the store or by an earlier creation of ours: a lost
// answer is settled by finding the entity by name, which a namesake would make
// ambiguous, and a second one is rarely meant.
func (e *Engine) buildCreations(ctx context.Context, p *Plan, rows []Row) error {
	strict := p.Source.Kind != "selection"
	var wss []int64
	for _, r := range rows {
		wss = append(wss, r.WorkspaceID)
	}
	known, err := lookupWorkspaces(ctx, e.DB, wss)
	if err != nil {
		return err
	}
	names, err := lookupNames(ctx, e.DB, p.Op, wss)
	if err != nil {
		return err
	}
	ours, err := createdBefore(ctx, e.DB, p.Op, wss)
	if err != nil {
		return err
	}
	for _, r := range rows {
		it := &Item{Row: r, Op: p.Op, Status: StatusPlanned, WorkspaceID: r.WorkspaceID}
		p.Items = append(p.Items, it)
		name := bodyName(r.Body)
		switch {
		case !known[r.WorkspaceID] && strict:
			return badInput(fmt.Errorf("%sworkspace %d is not in the store (run drextract extract first, or check the id)", p.where(r), r.WorkspaceID))
		case !known[r.WorkspaceID]:
			it.skip("unknown workspace", "workspace %d is not in the store", r.WorkspaceID)
		case names[nameKey{r.WorkspaceID, name}] != 0:
			it.skip("exists", "workspace %d already has a %s named %q (id %d)", r.WorkspaceID, p.Op.entity(), name, names[nameKey{r.WorkspaceID, name}])
		case ours[nameKey{r.WorkspaceID, name}] != 0:
			it.skip("exists", "action run %d already created a %s named %q in workspace %d", ours[nameKey{r.WorkspaceID, name}], p.Op.entity(), name, r.WorkspaceID)
		}
		if it.Status == StatusSkipped {
			p.Skipped[it.reasonKind()]++
		}
	}
	return nil
}

func (it *Item) skip(kind, format string, a ...any) {
	it.Status = StatusSkipped
	it.Reason = kind + ": " + fmt.Sprintf(format, a...)
}

func (it *Item) reasonKind() string {
	k, _, _ := strings.Cut(it.Reason, ":")
	return k
}

// cooldownIndex holds what was sent within the cooldown, by what the operation targets.
type cooldownIndex struct {
	byJob    map[int64]recentSend
	byStream map[int64][]recentSend
	until    time.Duration
}

func (e *Engine) cooldownIndex(ctx context.Context, op Op, cooldown time.Duration, now time.Time) (*cooldownIndex, error) {
	c := &cooldownIndex{byJob: map[int64]recentSend{}, byStream: map[int64][]recentSend{}, until: cooldown}
	if cooldown < 0 || !op.CreatesJobs() {
		return c, nil
	}
	sends, err := recentSends(ctx, e.DB, op, now.Add(-cooldown))
	if err != nil {
		return nil, err
	}
	for _, s := range sends {
		if s.JobID != 0 {
			c.byJob[s.JobID] = s
		}
		c.byStream[s.StreamID] = append(c.byStream[s.StreamID], s)
	}
	return c, nil
}

// hit returns why r is in its cooldown, or "".
func (c *cooldownIndex) hit(op Op, r Row) string {
	when := func(s recentSend) string {
		return fmt.Sprintf("by action run %d at %s (cooldown until %s)", s.RunID,
			s.At.UTC().Format(time.RFC3339), s.At.Add(c.until).UTC().Format(time.RFC3339))
	}
	switch op {
	case OpRerun:
		if s, ok := c.byJob[r.JobID]; ok {
			return fmt.Sprintf("job %d was rerun %s", r.JobID, when(s))
		}
	case OpRerunAll:
		if ss := c.byStream[r.StreamID]; len(ss) > 0 {
			return fmt.Sprintf("stream %d was rerun %s", r.StreamID, when(ss[0]))
		}
	case OpProcess:
		for _, s := range c.byStream[r.StreamID] {
			if !r.StartDate.After(s.End.Time) && !s.Start.After(r.EndDate.Time) {
				return fmt.Sprintf("stream %d was processed for %s..%s %s", r.StreamID, s.Start, s.End, when(s))
			}
		}
	}
	return ""
}

// callNos lists the numbers of the item's calls.
func (it *Item) callNos() []int64 {
	out := make([]int64, 0, len(it.calls))
	for _, c := range it.calls {
		out = append(out, int64(c.No))
	}
	slices.Sort(out)
	return out
}

func sortedKeys[K ~int64 | ~string, V any](m map[K]V) []K {
	out := make([]K, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
