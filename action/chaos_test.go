package action

import (
	"fmt"
	"testing"
	"time"

	"github.com/drextract/drextract/sim"
)

// Reruns and renames against a simulator that fails 5% of requests in every way it
// can (5xx before the work, resets and garbled bodies after it, 429 storms, …). Calls
// whose outcome is lost are settled from the API; those that did not take effect are
// sent again by the next run of the same input. In the end every job is rerun exactly
// once and every rename is there, and no call is left in doubt.
func TestActionsUnderFaults(t *testing.T) {
	e := newEnv(t, sim.Options{Workspaces: 1, Streams: 30, JobsPerStream: 4})
	e.crawl(true)
	tr := e.truth()
	known := maxJobIDs(tr)
	reruns := rerunRows(t, tr, 20)
	var renames []Row
	for i, sid := range tr.enabledStreams(0)[:20] {
		renames = append(renames, Row{Line: i + 2, StreamID: sid, Name: fmt.Sprintf("Chaos %02d", i)})
	}
	f, err := sim.ParseFaults("all=0.05")
	if err != nil {
		t.Fatal(err)
	}
	f.SlowDelay = 5 * time.Millisecond
	e.sim.SetFaults(f)
	for _, req := range []Request{
		{Op: OpRerun, Rows: reruns, Source: Source{Kind: "csv", Name: "reruns.csv"}},
		{Op: OpRename, Rows: renames, Source: Source{Kind: "csv", Name: "renames.csv"}},
	} {
		for attempt := 1; ; attempt++ {
			p, rep, err := e.act(req)
			t.Logf("%s run %d: %d calls planned, skipped %v; %+v (%v)", req.Op, attempt, len(p.Calls), p.Skipped, rep, err)
			if err == nil && rep.Status == RunOK || attempt == 6 {
				break
			}
			e.sim.Advance(time.Minute)
		}
	}
	e.sim.SetFaults(sim.Faults{})
	after := e.truth()
	for _, r := range reruns {
		if n := rerunsAtSim(after, known, r, tr.jobs[r.JobID]); n != 1 {
			t.Errorf("stream %d: job %d rerun %d times", r.StreamID, r.JobID, n)
		}
	}
	for _, r := range renames {
		if got := after.streams[r.StreamID].Name; got != r.Name {
			t.Errorf("stream %d named %q, want %q", r.StreamID, got, r.Name)
		}
	}
	if n := e.count(`SELECT count(*) FROM action_calls WHERE status IN ('sending', 'planned')`); n != 0 {
		t.Errorf("%d calls left open", n)
	}
	t.Logf("faults hit: %v; calls reconciled: %d", e.sim.Calls().ByStatus, e.count(`SELECT count(*) FROM action_calls WHERE reconciled IS NOT NULL`))
}
