package extract

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
	"github.com/drextract/drextract/sim"
)

// expectedStats is what a fresh full crawl spends on stats pages, by the rules in the
// package doc: every stream pages through floor(n/E)+1 pages of the effective size E,
// plus EmptyPageChecks for a suspicious empty last page; the streams tied for the
// longest first page are probed in id order until one turns out capped, and a probe that
// finds a list complete replaces the rest of that stream's pages.
type expectedStats struct {
	Pages, Probes, Checks int
	Minimum               int // Σ floor(n/E)+1: what a crawler that knew the cap would need
}

func expectStats(counts map[int64]int, ran map[int64]bool, requested, capSize, checks int) expectedStats {
	e := min(requested, capSize)
	first := func(n int) int { return min(n, e) }
	lmax := 0
	for _, n := range counts {
		lmax = max(lmax, first(n))
	}
	var ids []int64
	for id := range counts {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	exact := map[int64]bool{} // probed and found complete after page 1
	var out expectedStats
	if lmax > 0 && lmax < requested {
		for _, id := range ids {
			if first(counts[id]) != lmax {
				continue
			}
			out.Probes++
			if counts[id] > lmax {
				break
			}
			exact[id] = true
		}
	}
	for _, id := range ids {
		n := counts[id]
		out.Minimum += n/e + 1
		if exact[id] {
			out.Pages++
			continue
		}
		out.Pages += n/e + 1
		if (n > 0 && n%e == 0) || (n == 0 && ran[id]) {
			out.Checks += checks
		}
	}
	return out
}

// truthRan tells which streams' listings show a run.
func truthRan(t testing.TB, tr sim.Truth) map[int64]bool {
	t.Helper()
	out := map[int64]bool{}
	for _, raw := range tr.Streams {
		var s datorama.Stream
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		out[s.ID] = hasRun(&s)
	}
	return out
}

func TestFullCrawlEqualsTruthInMinimumCalls(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		opts sim.Options
		page int
	}{
		{"asc, capped pages", sim.Options{Seed: 7, Workspaces: 3, Streams: 30, JobsPerStream: 30, MaxPageSize: 25}, 0},
		{"desc, capped pages", sim.Options{Seed: 8, Workspaces: 3, Streams: 30, JobsPerStream: 30, MaxPageSize: 25, StatsOrder: "desc"}, 0},
		{"no stream reaches the cap", sim.Options{Seed: 9, Workspaces: 2, Streams: 20, JobsPerStream: 20}, 0},
		{"requested below the cap", sim.Options{Seed: 10, Workspaces: 2, Streams: 20, JobsPerStream: 30, MaxPageSize: 1000}, 7},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.opts)
			tr := e.sim.Truth()
			res := e.crawl(Options{RequestPageSize: tc.page})
			if res.Status != load.RunOK {
				t.Fatalf("status %s (incomplete %v, err %v)", res.Status, res.Incomplete, res.Err)
			}
			e.assertEqualTruth()

			counts, streams := truthJobCounts(t, tr)
			requested := tc.page
			if requested == 0 {
				requested = DefaultRequestPageSize
			}
			capSize := tc.opts.MaxPageSize
			if capSize == 0 {
				capSize = 1000
			}
			x := expectStats(counts, truthRan(t, tr), requested, capSize, DefaultEmptyPageChecks)
			W := len(tr.Workspaces)
			want := 1 + W + x.Pages + x.Probes + x.Checks + len(streams) + 5*W
			calls := e.sim.Calls()
			t.Logf("calls %d (stats %d = pages %d + probes %d + empty checks %d; a crawler knowing the cap needs %d stats pages)",
				calls.Total, e.statsCalls(), x.Pages, x.Probes, x.Checks, x.Minimum)
			if calls.Total != want || res.Calls != want {
				t.Errorf("calls: sim saw %d, run reported %d, want %d", calls.Total, res.Calls, want)
			}
			if res.ProbeCalls != x.Probes {
				t.Errorf("probe calls %d, want %d", res.ProbeCalls, x.Probes)
			}
			if got := e.queryInt("SELECT calls FROM runs WHERE id = $1", res.RunID); got != want {
				t.Errorf("runs.calls = %d, want %d", got, want)
			}
		})
	}
}

// truthJobs maps every job id of the truth to its stream and status.
type truthJob struct {
	stream int64
	status string
}

func truthJobsOf(t testing.TB, tr sim.Truth) map[int64]truthJob {
	t.Helper()
	out := make(map[int64]truthJob, len(tr.Jobs))
	for _, raw := range tr.Jobs {
		var j struct {
			ID           int64  `json:"id"`
			DataStreamID int64  `json:"dataStreamId"`
			Status       string `json:"status"`
		}
		if err := json.Unmarshal(raw, &j); err != nil {
			t.Fatal(err)
		}
		out[j.ID] = truthJob{j.DataStreamID, j.Status}
	}
	return out
}

// changedPages is, per stream, how many oldest-first pages of size e an incremental read
// needs at least: from the page holding the first job that is new, changed, or was not
// final before, to the last page.
func changedPages(before, after map[int64]truthJob, e int) (streams, pages int) {
	byStream := map[int64][]int64{}
	for id, j := range after {
		byStream[j.stream] = append(byStream[j.stream], id)
	}
	for _, ids := range byStream {
		slices.Sort(ids)
		first := -1
		for i, id := range ids {
			b, ok := before[id]
			if !ok || b.status != after[id].status || !datorama.IsFinal(b.status) {
				first = i
				break
			}
		}
		if first < 0 {
			continue
		}
		streams++
		pages += len(ids)/e + 1 - first/e
	}
	return streams, pages
}

func TestIncrementalCrawl(t *testing.T) {
	t.Parallel()
	// A hundred streams per workspace, as in the acceptance account, so the per-workspace
	// calls weigh what they would there. Mappings and workspace-level lists are left out:
	// the bound is about stream lists and job pages, and every write costs test time.
	e := newEnv(t, sim.Options{Seed: 21, Workspaces: 4, Streams: 400, JobsPerStream: 12})
	only := Options{Entities: []string{load.Workspaces, load.Streams, load.Jobs}}
	_, streams := truthJobCounts(t, e.sim.Truth())
	pick := func(rem int) (ids []int64) {
		for i, id := range streams {
			if i%20 == rem || (rem >= 10 && i%20 == rem-10) {
				ids = append(ids, id)
			}
		}
		return ids
	}
	// Runs in flight during the first crawl are stored unfinished; they finish in the
	// hour that follows, which the incremental crawl must record as transitions.
	e.sim.RunStreams(pick(1))
	e.sim.Advance(2 * time.Minute)
	first := e.crawl(only)
	if first.Status != load.RunOK {
		t.Fatalf("first crawl: %s %v", first.Status, first.Incomplete)
	}
	e.assertEqualTruth(only.Entities...)
	before := e.sim.Truth()
	beforeJobs := truthJobsOf(t, before)

	// An hour in which a tenth of the streams ran (plus whatever the daily schedule ran).
	ran := pick(13)
	e.sim.RunStreams(ran)
	e.sim.Advance(time.Hour)
	after := e.sim.Truth()
	afterJobs := truthJobsOf(t, after)
	changedStreams, pages := changedPages(beforeJobs, afterJobs, 1000)

	// Rename a stream whose jobs did not change, so its history shows only the rename.
	touched := map[int64]bool{}
	for id, j := range afterJobs {
		if b, ok := beforeJobs[id]; !ok || b.status != j.status {
			touched[j.stream] = true
		}
	}
	var renamed int64
	for _, id := range streams {
		if !touched[id] {
			renamed = id
			break
		}
	}
	e.sim.Mutate(func(st *sim.State) {
		if err := st.RenameStream(renamed, "renamed by the test"); err != nil {
			t.Fatal(err)
		}
	})

	e.sim.ResetCalls()
	res := e.crawl(only)
	if res.Status != load.RunOK {
		t.Fatalf("incremental crawl: %s %v", res.Status, res.Incomplete)
	}
	e.assertEqualTruth(only.Entities...)

	W := len(after.Workspaces)
	bound := 1.1 * float64(1+W+pages)
	calls := e.sim.Calls()
	t.Logf("incremental: %d calls (%v); %d streams changed, %d pages; bound %.1f", calls.Total, calls.ByEndpoint, changedStreams, pages, bound)
	if float64(calls.Total) > bound {
		t.Errorf("incremental crawl made %d calls, more than 1.1 × (1 + %d + %d) = %.1f", calls.Total, W, pages, bound)
	}
	if changedStreams < len(ran) {
		t.Errorf("only %d streams changed; the test meant %d to run", changedStreams, len(ran))
	}

	// New jobs are present and every status transition was recorded in this run.
	newJobs, transitions := 0, 0
	for id, j := range afterJobs {
		b, ok := beforeJobs[id]
		switch {
		case !ok:
			newJobs++
		case b.status != j.status:
			transitions++
			if got := e.queryInt(`SELECT count(*) FROM job_status_changes WHERE job_id = $1 AND run_id = $2
				AND old_status = $3 AND new_status = $4`, id, res.RunID, b.status, j.status); got != 1 {
				t.Errorf("job %d went %s → %s: %d job_status_changes rows in run %d, want 1", id, b.status, j.status, got, res.RunID)
			}
		}
	}
	if newJobs == 0 || transitions == 0 {
		t.Errorf("the hour made %d new jobs and %d transitions; the test needs both", newJobs, transitions)
	}
	// A job's first sight is not a transition: the run recorded exactly the transitions.
	if got := e.queryInt(`SELECT count(*) FROM job_status_changes WHERE run_id = $1`, res.RunID); got != transitions {
		t.Errorf("job_status_changes of the incremental run: %d rows, want its %d transitions", got, transitions)
	}

	// The renamed stream has two versions: the old name, closed, and the new one.
	if got := e.queryInt(`SELECT count(*) FROM streams_history WHERE id = $1`, renamed); got != 2 {
		t.Errorf("streams_history of renamed stream %d has %d rows, want 2", renamed, got)
	}
	if got := e.queryInt(`SELECT count(*) FROM streams_history WHERE id = $1 AND is_current AND name = 'renamed by the test' AND valid_to IS NULL`, renamed); got != 1 {
		t.Errorf("renamed stream %d: no current history row with the new name", renamed)
	}
}

func TestFailedListingStaysIncomplete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sim.Options{Seed: 31, Workspaces: 2, Streams: 30, JobsPerStream: 30, MaxPageSize: 10})
	if res := e.crawl(Options{}); res.Status != load.RunOK {
		t.Fatalf("first crawl: %s %v", res.Status, res.Incomplete)
	}
	tr := e.sim.Truth()
	counts, _ := truthJobCounts(t, tr)
	var wsX, deleted, failing int64
	e.sim.Mutate(func(st *sim.State) {
		wsX = st.WorkspaceIDs()[0]
		deleted = st.StreamIDs(wsX)[0]
		for _, ws := range st.WorkspaceIDs()[1:] {
			for _, id := range st.StreamIDs(ws) {
				if counts[id] > 20 {
					failing = id
					break
				}
			}
		}
		if err := st.DeleteStream(deleted); err != nil {
			t.Fatal(err)
		}
	})
	if failing == 0 {
		t.Fatal("no stream with three pages outside the first workspace")
	}
	streamsOfX := fmt.Sprintf("/v1/workspaces/%d/data-streams", wsX)
	statsOfY := fmt.Sprintf("/v1/data-streams/api/%d/stats", failing)
	e.setFail(func(r *http.Request, body []byte) bool {
		return r.URL.Path == streamsOfX || r.URL.Path == statsOfY && strings.Contains(string(body), `"pageNumber":2`)
	})
	res := e.crawl(Options{Full: true})
	if res.Status != load.RunPartial {
		t.Fatalf("status %s, want partial", res.Status)
	}
	wantIncomplete := []string{"streams of workspace " + itoa(wsX), "jobs of stream " + itoa(failing)}
	for _, w := range wantIncomplete {
		if !slices.Contains(res.Incomplete, w) {
			t.Errorf("incomplete %v lacks %q", res.Incomplete, w)
		}
		if got := e.queryInt(`SELECT count(*) FROM runs WHERE id = $1 AND list_contains(CAST(incomplete AS VARCHAR[]), $2)`, res.RunID, w); got != 1 {
			t.Errorf("runs.incomplete of run %d lacks %q", res.RunID, w)
		}
	}
	// Nothing was inferred deleted from the failed listings.
	if got := e.queryInt(`SELECT count(*) FROM streams WHERE is_deleted`); got != 0 {
		t.Errorf("%d streams marked deleted although their workspace's listing failed", got)
	}
	if got := e.queryInt(`SELECT count(*) FROM jobs WHERE is_deleted`); got != 0 {
		t.Errorf("%d jobs marked deleted after failed listings", got)
	}
	// The failing stream's checkpoint did not advance: it is not done, so the next run reads it.
	cps, err := e.store.Checkpoints(context.Background(), kindJobs)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := decodeState[jobsState](nil, cps[failing]); st.Done {
		t.Errorf("stream %d: checkpoint says done after its listing failed: %+v", failing, st)
	}

	e.setFail(nil)
	if res := e.crawl(Options{}); res.Status != load.RunOK {
		t.Fatalf("crawl after the faults: %s %v", res.Status, res.Incomplete)
	}
	e.assertEqualTruth()
	if got := e.queryInt(`SELECT count(*) FROM streams WHERE is_deleted AND id = $1`, deleted); got != 1 {
		t.Errorf("deleted stream %d not marked deleted after a clean listing", deleted)
	}
}

func TestQuotaExhaustedThenResumed(t *testing.T) {
	t.Parallel()
	// Two minutes before the UTC day ends, so the quota reopens without hours of
	// simulated runs in between.
	start := time.Date(2026, 3, 2, 23, 58, 0, 0, time.UTC)
	e := newEnvAt(t, start, sim.Options{Seed: 41, Workspaces: 2, Streams: 40, JobsPerStream: 30, MaxPageSize: 10, DailyQuota: 150})
	budget := ratelimit.NewBudget(e.sim.Tokens()[0], ratelimit.Config{Clock: e.clk, Reserve: -1, Logger: quietLogger()})
	e.newClient(datorama.WithGate(budget))

	res := e.crawl(Options{})
	if res.Status != load.RunQuotaExhausted {
		t.Fatalf("status %s (incomplete %v), want quota_exhausted", res.Status, res.Incomplete)
	}
	nextDay := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	if !res.QuotaReset.Equal(nextDay) {
		t.Errorf("quota reset %v, want %v", res.QuotaReset, nextDay)
	}
	if got := e.queryInt(`SELECT count(*) FROM runs WHERE id = $1 AND status = 'quota_exhausted'`, res.RunID); got != 1 {
		t.Errorf("run %d not recorded as quota_exhausted", res.RunID)
	}
	stored := e.queryInt(`SELECT count(*) FROM jobs`)
	if stored == 0 {
		t.Fatal("nothing stored before the quota ran out; the test needs a crawl cut in the middle")
	}
	beforeJobs := truthJobsOf(t, e.sim.Truth())

	e.clk.Set(nextDay.Add(time.Minute))
	afterJobs := truthJobsOf(t, e.sim.Truth())
	res = e.crawl(Options{})
	if res.Status != load.RunOK {
		t.Fatalf("resumed crawl: %s %v %v", res.Status, res.Incomplete, res.Err)
	}
	e.assertEqualTruth()

	// No page of a stream that did not change in between was served twice.
	changed := map[int64]bool{}
	for id, j := range afterJobs {
		if b, ok := beforeJobs[id]; !ok || b.status != j.status || !datorama.IsFinal(b.status) {
			changed[j.stream] = true
		}
	}
	for key, n := range e.pagesServed() {
		var stream int64
		if _, err := fmt.Sscanf(key, "/base/v1/data-streams/api/%d/stats", &stream); err != nil {
			fmt.Sscanf(key, "/v1/data-streams/api/%d/stats", &stream)
		}
		if n > 1 && !changed[stream] {
			t.Errorf("%s served %d times", key, n)
		}
	}
}

func TestMisalignedStreamIsReadInFull(t *testing.T) {
	t.Parallel()
	for _, order := range []string{"asc", "desc"} {
		t.Run(order, func(t *testing.T) {
			e := newEnv(t, sim.Options{Seed: 71, Workspaces: 1, Streams: 8, JobsPerStream: 30, MaxPageSize: 10, StatsOrder: order})
			if res := e.crawl(Options{}); res.Status != load.RunOK {
				t.Fatalf("first crawl: %s", res.Status)
			}
			// A job the API no longer has, stored among the stream's newest jobs: an
			// incremental read must notice the list no longer lines up with the store.
			jobs := truthJobsOf(t, e.sim.Truth())
			byStream := map[int64][]int64{}
			for id, j := range jobs {
				byStream[j.stream] = append(byStream[j.stream], id)
			}
			var stream, bogus int64
			for s, ids := range byStream {
				slices.Sort(ids)
				for i := len(ids) - 1; i >= 4 && i >= len(ids)-4; i-- {
					if ids[i]-ids[i-1] > 1 && len(ids) >= 25 {
						stream, bogus = s, ids[i-1]+1
						break
					}
				}
				if bogus != 0 {
					break
				}
			}
			if bogus == 0 {
				t.Fatal("no gap between job ids to put a stray job in")
			}
			if _, err := e.store.DB().Exec(`INSERT INTO jobs (id, stream_id, workspace_id, status, raw, run_id, first_seen, last_seen)
				SELECT $1, $2, workspace_id, 'SUCCESS', '{}', 1, now(), now() FROM streams WHERE id = $2`, bogus, stream); err != nil {
				t.Fatal(err)
			}
			e.sim.RunStreams([]int64{stream})
			e.sim.Advance(time.Hour)
			res := e.crawl(Options{})
			if res.Status != load.RunOK {
				t.Fatalf("crawl: %s %v", res.Status, res.Incomplete)
			}
			e.assertEqualTruth()
			if got := e.queryInt(`SELECT count(*) FROM jobs WHERE id = $1 AND is_deleted`, bogus); got != 1 {
				t.Errorf("stray job %d of stream %d not marked deleted by the full re-read", bogus, stream)
			}
		})
	}
}

// TestCrawlUnderFaults crawls while the simulator injects every fault it has but slow
// answers and 429 storms (3% each, a quarter of all requests): the client retries the
// transient ones, the crawler re-asks empty and repeated pages. The client waits out its
// backoffs on a clock of its own, so the simulated account does not move during the
// crawl: a crawl that ends ok must equal the truth at once; one that ends partial must
// after one more clean run.
func TestCrawlUnderFaults(t *testing.T) {
	t.Parallel()
	for _, seed := range []int64{81, 82} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			f, err := sim.ParseFaults("all=0.03,slow=0,storm429=0")
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, sim.Options{Seed: seed, Workspaces: 2, Streams: 24, JobsPerStream: 40, MaxPageSize: 10, Faults: f})
			backoff := clock.NewManual(testStart)
			t.Cleanup(backoff.AutoAdvance(2 * time.Millisecond))
			e.newClient(datorama.WithClock(backoff))
			res := e.crawl(Options{})
			t.Logf("status %s, %d calls, faults %v, incomplete %v", res.Status, res.Calls, e.sim.Calls().Faults, res.Incomplete)
			switch res.Status {
			case load.RunOK:
				e.assertEqualTruth()
			case load.RunPartial:
				e.sim.SetFaults(sim.Faults{})
				if res := e.crawl(Options{}); res.Status != load.RunOK {
					t.Fatalf("clean crawl after the faults: %s %v", res.Status, res.Incomplete)
				}
				e.assertEqualTruth()
			default:
				t.Fatalf("status %s: %v", res.Status, res.Err)
			}
			if n := e.sim.Calls().Faults[sim.FaultEmptyPage] + e.sim.Calls().Faults[sim.FaultRepeat]; n == 0 {
				t.Error("no empty or repeated page was injected; the test needs them")
			}
		})
	}
}

func TestInterruptedCrawlCommitsItsPageAndResumes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sim.Options{Seed: 91, Workspaces: 2, Streams: 20, JobsPerStream: 30, MaxPageSize: 10})
	ctx, cancel := context.WithCancel(context.Background())
	served := 0
	e.mu.Lock()
	e.after = func() {
		e.mu.Lock()
		served++
		n := served
		e.mu.Unlock()
		if n == 40 {
			cancel() // while the crawler waits for this very answer
		}
	}
	e.mu.Unlock()
	res, err := e.crawler.Run(ctx, Options{Clock: e.clk, Logger: quietLogger()})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want the cancellation", err)
	}
	if res.Status != load.RunPartial || e.queryInt(`SELECT count(*) FROM runs WHERE id = $1 AND status = 'partial'`, res.RunID) != 1 {
		t.Errorf("interrupted run: status %s, want partial (in runs too)", res.Status)
	}
	// The answer in flight at the cancellation was committed: nothing served was lost.
	if res.Calls != 40 {
		t.Errorf("the interrupted run made %d calls, want 40: none after the cancellation", res.Calls)
	}
	e.mu.Lock()
	e.after = nil
	e.mu.Unlock()
	if res := e.crawl(Options{}); res.Status != load.RunOK {
		t.Fatalf("resumed crawl: %s %v", res.Status, res.Incomplete)
	}
	e.assertEqualTruth()
	for key, n := range e.pagesServed() {
		if n > 1 {
			t.Errorf("%s served %d times: the interrupted page was not committed", key, n)
		}
	}
}

func TestWorkspaceLeavingTheListRetiresWhatIsUnderIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sim.Options{Seed: 101, Workspaces: 4, Streams: 16, JobsPerStream: 5, Tokens: 2})
	if res := e.crawl(Options{}); res.Status != load.RunOK {
		t.Fatalf("crawl with the admin token: %s", res.Status)
	}
	// The second token sees a strict subset: to it the others are gone.
	visible := e.sim.Truth().TokenWorkspaces["2"]
	c, err := datorama.New(e.baseURL, e.sim.Tokens()[1], datorama.WithClock(e.clk), datorama.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	e.crawler.Client, e.crawler.Audit = c, nil
	if res := e.crawl(Options{}); res.Status != load.RunOK {
		t.Fatalf("crawl with the second token: %s %v", res.Status, res.Incomplete)
	}
	in := "(" + strings.Trim(strings.Join(strings.Fields(fmt.Sprint(visible)), ","), "[]") + ")"
	for _, q := range []string{
		"SELECT count(*) FROM workspaces WHERE is_deleted = (id NOT IN " + in + ")",
		"SELECT count(*) FROM streams WHERE is_deleted = (workspace_id NOT IN " + in + ")",
		"SELECT count(*) FROM jobs WHERE is_deleted = (workspace_id NOT IN " + in + ")",
		"SELECT count(*) FROM mappings WHERE is_deleted = (workspace_id NOT IN " + in + ")",
		"SELECT count(*) FROM dimensions WHERE is_deleted = (workspace_id NOT IN " + in + ")",
	} {
		total := e.queryInt(strings.SplitN(q, " WHERE", 2)[0])
		if got := e.queryInt(q); got != total || total == 0 {
			t.Errorf("%s: %d of %d rows, want all: deleted exactly when outside the visible workspaces %s", q, got, total, in)
		}
	}
}
