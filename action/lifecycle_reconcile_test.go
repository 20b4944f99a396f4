package action

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/sim"
)

// endpointOf is the simulator's route of each operation's write.
var endpointOf = map[Op]string{
	OpDelete:        "DELETE /v1/data-streams/{id}",
	OpCreateStream:  "POST /v1/data-streams",
	OpCreatePattern: "POST /v1/harmonization/patterns",
	OpCreateCalc:    "POST /v1/workspaces/{wsId}/calculated-measurements",
}

// namedAtSim counts the entities op creates that the simulator has under name in ws.
func namedAtSim(t *testing.T, s *sim.Sim, op Op, ws int64, name string) int {
	t.Helper()
	tr := s.Truth()
	var records []json.RawMessage
	switch op {
	case OpCreateStream:
		records = tr.Streams
	case OpCreatePattern, OpCreateCalc:
		m := tr.Patterns
		if op == OpCreateCalc {
			m = tr.CalculatedMeasurements
		}
		if err := json.Unmarshal(m[fmt.Sprint(ws)], &records); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for _, raw := range records {
		var r struct {
			Name        string             `json:"name"`
			WorkspaceID datorama.FlexInt64 `json:"workspaceId"`
		}
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatal(err)
		}
		if r.Name == name && (r.WorkspaceID == 0 || int64(r.WorkspaceID) == ws) {
			n++
		}
	}
	return n
}

// A delete or a creation whose answer is lost is settled at the API, never sent again
// blindly: by reading the stream (404: deleted) or by finding the name in the
// workspace's listing. Three ways to lose it: the process dies after the request reached
// the API, or before it did (the next run settles it), or the answer is lost and the run
// goes on (it settles it at once). Each time the write reached the API exactly once, and
// the store shows it.
func TestLostAnswerOfDeleteOrCreate(t *testing.T) {
	modes := []struct {
		name    string
		reaches bool // the request got to the API
		dies    bool // the run dies with the answer
	}{
		{"dies after the API", true, true},
		{"dies before the API", false, true},
		{"answer lost, run goes on", true, false},
	}
	for _, op := range []Op{OpDelete, OpCreateStream, OpCreatePattern, OpCreateCalc} {
		for _, mode := range modes {
			t.Run(string(op)+"/"+mode.name, func(t *testing.T) {
				e := newEnv(t, sim.Options{Workspaces: 1, Streams: 5, JobsPerStream: 2})
				e.crawl(true)
				e.recording()
				tr := e.truth()
				target := tr.enabledStreams(0)[0]
				ws := int64(tr.streams[target].WorkspaceID)
				req := Request{Op: op, Rows: []Row{{Line: 1, StreamID: target}}, Options: Options{Force: true}}
				if op.Creates() {
					req.Rows = createRows(t, e, ws, "Lost")[op]
				}
				ctx, kill := context.WithCancel(context.Background())
				defer kill()
				e.eng.WrapSender = func(next Sender) Sender {
					return EachCall(func(ctx context.Context, c *Call) (*Answer, error) {
						if mode.reaches {
							if _, err := sendOne(ctx, next, c); err != nil {
								t.Errorf("the write itself: %v", err)
							}
						}
						if mode.dies {
							kill()
							return nil, ctx.Err()
						}
						return nil, fmt.Errorf("%w: the connection broke before the answer", datorama.ErrOutcomeUnknown)
					})
				}
				p, err := e.eng.Prepare(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				rep, err := e.eng.Execute(ctx, p, false, nil)
				if mode.dies {
					if err == nil || rep.Status != RunInterrupted {
						t.Fatalf("first run: %v %+v", err, rep)
					}
					if n := e.count(`SELECT count(*) FROM action_calls WHERE status = 'sending'`); n != 1 {
						t.Fatalf("%d calls left in doubt, want 1", n)
					}
					e.eng.WrapSender = nil
					p2, err := e.eng.Prepare(context.Background(), req)
					if err != nil {
						t.Fatal(err)
					}
					if len(p2.Reconciled) == 0 {
						t.Fatal("the next plan settled nothing")
					}
					wantPlanned := 0
					if !mode.reaches {
						wantPlanned = 1
					}
					if p2.Planned() != wantPlanned {
						t.Errorf("after settling, %d planned (skipped %v), want %d", p2.Planned(), p2.Skipped, wantPlanned)
					}
					if _, err := e.eng.Execute(context.Background(), p2, false, nil); err != nil {
						t.Fatalf("second run: %v", err)
					}
				} else if err != nil || rep.Status != RunOK || rep.Sent != 1 {
					t.Fatalf("run with a lost answer: %v %+v", err, rep)
				}
				var note string
				if err := e.store.DB().QueryRow(`SELECT reconciled FROM action_calls WHERE action_run_id = $1 AND call_no = 1`, rep.RunID).Scan(&note); err != nil {
					t.Fatal(err)
				}
				if n := e.calls(endpointOf[op]); n != 1 {
					t.Errorf("%s reached the API %d times, want once (%s)", op, n, note)
				}
				if n := e.count(`SELECT count(*) FROM action_calls WHERE status IN ('sending', 'planned')`); n != 0 {
					t.Errorf("%d calls still open", n)
				}
				if op == OpDelete {
					if _, ok := e.truth().streams[target]; ok {
						t.Errorf("stream %d is still at the simulator", target)
					}
					if got := e.query(`SELECT is_deleted FROM streams WHERE id = $1`, target)[0][0]; got != true {
						t.Errorf("the store shows stream %d not deleted (%s)", target, note)
					}
					return
				}
				name := bodyName(req.Rows[0].Body)
				if n := namedAtSim(t, e.sim, op, ws, name); n != 1 {
					t.Errorf("%d entities named %q at the simulator, want 1 (%s)", n, name, note)
				}
				ids := e.query(`SELECT created_id FROM action_items WHERE created_id IS NOT NULL`)
				if len(ids) != 1 {
					t.Fatalf("%d items with a created id, want 1 (%s)", len(ids), note)
				}
				if n := e.count(`SELECT count(*) FROM `+entityTables[op]+` WHERE id = $1 AND name = $2 AND NOT is_deleted`, ids[0][0], name); n != 1 {
					t.Errorf("the created %s %v is not in the store (%s)", op.entity(), ids[0][0], note)
				}
			})
		}
	}
}
