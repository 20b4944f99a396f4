package action

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/sim"
)

// failedWithin24h computes, from the ground truth, what failed-jobs-24h must select:
// failed jobs that ended in the last 24 hours and that no later job of the stream
// covers. It returns them by stream.
func failedWithin24h(tr truth) map[int64][]datorama.Job {
	out := map[int64][]datorama.Job{}
	for sid, jobs := range tr.byStr {
		for _, j := range jobs {
			at := j.EndExecutionTime.Time
			if at.IsZero() {
				at = j.StartExecutionTime.Time
			}
			if j.Status != datorama.StatusFailure || at.Before(tr.now.Add(-24*time.Hour)) || at.After(tr.now) {
				continue
			}
			covered := false
			for _, k := range jobs {
				if k.ID > j.ID && !k.DataStartDate.After(j.DataStartDate.Time) && !k.DataEndDate.Before(j.DataEndDate.Time) {
					covered = true
				}
			}
			if !covered {
				out[sid] = append(out[sid], j)
			}
		}
	}
	return out
}

// Acceptance: the built-in failed-jobs selection, after a crawl, reruns exactly the
// failed jobs of the last 24 h, one call per stream; again within the cooldown it sends
// nothing; after the next crawl every action item has an outcome.
func TestFailedJobs24hEndToEnd(t *testing.T) {
	e := newEnv(t, sim.Options{Workspaces: 2, Streams: 16, JobsPerStream: 20})
	tr := e.truth()
	enabled := tr.enabledStreams(0)
	if len(enabled) < 5 {
		t.Fatalf("only %d enabled streams", len(enabled))
	}
	failing, recovering, disabled := enabled[0], enabled[1:3], enabled[3]
	e.sim.Mutate(func(st *sim.State) {
		for _, id := range []int64{failing, recovering[0], recovering[1], disabled} {
			must(t, st.SetStreamOutcome(id, "fail"))
			must(t, st.RunNow(id))
		}
	})
	e.sim.Advance(3 * time.Hour)
	e.sim.Mutate(func(st *sim.State) {
		for _, id := range recovering {
			must(t, st.SetStreamOutcome(id, "succeed"))
		}
		must(t, st.SetStreamEnabled(disabled, false))
	})
	e.crawl(true)

	tr = e.truth()
	want := failedWithin24h(tr)
	for _, id := range []int64{failing, recovering[0], recovering[1], disabled} {
		if len(want[id]) == 0 {
			t.Fatalf("stream %d has no failed job in the last 24 h: the setup did not work", id)
		}
	}
	knownMax := map[int64]int64{}
	for sid, jobs := range tr.byStr {
		knownMax[sid] = jobs[len(jobs)-1].ID
	}
	wantSent := map[[2]int64]bool{}
	streamsSent := map[int64]bool{}
	for sid, jobs := range want {
		if !tr.streams[sid].Enabled {
			continue
		}
		streamsSent[sid] = true
		for _, j := range jobs {
			wantSent[[2]int64{sid, j.ID}] = true
		}
	}

	sel := mustGet(t, mustCatalog(t), "failed-jobs-24h")
	before := e.calls(epRerun)
	p, rep, err := e.act(Request{Selection: sel, StartedBy: "test"})
	if err != nil {
		t.Fatalf("execute: %v", err)
	}
	if rep.Status != RunOK {
		t.Fatalf("status %s", rep.Status)
	}
	if got := e.calls(epRerun) - before; got != len(streamsSent) {
		t.Errorf("rerun calls = %d, want one per stream = %d", got, len(streamsSent))
	}
	if len(p.Calls) != len(streamsSent) {
		t.Errorf("planned calls = %d, want %d", len(p.Calls), len(streamsSent))
	}
	gotSent := map[[2]int64]bool{}
	for _, r := range e.query(`SELECT stream_id, job_id FROM action_items WHERE action_run_id = $1 AND status = 'sent'`, rep.RunID) {
		gotSent[[2]int64{r[0].(int64), r[1].(int64)}] = true
	}
	if fmt.Sprint(sortedPairs(gotSent)) != fmt.Sprint(sortedPairs(wantSent)) {
		t.Errorf("sent items\n got %v\nwant %v", sortedPairs(gotSent), sortedPairs(wantSent))
	}
	if n := e.count(`SELECT count(*) FROM action_items WHERE action_run_id = $1 AND status = 'skipped' AND stream_id = $2 AND reason LIKE 'stream disabled:%'`, rep.RunID, disabled); n != len(want[disabled]) {
		t.Errorf("disabled stream: %d items skipped as disabled, want %d", n, len(want[disabled]))
	}
	// Each rerun reached the simulator: a new job for the same days.
	after := e.truth()
	for k := range wantSent {
		old := tr.jobs[k[1]]
		found := false
		for _, j := range after.byStr[k[0]] {
			found = found || (j.ID > knownMax[k[0]] && j.DataStartDate.Equal(old.DataStartDate.Time) && j.DataEndDate.Equal(old.DataEndDate.Time))
		}
		if !found {
			t.Errorf("job %d of stream %d: no rerun job in the simulator", k[1], k[0])
		}
	}

	// Again within the cooldown, without a crawl in between (so the store still shows the
	// jobs failed and not rerun): nothing is sent, the guard says why.
	e.sim.Advance(time.Hour)
	mut := e.mutatingCalls()
	p2, rep2, err := e.act(Request{Selection: sel})
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if got := e.mutatingCalls() - mut; got != 0 || rep2.Sent != 0 || len(p2.Calls) != 0 {
		t.Fatalf("second run sent %d calls (%d items, %d planned calls); want none", got, rep2.Sent, len(p2.Calls))
	}
	if p2.Skipped["cooldown"] != len(wantSent) {
		t.Errorf("second run skipped %v, want %d for cooldown", p2.Skipped, len(wantSent))
	}

	// The next crawl, once the jobs ran: every item has an outcome, and the reruns'
	// outcomes are the simulator's.
	e.sim.Advance(31 * time.Hour)
	e.crawl(false)
	if n := e.count(`SELECT count(*) FROM action_items WHERE outcome IS NULL OR outcome = 'pending'`); n != 0 {
		t.Fatalf("%d action items without an outcome after the crawl", n)
	}
	final := e.truth()
	for _, r := range e.query(`SELECT stream_id, job_id, outcome FROM action_items WHERE action_run_id = $1 AND status = 'sent'`, rep.RunID) {
		sid, jid, outcome := r[0].(int64), r[1].(int64), r[2].(string)
		old := tr.jobs[jid]
		wantOutcome := OutcomeSucceeded
		for _, j := range final.byStr[sid] {
			if j.ID > knownMax[sid] && j.DataStartDate.Equal(old.DataStartDate.Time) && j.Status == datorama.StatusFailure {
				wantOutcome = OutcomeFailed
			}
		}
		if outcome != wantOutcome {
			t.Errorf("job %d of stream %d: outcome %s, want %s", jid, sid, outcome, wantOutcome)
		}
		if sid == failing && outcome != OutcomeFailed {
			t.Errorf("the always-failing stream's rerun has outcome %s", outcome)
		}
		if slices.Contains(recovering, sid) && outcome != OutcomeSucceeded {
			t.Errorf("a recovered stream's rerun has outcome %s", outcome)
		}
	}
	if n := e.count(`SELECT count(*) FROM action_items WHERE action_run_id = $1 AND outcome = 'not_sent'`, rep2.RunID); n == 0 {
		t.Errorf("the cooldown run's items have no not_sent outcome")
	}
}

func sortedPairs(m map[[2]int64]bool) [][2]int64 {
	out := make([][2]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b [2]int64) int {
		if a[0] != b[0] {
			return int(a[0] - b[0])
		}
		return int(a[1] - b[1])
	})
	return out
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustCatalog(t testing.TB) *Catalog {
	t.Helper()
	c, err := LoadCatalog("")
	if err != nil {
		t.Fatal(err)
	}
	return c
}
