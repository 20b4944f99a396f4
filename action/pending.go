package action

import (
	"context"
	"errors"
	"fmt"
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
	jobs map[int64]map[int64]bool // workspace → job id → pending
	// blind counts jobs of calls whose answer listed no jobs, per workspace, until
	// found by reading their streams' jobs.
	blind map[int64][]blindCall
}

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
	return &pendingTracker{e: e, cap: cap, jobs: map[int64]map[int64]bool{}, blind: map[int64][]blindCall{}}
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
		  SELECT c.workspace_id, unnest(c.job_ids) AS job_id, c.sent_at
		  FROM action_calls c WHERE c.status = 'sent' AND c.sent_at >= $1 AND c.workspace_id IS NOT NULL)
		SELECT o.workspace_id, o.job_id
		FROM ours o LEFT JOIN jobs j ON j.id = o.job_id
		WHERE j.id IS NULL
		   OR j.status NOT IN ('SUCCESS', 'FAILURE')
		   OR coalesce(j.end_execution_time, j.start_execution_time, TIMESTAMPTZ '1970-01-01 00:00:00+00') < o.sent_at - INTERVAL 5 MINUTE`, since)
	if err != nil {
		return fmt.Errorf("reading our pending jobs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ws, id int64
		if err := rows.Scan(&ws, &id); err != nil {
			return fmt.Errorf("reading our pending jobs: %w", err)
		}
		t.addJob(ws, id)
	}
	return rows.Err()
}

func (t *pendingTracker) addJob(ws, id int64) {
	m := t.jobs[ws]
	if m == nil {
		m = map[int64]bool{}
		t.jobs[ws] = m
	}
	m[id] = true
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
			t.addJob(c.WorkspaceID, j.ID)
		}
	}
}

// addIDs notes jobs found by reconciliation.
func (t *pendingTracker) addIDs(c *Call, ids []int64) {
	if t.cap <= 0 {
		return
	}
	for _, id := range ids {
		t.addJob(c.WorkspaceID, id)
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
// the cap goes out alone).
func (t *pendingTracker) fits(c *Call) bool {
	if t.cap <= 0 || c.ExpectedJobs == 0 {
		return true
	}
	n := t.count(c.WorkspaceID)
	return n == 0 || n+c.ExpectedJobs <= t.cap
}

// next picks the first queued call that fits, re-checking the pending jobs at the API
// and waiting PollEvery between checks while none does. It gives up (ErrPendingWait)
// after MaxWait without progress.
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
	deadline := clk.Now().Add(t.e.maxWait())
	logged := false
	for {
		for ws := range t.jobs {
			if err := t.refresh(ctx, ws); err != nil {
				return -1, err
			}
		}
		for ws := range t.blind {
			if err := t.refresh(ctx, ws); err != nil {
				return -1, err
			}
		}
		if i := pick(); i >= 0 {
			return i, nil
		}
		if !clk.Now().Before(deadline) {
			c := queue[0]
			return -1, fmt.Errorf("%w: %d of our jobs still pending in workspace %d after %s (cap %d)", ErrPendingWait, t.count(c.WorkspaceID), c.WorkspaceID, t.e.maxWait(), t.cap)
		}
		if !logged {
			t.e.log().InfoContext(ctx, "waiting for our pending jobs", "workspace", queue[0].WorkspaceID, "pending", t.count(queue[0].WorkspaceID), "cap", t.cap)
			logged = true
		}
		if err := clock.Sleep(ctx, clk, t.e.pollEvery()); err != nil {
			return -1, err
		}
	}
}

// refresh asks the API for the status of the workspace's pending jobs and forgets the
// finished ones; for calls whose answer named no jobs, it reads their streams' jobs to
// find them.
func (t *pendingTracker) refresh(ctx context.Context, ws int64) error {
	ctx = ratelimit.WithPriority(ctx, ratelimit.Interactive)
	ctx = datorama.WithWorkspace(ctx, ws)
	for id := range t.jobs[ws] {
		j, err := t.e.Client.Jobs.Get(ctx, id)
		switch {
		case datorama.IsNotFound(err):
			delete(t.jobs[ws], id)
		case err != nil:
			return fmt.Errorf("checking our pending job %d: %w", id, err)
		case j == nil || datorama.IsFinal(j.Status):
			delete(t.jobs[ws], id)
		}
	}
	blind := t.blind[ws]
	t.blind[ws] = nil
	for _, b := range blind {
		for _, sid := range b.streams {
			jobs, err := t.e.listJobs(ctx, sid)
			if err != nil {
				return fmt.Errorf("finding the jobs of an earlier call: %w", err)
			}
			sc := storedCall{Op: b.op, Start: b.start, End: b.end, SendingAt: b.at, StreamIDs: b.streams}
			for _, id := range evidence(sc, sid, []storedItem{{StreamID: sid, KnownMax: b.knownMax[sid]}}, jobs) {
				for _, j := range jobs {
					if j.ID == id && !datorama.IsFinal(j.Status) {
						t.addJob(ws, id)
					}
				}
			}
		}
	}
	return nil
}
