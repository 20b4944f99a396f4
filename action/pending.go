package action

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/ratelimit"
)

// ErrPendingWait is matched when a run gave up waiting for the pending cap.
var ErrPendingWait = errors.New("waited too long for pending jobs")

// pendingTracker keeps, per workspace, the jobs our actions created that have not
// finished, and holds a call back while sending it would put more than the cap of them
// in flight (the old client's queue_max). Before waiting it re-checks the jobs' status
// at the API, through the budget like every call. It is used by one goroutine.
type pendingTracker struct {
	e    *Engine
	cap  int
	jobs map[int64][]pendingJob // workspace → our unfinished jobs, oldest first
	// blind counts jobs of calls whose answer listed no jobs, per workspace, until
	// found by reading their streams' jobs.
	blind map[int64][]blindCall
	// binding marks the workspaces where the run's jobs do not all fit under the cap.
	binding map[int64]bool
}

type pendingJob struct{ id, stream int64 }

type blindCall struct {
	streams  []int64
	start    datorama.Date
	end      datorama.Date
	op       Op
	knownMax map[int64]int64
	expected int
	at       time.Time
}

func newPendingTracker(e *Engine, cap int) *pendingTracker {
	return &pendingTracker{e: e, cap: cap, jobs: map[int64][]pendingJob{}, blind: map[int64][]blindCall{}, binding: map[int64]bool{}}
}

// plan notes, per workspace, whether the calls' jobs and those already pending exceed
// the cap: only then does the cap hold calls back, and only then are busy streams
// avoided (see busy).
func (t *pendingTracker) plan(calls []*Call) {
	if t.cap <= 0 {
		return
	}
	total := map[int64]int{}
	for _, c := range calls {
		total[c.WorkspaceID] += c.ExpectedJobs
	}
	for ws, n := range total {
		t.binding[ws] = n+t.count(ws) > t.cap
	}
}

// load starts from the jobs earlier runs created in the last day that the store does
// not show finished since they were sent.
func (t *pendingTracker) load(ctx context.Context) error {
	if t.cap <= 0 {
		return nil
	}
	since := t.e.clock().Now().Add(-24 * time.Hour)
	rows, err := t.e.DB.QueryContext(ctx, `
		WITH ours AS (
		  SELECT c.workspace_id, unnest(c.job_ids) AS job_id, c.sent_at, c.stream_ids
		  FROM action_calls c WHERE c.status = 'sent' AND c.sent_at >= $1 AND c.workspace_id IS NOT NULL)
		SELECT o.workspace_id, o.job_id, coalesce(j.stream_id, CASE WHEN len(o.stream_ids) = 1 THEN o.stream_ids[1] END, 0)
		FROM ours o LEFT JOIN jobs j ON j.id = o.job_id
		WHERE j.id IS NULL
		   OR j.status NOT IN ('SUCCESS', 'FAILURE')
		   OR coalesce(j.end_execution_time, j.start_execution_time, TIMESTAMPTZ '1970-01-01 00:00:00+00') < o.sent_at - to_microseconds($2::BIGINT)`, since, clockSkew.Microseconds())
	if err != nil {
		return fmt.Errorf("reading our pending jobs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ws, id, sid int64
		if err := rows.Scan(&ws, &id, &sid); err != nil {
			return fmt.Errorf("reading our pending jobs: %w", err)
		}
		t.addJob(ws, id, sid)
	}
	return rows.Err()
}

func (t *pendingTracker) addJob(ws, id, stream int64) {
	if !slices.ContainsFunc(t.jobs[ws], func(p pendingJob) bool { return p.id == id }) {
		t.jobs[ws] = append(t.jobs[ws], pendingJob{id, stream})
	}
}

// busy reports whether one of c's streams runs or queues a job of ours. Datorama runs
// one job per stream at a time: when the cap is binding, more jobs for a busy stream
// would only queue behind ours (or behind a stuck one) while holding places under the
// cap that other streams could use.
func (t *pendingTracker) busy(c *Call) bool {
	for _, p := range t.jobs[c.WorkspaceID] {
		if slices.Contains(c.StreamIDs, p.stream) {
			return true
		}
	}
	for _, b := range t.blind[c.WorkspaceID] {
		for _, s := range b.streams {
			if slices.Contains(c.StreamIDs, s) {
				return true
			}
		}
	}
	return false
}

func (t *pendingTracker) count(ws int64) int {
	n := len(t.jobs[ws])
	for _, b := range t.blind[ws] {
		n += b.expected
	}
	return n
}

// add notes the jobs a sent call created.
func (t *pendingTracker) add(c *Call, ans *Answer) {
	if t.cap <= 0 || !c.Op.CreatesJobs() {
		return
	}
	if ans == nil || len(ans.Jobs) == 0 {
		if c.ExpectedJobs > 0 {
			t.addBlind(c)
		}
		return
	}
	for _, j := range ans.Jobs {
		if !datorama.IsFinal(j.Status) {
			sid := int64(j.DataStreamID)
			if sid == 0 && len(c.StreamIDs) == 1 {
				sid = c.StreamIDs[0]
			}
			t.addJob(c.WorkspaceID, j.ID, sid)
		}
	}
}

// addIDs notes jobs found by reconciliation.
func (t *pendingTracker) addIDs(c *Call, ids []int64) {
	if t.cap <= 0 {
		return
	}
	for _, id := range ids {
		sid := int64(0)
		if len(c.StreamIDs) == 1 {
			sid = c.StreamIDs[0]
		}
		t.addJob(c.WorkspaceID, id, sid)
	}
}

func (t *pendingTracker) addBlind(c *Call) {
	t.blind[c.WorkspaceID] = append(t.blind[c.WorkspaceID], blindCall{
		streams: c.StreamIDs, start: c.Start, end: c.End, op: c.Op, knownMax: c.KnownMaxJobIDs,
		expected: c.ExpectedJobs, at: t.e.clock().Now(),
	})
}

// fits reports whether c may be sent now: the workspace's pending jobs plus what c
// creates stay within the cap, or nothing of ours is pending there (a call bigger than
// the cap goes out alone); and none of its streams is still busy with a job of ours.
func (t *pendingTracker) fits(c *Call) bool {
	if t.cap <= 0 || c.ExpectedJobs == 0 {
		return true
	}
	n := t.count(c.WorkspaceID)
	return n == 0 || (n+c.ExpectedJobs <= t.cap && !(t.binding[c.WorkspaceID] && t.busy(c)))
}

// maxPollFactor bounds how far the wait between status checks grows while nothing
// finishes: jobs run for minutes to hours, and each check costs calls.
const maxPollFactor = 8

// next picks the first queued call that fits, re-checking our pending jobs at the API
// while none does: oldest first, and only as many as the first call needs freed. The
// wait between checks starts at PollEvery and doubles while nothing finishes. It gives
// up (ErrPendingWait) after MaxWait without progress.
func (t *pendingTracker) next(ctx context.Context, queue []*Call) (int, error) {
	pick := func() int {
		for i, c := range queue {
			if t.fits(c) {
				return i
			}
		}
		return -1
	}
	if i := pick(); i >= 0 {
		return i, nil
	}
	clk := t.e.clock()
	wait := t.e.pollEvery()
	deadline := clk.Now().Add(t.e.maxWait())
	logged := false
	for {
		freed := 0
		for _, ws := range workspacesOf(queue) {
			first := queue[slices.IndexFunc(queue, func(c *Call) bool { return c.WorkspaceID == ws })]
			n, err := t.refresh(ctx, ws, max(1, t.count(ws)+first.ExpectedJobs-t.cap))
			if err != nil {
				return -1, err
			}
			freed += n
		}
		if i := pick(); i >= 0 {
			return i, nil
		}
		now := clk.Now()
		if freed > 0 {
			wait, deadline = t.e.pollEvery(), now.Add(t.e.maxWait())
		} else {
			wait = min(2*wait, maxPollFactor*t.e.pollEvery())
		}
		if !now.Before(deadline) {
			c := queue[0]
			return -1, fmt.Errorf("%w: %d of our jobs still pending in workspace %d, none finished for %s (cap %d)", ErrPendingWait, t.count(c.WorkspaceID), c.WorkspaceID, t.e.maxWait(), t.cap)
		}
		if !logged {
			t.e.log().InfoContext(ctx, "waiting for our pending jobs", "workspace", queue[0].WorkspaceID, "pending", t.count(queue[0].WorkspaceID), "cap", t.cap)
			logged = true
		}
		if err := clock.Sleep(ctx, clk, wait); err != nil {
			return -1, err
		}
	}
}

func workspacesOf(calls []*Call) []int64 {
	var out []int64
	for _, c := range calls {
		if !slices.Contains(out, c.WorkspaceID) {
			out = append(out, c.WorkspaceID)
		}
	}
	return out
}

// refresh asks the API for the status of the workspace's pending jobs, oldest first,
// and forgets the finished ones, stopping once need of them finished (need <= 0: check
// them all). For calls whose answer named no jobs, it first reads their streams' jobs
// to find them. It returns how many it forgot.
func (t *pendingTracker) refresh(ctx context.Context, ws int64, need int) (int, error) {
	ctx = ratelimit.WithPriority(ctx, ratelimit.Interactive)
	ctx = datorama.WithWorkspace(ctx, ws)
	blind := t.blind[ws]
	t.blind[ws] = nil
	for _, b := range blind {
		for _, sid := range b.streams {
			jobs, err := t.e.listJobs(ctx, sid)
			if err != nil {
				t.blind[ws] = append(t.blind[ws], b)
				return 0, fmt.Errorf("finding the jobs of an earlier call: %w", err)
			}
			sc := storedCall{Op: b.op, Start: b.start, End: b.end, SendingAt: b.at, StreamIDs: b.streams}
			found := evidence(sc, sid, []storedItem{{StreamID: sid, KnownMax: b.knownMax[sid]}}, jobs)
			for _, j := range jobs {
				if slices.Contains(found, j.ID) && !datorama.IsFinal(j.Status) {
					t.addJob(ws, j.ID, sid)
				}
			}
		}
	}
	// Check the least recently checked first: a job still running goes to the back, so
	// a stuck job is not asked about again before the others.
	freed := 0
	var still []pendingJob
	list := t.jobs[ws]
	i := 0
	for ; i < len(list) && (need <= 0 || freed < need); i++ {
		p := list[i]
		j, err := t.e.Client.Jobs.Get(ctx, p.id)
		switch {
		case datorama.IsNotFound(err):
			freed++
		case err != nil:
			t.jobs[ws] = append(list[i:len(list):len(list)], still...)
			return freed, fmt.Errorf("checking our pending job %d: %w", p.id, err)
		case j == nil || datorama.IsFinal(j.Status):
			freed++
		default:
			still = append(still, p)
		}
	}
	keep := append(list[i:len(list):len(list)], still...)
	t.jobs[ws] = keep
	return freed, nil
}
