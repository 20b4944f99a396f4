package action

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/sim"
)

// Issue 14 point 5: `rerun --job J` without its stream. A job the store has needs no
// call; one it lacks (the stream ran after the last crawl) costs one lookup, which is
// stored too, and the rerun goes to the right stream. A dry run, which calls no API,
// refuses such a job and says how to go on; a job the API does not know is refused.
func TestRerunJobWithoutStream(t *testing.T) {
	e := newEnv(t, sim.Options{Workspaces: 1, Streams: 5, JobsPerStream: 3})
	e.crawl(true)
	runID := e.recording()
	tr := e.truth()
	sid := tr.enabledStreams(0)[1]
	known := maxJobIDs(tr)
	e.sim.RunStreams([]int64{sid})
	e.sim.Advance(3 * time.Hour) // the new run finishes
	var fresh datorama.Job
	for _, j := range e.truth().byStr[sid] {
		if j.ID > known[sid] {
			fresh = j
		}
	}
	if fresh.ID == 0 || !datorama.IsFinal(fresh.Status) {
		t.Fatalf("setup: no finished new job on stream %d (%+v)", sid, fresh)
	}
	if n := e.count(`SELECT count(*) FROM jobs WHERE id = $1`, fresh.ID); n != 0 {
		t.Fatal("setup: the store already has the new job")
	}
	ctx := context.Background()
	req := Request{Op: OpRerun, Rows: []Row{{Line: 1, JobID: fresh.ID}}, Source: Source{Kind: "command", Name: "rerun"}}

	dry := &Engine{DB: e.store.DB(), Clock: e.clk, Logger: quietLogger()}
	if _, err := dry.Prepare(ctx, req); !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "--yes") {
		t.Errorf("dry run of a job the store lacks: %v", err)
	}
	const lookup = "GET /v1/data-stream-stat/{statId}"
	if n := e.calls(lookup); n != 0 {
		t.Fatalf("the dry run looked the job up (%d calls)", n)
	}

	p, err := e.eng.Prepare(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if n := e.calls(lookup); n != 1 {
		t.Errorf("%d lookups, want 1", n)
	}
	if p.Planned() != 1 || len(p.Calls) != 1 || p.Calls[0].StreamIDs[0] != sid {
		t.Fatalf("plan: %d planned, calls %+v; want one rerun on stream %d", p.Planned(), p.Calls, sid)
	}
	if got := e.query(`SELECT stream_id, status, run_id FROM jobs WHERE id = $1`, fresh.ID); len(got) != 1 || got[0][0] != sid || got[0][1] != fresh.Status || got[0][2] != runID {
		t.Errorf("the looked-up job in the store: %v", got)
	}
	rep, err := e.eng.Execute(ctx, p, false, nil)
	if err != nil || rep.Sent != 1 {
		t.Fatalf("execute: %v %+v", err, rep)
	}
	if n := rerunsAtSim(e.truth(), map[int64]int64{sid: fresh.ID}, Row{StreamID: sid}, fresh); n != 1 {
		t.Errorf("job %d rerun %d times at the simulator", fresh.ID, n)
	}

	// Now in the store: a second plan of it needs no lookup (and is in its cooldown).
	p, err = e.eng.Prepare(ctx, req)
	if err != nil || e.calls(lookup) != 1 || p.Skipped["cooldown"] != 1 {
		t.Errorf("again: %v, %d lookups, skipped %v", err, e.calls(lookup), p.Skipped)
	}

	_, err = e.eng.Prepare(ctx, Request{Op: OpRerun, Rows: []Row{{Line: 1, JobID: 999}}, Source: Source{Kind: "command", Name: "rerun"}})
	if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "job 999") {
		t.Errorf("an unknown job: %v", err)
	}
}
