package action

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// createRows is one creation of each kind in workspace ws, named with suffix.
func createRows(t *testing.T, e *env, ws int64, suffix string) map[Op][]Row {
	t.Helper()
	hd := e.query(`SELECT id FROM harmonized_dimensions WHERE workspace_id = $1 AND NOT is_deleted ORDER BY id LIMIT 1`, ws)
	if len(hd) == 0 {
		t.Fatalf("setup: workspace %d has no harmonized dimension", ws)
	}
	body := func(s string) json.RawMessage {
		b, err := ParseBody(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return map[Op][]Row{
		OpCreateStream: {{Line: 1, WorkspaceID: ws, Body: body(`{"name":"GA - Site ` + suffix + `","dataSourceId":412,"config":{"account_id":"77"}}`)}},
		OpCreatePattern: {{Line: 1, WorkspaceID: ws, Body: body(fmt.Sprintf(
			`{"name":"Pattern %s","harmonizedDimensionId":%d,"sourceDimension":"Campaign Name","expression":"^X","value":"X"}`, suffix, hd[0][0]))}},
		OpCreateCalc: {{Line: 1, WorkspaceID: ws, Body: body(`{"name":"Cost per thing ` + suffix + `","formula":"Cost / Clicks"}`)}},
	}
}

// Issue 14 point 4, create: a stream, a pattern and a calculated measurement are created
// from their JSON bodies (the workspace added), one call each; the new id is in the
// audit and the entity in the store at once; planning the same again skips it; the next
// crawl ends equal to the truth.
func TestCreateStoredAndNotRepeated(t *testing.T) {
	e, tr := opsEnv(t)
	e.recording()
	ws := int64(tr.streams[tr.enabledStreams(0)[0]].WorkspaceID)
	ctx := context.Background()
	for _, op := range []Op{OpCreateStream, OpCreatePattern, OpCreateCalc} {
		rows := createRows(t, e, ws, "A")[op]
		p, rep, err := e.act(Request{Op: op, Rows: rows, Source: Source{Kind: "command", Name: "create"}})
		if err != nil || rep.Status != RunOK || rep.Sent != 1 || len(rep.Unstored) > 0 {
			t.Fatalf("%s: %v %+v", op, err, rep)
		}
		if sent := string(p.Calls[0].Body); !strings.HasPrefix(sent, fmt.Sprintf(`{"workspaceId":%d,"name":`, ws)) {
			t.Errorf("%s sent %s: want the body with its workspace in front", op, sent)
		}
		created := e.query(`SELECT created_id, name FROM action_items WHERE action_run_id = $1`, rep.RunID)[0]
		id, ok := created[0].(int64)
		if !ok || id == 0 {
			t.Fatalf("%s: no created id in the audit (%v)", op, created)
		}
		table := entityTables[op]
		if got := e.query(`SELECT name, workspace_id FROM `+table+` WHERE id = $1 AND NOT is_deleted`, id); len(got) != 1 || got[0][0] != created[1] || got[0][1] != ws {
			t.Errorf("%s %d in the store: %v, want %v in workspace %d", op, id, got, created[1], ws)
		}
		// The same again: skipped, nothing sent.
		p, err = e.eng.Prepare(ctx, Request{Op: op, Rows: rows, Source: Source{Kind: "command", Name: "create"}})
		if err != nil || p.Planned() != 0 || p.Skipped["exists"] != 1 {
			t.Errorf("%s again: %v, planned %d, skipped %v", op, err, p.Planned(), p.Skipped)
		}
	}
	for ep, want := range map[string]int{
		"POST /v1/data-streams": 1, "POST /v1/harmonization/patterns": 1, "POST /v1/workspaces/{wsId}/calculated-measurements": 1,
	} {
		if got := e.calls(ep); got != want {
			t.Errorf("%s: %d calls, want %d", ep, got, want)
		}
	}
	if _, err := FollowUp(ctx, e.store.DB()); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM action_items WHERE operation LIKE 'create-%' AND outcome = 'succeeded' AND outcome_detail LIKE 'created id %'`); n != 3 {
		t.Errorf("%d creations followed up as succeeded, want 3", n)
	}
	e.crawl(false)
	e.assertEqualTruth()
	e.sim.Advance(26 * time.Hour) // the new stream's first scheduled runs
	e.crawl(false)
	e.assertEqualTruth()
}
