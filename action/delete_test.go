package action

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// Issue 14 point 4, delete: a plan deleting more than --max-delete streams, or a stream
// that ran in the last 24 h without --force, is refused before any call. Once the API
// confirms a delete, the store marks the stream, its jobs and its mapping deleted, the
// stream's history closed by the action's runs row, and the follow-up calls it done; a
// second plan skips it; the next crawl ends equal to the truth.
func TestDeleteGuardedAndStored(t *testing.T) {
	e, tr := opsEnv(t)
	runID := e.recording()
	all := sortedKeys(tr.streams)
	ctx := context.Background()
	deletes := func(ids ...int64) []Row {
		var rows []Row
		for i, id := range ids {
			rows = append(rows, Row{Line: i + 1, StreamID: id})
		}
		return rows
	}

	// Eleven streams is one more than the default limit.
	p, err := e.eng.Prepare(ctx, Request{Op: OpDelete, Rows: deletes(all[:11]...), Options: Options{Force: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(); !errors.Is(err, ErrTooManyDeletes) || !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), "11 streams to delete, --max-delete is 10") {
		t.Errorf("11 deletes: %v", err)
	}
	if _, err := e.eng.Execute(ctx, p, false, nil); !errors.Is(err, ErrTooManyDeletes) {
		t.Errorf("executing 11 deletes: %v", err)
	}
	p.Options.MaxDelete = -1
	if err := p.Check(); err != nil {
		t.Errorf("11 deletes without a limit: %v", err)
	}

	// A stream that ran in the last 24 h (as the store knows it) needs --force.
	ids := tr.enabledStreams(0)
	recent := e.query(`SELECT count(*) FROM jobs WHERE stream_id = $1 AND greatest(start_execution_time, end_execution_time) >= $2`,
		ids[0], e.clk.Now().Add(-RecentRun))[0][0].(int64)
	if recent == 0 {
		t.Fatalf("setup: stream %d did not run in the last 24 h", ids[0])
	}
	p, err = e.eng.Prepare(ctx, Request{Op: OpDelete, Rows: deletes(ids[0])})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Check(); !errors.Is(err, ErrNeedsForce) || !strings.Contains(err.Error(), itoa(ids[0])) {
		t.Errorf("deleting a stream that just ran without --force: %v", err)
	}
	if n := e.calls("DELETE /v1/data-streams/{id}"); n != 0 {
		t.Fatalf("%d deletes sent by refused plans", n)
	}

	// With --force: sent, confirmed, and marked in the store at once.
	_, rep, err := e.act(Request{Op: OpDelete, Rows: deletes(ids[0], ids[1]), Options: Options{Force: true}})
	if err != nil || rep.Status != RunOK || rep.Sent != 2 || len(rep.Unstored) > 0 {
		t.Fatalf("delete --force: %v %+v", err, rep)
	}
	if n := e.calls("DELETE /v1/data-streams/{id}"); n != 2 {
		t.Errorf("%d DELETE calls, want 2", n)
	}
	after := e.truth()
	for _, id := range ids[:2] {
		if _, ok := after.streams[id]; ok {
			t.Errorf("stream %d is still at the simulator", id)
		}
		if got := e.query(`SELECT is_deleted, run_id FROM streams WHERE id = $1`, id)[0]; got[0] != true || got[1] != runID {
			t.Errorf("stream %d in the store: deleted %v by run %v", id, got[0], got[1])
		}
		if n := e.count(`SELECT count(*) FROM jobs WHERE stream_id = $1 AND NOT is_deleted`, id); n != 0 {
			t.Errorf("stream %d: %d jobs not marked deleted", id, n)
		}
		if n := e.count(`SELECT count(*) FROM mappings WHERE stream_id = $1 AND NOT is_deleted`, id); n != 0 {
			t.Errorf("stream %d: mapping not marked deleted", id)
		}
		if n := e.count(`SELECT count(*) FROM streams_history WHERE id = $1 AND is_current`, id); n != 0 {
			t.Errorf("stream %d: its history is still current", id)
		}
		if n := e.count(`SELECT count(*) FROM streams_history WHERE id = $1 AND closed_run_id = $2`, id, runID); n != 1 {
			t.Errorf("stream %d: no history version closed by the action's run", id)
		}
	}
	if n := e.count(`SELECT count(*) FROM streams WHERE is_deleted`); n != 2 {
		t.Errorf("%d streams marked deleted, want exactly the 2", n)
	}
	if _, err := FollowUp(ctx, e.store.DB()); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM action_items WHERE action_run_id = $1 AND outcome = 'succeeded'`, rep.RunID); n != 2 {
		t.Errorf("%d deletes followed up as succeeded, want 2", n)
	}
	p, err = e.eng.Prepare(ctx, Request{Op: OpDelete, Rows: deletes(ids[0]), Options: Options{Force: true}})
	if err != nil || p.Planned() != 0 || p.Skipped["stream deleted"] != 1 {
		t.Errorf("deleting it again: %v, skipped %v", err, p.Skipped)
	}
	e.crawl(false)
	e.assertEqualTruth()

	// Three days on, by the store the next stream last ran long ago: no --force needed.
	e.sim.Advance(72 * time.Hour)
	var quiet int64
	for _, id := range ids[2:] {
		if e.count(`SELECT count(*) FROM jobs WHERE stream_id = $1 AND status NOT IN ('SUCCESS', 'FAILURE')`, id) == 0 {
			quiet = id
			break
		}
	}
	if quiet == 0 {
		t.Fatal("setup: every stream has a job pending in the store")
	}
	_, rep, err = e.act(Request{Op: OpDelete, Rows: deletes(quiet)})
	if err != nil || rep.Sent != 1 {
		t.Fatalf("deleting a stream that has not run for days: %v %+v", err, rep)
	}
	e.crawl(false)
	e.assertEqualTruth()
}
