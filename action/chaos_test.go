package action

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/drextract/drextract/sim"
)

// Reruns, renames, deletes and creations against a simulator that fails 5% of requests
// in every way it can (5xx before the work, resets and garbled bodies after it, 429
// storms, …), with the store written back as the run goes. Calls whose outcome is lost
// are settled from the API; those that did not take effect are sent again by the next
// run of the same input. In the end every job is rerun exactly once, every rename is
// there, every stream to delete is gone, every entity to create exists exactly once, no
// call is left in doubt, and the next crawl ends equal to the truth. The faults must
// have hit the actions' own calls, or the test proves nothing.
func TestActionsUnderFaults(t *testing.T) {
	e := newEnv(t, sim.Options{Workspaces: 1, Streams: 30, JobsPerStream: 4})
	e.crawl(true)
	e.recording()
	tr := e.truth()
	known := maxJobIDs(tr)
	reruns := rerunRows(t, tr, 20)
	enabled := tr.enabledStreams(0)
	var renames []Row
	for i, sid := range enabled[:20] {
		renames = append(renames, Row{Line: i + 2, StreamID: sid, Name: fmt.Sprintf("Chaos %02d", i)})
	}
	var deletes []Row
	for _, sid := range sortedKeys(tr.streams) {
		if !slices.Contains(enabled[:20], sid) && !slices.ContainsFunc(reruns, func(r Row) bool { return r.StreamID == sid }) && len(deletes) < 4 {
			deletes = append(deletes, Row{Line: len(deletes) + 2, StreamID: sid})
		}
	}
	ws := int64(tr.streams[enabled[0]].WorkspaceID)
	creations := map[Op][]Row{}
	for i := range 3 {
		for op, rows := range createRows(t, e, ws, fmt.Sprintf("Chaos %d", i)) {
			rows[0].Line = i + 2
			creations[op] = append(creations[op], rows[0])
		}
	}
	f, err := sim.ParseFaults("all=0.05")
	if err != nil {
		t.Fatal(err)
	}
	f.SlowDelay = 5 * time.Millisecond
	e.sim.SetFaults(f)
	reqs := []Request{
		{Op: OpRerun, Rows: reruns, Source: Source{Kind: "csv", Name: "reruns.csv"}},
		{Op: OpRename, Rows: renames, Source: Source{Kind: "csv", Name: "renames.csv"}},
		{Op: OpDelete, Rows: deletes, Source: Source{Kind: "csv", Name: "deletes.csv"}, Options: Options{Force: true}},
	}
	for _, op := range []Op{OpCreateStream, OpCreatePattern, OpCreateCalc} {
		reqs = append(reqs, Request{Op: op, Rows: creations[op], Source: Source{Kind: "csv", Name: string(op) + ".csv"}})
	}
	for _, req := range reqs {
		for attempt := 1; ; attempt++ {
			p, rep, err := e.act(req)
			t.Logf("%s run %d: %d calls planned, skipped %v; %+v (%v)", req.Op, attempt, len(p.Calls), p.Skipped, rep, err)
			if err == nil && rep.Status == RunOK || attempt == 6 {
				break
			}
			e.sim.Advance(time.Minute)
		}
	}
	faults := e.sim.Calls().Faults
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
	for _, r := range deletes {
		if _, ok := after.streams[r.StreamID]; ok {
			t.Errorf("stream %d was not deleted", r.StreamID)
		}
	}
	for op, rows := range creations {
		for _, r := range rows {
			if n := namedAtSim(t, e.sim, op, ws, bodyName(r.Body)); n != 1 {
				t.Errorf("%d %ss named %q at the simulator, want 1", n, op.entity(), bodyName(r.Body))
			}
		}
	}
	if n := e.count(`SELECT count(*) FROM action_calls WHERE status IN ('sending', 'planned')`); n != 0 {
		t.Errorf("%d calls left open", n)
	}
	total := 0
	for _, n := range faults {
		total += n
	}
	hit := e.count(`SELECT count(*) FROM action_calls WHERE status = 'failed' OR reconciled IS NOT NULL`)
	t.Logf("faults: %v; action calls that failed or were settled at the API: %d", faults, hit)
	if total == 0 || hit == 0 {
		t.Fatalf("%d faults fired, %d action calls failed or were reconciled: the faults missed the actions", total, hit)
	}
	e.crawl(false)
	e.assertEqualTruth()
}
