package action

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/datorama"
)

// Issue 14 point 3: after rename, patch, disable, a mapping update, a rerun and a
// process, the store shows each change at once, from the API's answers (no extra GET),
// through the same write path as a crawl: history versions opened and closed by the
// action's runs row, new jobs PENDING with a job_status_changes row each. The next
// crawl, right away and after the jobs ran, ends equal to the simulator's truth, also
// for a stream that ran between the crawl and the rerun (its stored jobs have a gap).
func TestStoreShowsActionsAtOnce(t *testing.T) {
	e, tr := opsEnv(t)
	runID := e.recording()
	ids := tr.enabledStreams(0)
	var rerunJob datorama.Job
	for _, j := range tr.byStr[ids[4]] {
		if datorama.IsFinal(j.Status) {
			rerunJob = j
			break
		}
	}
	// A run the store does not know yet: the rerun's job, stored at once, then sits past a
	// gap in the ids the store has for the stream, which the next crawl must notice.
	e.sim.RunStreams([]int64{ids[4]})
	reqs := []Request{
		{Op: OpRename, Rows: []Row{{Line: 1, StreamID: ids[0], Name: "Renamed At Once"}}},
		{Op: OpDisable, Rows: []Row{{Line: 1, StreamID: ids[1]}}},
		{Op: OpMapping, Rows: []Row{{Line: 1, StreamID: ids[2], Patch: json.RawMessage(`{"drextractNote":"now"}`)}}},
		{Op: OpPatch, Rows: []Row{{Line: 1, StreamID: ids[3], Patch: json.RawMessage(`{"customAttribute3":"at-once"}`)}}},
		{Op: OpRerun, Rows: []Row{{Line: 1, StreamID: ids[4], JobID: rerunJob.ID}}},
		{Op: OpProcess, Rows: []Row{{Line: 1, StreamID: ids[5], StartDate: day("2026-01-01"), EndDate: day("2026-01-15")}}},
	}
	gets, mapGets := e.calls("GET /v1/data-streams/{id}"), e.calls("GET /v1/data-streams/api/{id}/mapping")
	runs := map[Op]int64{}
	for _, req := range reqs {
		_, rep, err := e.act(req)
		if err != nil || rep.Status != RunOK || rep.Sent != 1 || len(rep.Unstored) > 0 {
			t.Fatalf("%s: %v %+v", req.Op, err, rep)
		}
		runs[req.Op] = rep.RunID
	}
	if n := e.calls("GET /v1/data-streams/{id}") - gets; n != 0 {
		t.Errorf("%d GETs of a stream: the answers held the records", n)
	}
	if n := e.calls("GET /v1/data-streams/api/{id}/mapping") - mapGets; n != 1 {
		t.Errorf("%d GETs of a mapping, want 1 (the merge's own read)", n)
	}

	// The streams, right away.
	if got := e.query(`SELECT name FROM streams WHERE id = $1`, ids[0])[0][0]; got != "Renamed At Once" {
		t.Errorf("renamed stream is named %q in the store", got)
	}
	if got := e.query(`SELECT name, run_id FROM streams_history WHERE id = $1 AND is_current`, ids[0]); len(got) != 1 || got[0][0] != "Renamed At Once" || got[0][1] != runID {
		t.Errorf("current history version of the renamed stream: %v, want its new name by run %d", got, runID)
	}
	if n := e.count(`SELECT count(*) FROM streams_history WHERE id = $1 AND NOT is_current AND closed_run_id = $2`, ids[0], runID); n != 1 {
		t.Errorf("%d old versions closed by the action's run, want 1", n)
	}
	if got := e.query(`SELECT enabled FROM streams WHERE id = $1`, ids[1])[0][0]; got != false {
		t.Errorf("disabled stream shows enabled = %v", got)
	}
	if raw := e.query(`SELECT CAST(raw AS VARCHAR) FROM mappings WHERE stream_id = $1`, ids[2])[0][0].(string); !strings.Contains(raw, `"drextractNote":"now"`) {
		t.Errorf("mapping in the store lacks the change: %.200s", raw)
	}
	if n := e.count(`SELECT count(*) FROM mappings_history WHERE stream_id = $1 AND is_current AND run_id = $2`, ids[2], runID); n != 1 {
		t.Errorf("the mapping's new version is not the action run's")
	}
	if raw := e.query(`SELECT CAST(raw AS VARCHAR) FROM streams WHERE id = $1`, ids[3])[0][0].(string); !strings.Contains(raw, `"customAttribute3":"at-once"`) {
		t.Errorf("patched stream lacks the change: %.200s", raw)
	}

	// The new jobs: stored PENDING with their ids, first seen by the action's run (a first
	// sight is not a status transition, so job_status_changes has none yet).
	for _, op := range []Op{OpRerun, OpProcess} {
		var created []any
		if err := e.store.DB().QueryRow(`SELECT flatten(list(job_ids)) FROM action_calls WHERE action_run_id = $1`, runs[op]).Scan(&created); err != nil || len(created) == 0 {
			t.Fatalf("%s: the answer named no jobs (%v)", op, err)
		}
		if op == OpProcess && len(created) != 2 {
			t.Errorf("process of 15 days (two calls on the 10-day grid) created %d jobs, want 2", len(created))
		}
		for _, v := range created {
			id := toInt64(v)
			got := e.query(`SELECT status, run_id FROM jobs WHERE id = $1`, id)
			if len(got) != 1 || got[0][0] != datorama.StatusPending || got[0][1] != runID {
				t.Errorf("%s: job %d in the store: %v, want PENDING by run %d", op, id, got, runID)
			}
			if n := e.count(`SELECT count(*) FROM job_status_changes WHERE job_id = $1`, id); n != 0 {
				t.Errorf("%s: job %d has %d status changes right after it was created, want none", op, id, n)
			}
		}
	}

	// The outcomes of the record changes follow from the answers already.
	if _, err := FollowUp(context.Background(), e.store.DB()); err != nil {
		t.Fatal(err)
	}
	for _, op := range []Op{OpRename, OpDisable, OpMapping, OpPatch} {
		if got := e.query(`SELECT outcome FROM action_items WHERE action_run_id = $1`, runs[op])[0][0]; got != OutcomeSucceeded {
			t.Errorf("%s: outcome %v right after the run, want succeeded", op, got)
		}
	}

	// The next crawl reads what it must: right away, and after the jobs ran.
	e.crawl(false)
	e.assertEqualTruth()
	if n := e.count(`SELECT count(*) FROM streams_history WHERE id = $1`, ids[0]); n != 2 {
		t.Errorf("the renamed stream has %d history versions after the crawl, want 2 (the crawl saw no change)", n)
	}
	e.sim.Advance(3 * time.Hour)
	e.crawl(false)
	e.assertEqualTruth()
	var created []any
	if err := e.store.DB().QueryRow(`SELECT job_ids FROM action_calls WHERE action_run_id = $1`, runs[OpRerun]).Scan(&created); err != nil {
		t.Fatal(err)
	}
	if got := e.query(`SELECT status FROM jobs WHERE id = $1`, toInt64(created[0]))[0][0].(string); !datorama.IsFinal(got) {
		t.Errorf("the rerun job is %s three hours later", got)
	}
}
