package run

import (
	"context"
	"database/sql"
	"encoding/json"
	"testing"

	"github.com/drextract/drextract/action"
	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
	"github.com/drextract/drextract/sim"
)

// count runs a counting query on the env's store.
func (e *env) count(query string, args ...any) int {
	e.t.Helper()
	var n sql.NullInt64
	if err := e.store.DB().QueryRow(query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return int(n.Int64)
}

// checkRunCalls asserts that run id's API attempts are api_calls rows, as many as the
// simulator saw (seen) and as its runs row and its Result say.
func (e *env) checkRunCalls(what string, res *Result, seen int) {
	e.t.Helper()
	rows := e.count(`SELECT count(*) FROM api_calls WHERE run_id = $1`, res.RunID)
	recorded := e.count(`SELECT calls FROM runs WHERE id = $1`, res.RunID)
	if seen == 0 || rows != seen || res.Calls != seen || recorded != seen {
		e.t.Errorf("%s (run %d): the API saw %d calls; api_calls has %d rows, runs.calls %d, the result %d",
			what, res.RunID, seen, rows, recorded, res.Calls)
	}
}

// TestEveryRunKindLandsItsCalls: every attempt of a crawl (page-size probes included), an
// action, a report and a crawl again is an api_calls row of its run, as many as the API
// saw, each once, numbered in order, with the published copy holding them too.
func TestEveryRunKindLandsItsCalls(t *testing.T) {
	// Pages of at most 4 jobs while 1,000 are asked for: the crawl probes the cap.
	e := newEnvWith(t, sim.Options{Seed: 12, Workspaces: 2, Streams: 10, JobsPerStream: 9, MaxPageSize: 4}, nil)
	ctx := context.Background()
	step := func(what string, do func() *Result) *Result {
		t.Helper()
		before := e.sim.Calls().Total
		res := do()
		if res.Status != load.RunOK {
			t.Fatalf("%s: %s %v", what, res.Status, res.Err)
		}
		e.checkRunCalls(what, res, e.sim.Calls().Total-before)
		return res
	}

	crawl := step("full crawl", func() *Result { return e.runner.Extract(ctx, e.store, ExtractOptions{Full: true}) })
	if crawl.Crawl.ProbeCalls == 0 {
		t.Errorf("the crawl made no page-size probe; the test needs some")
	}
	var disable, mapping int64
	if err := e.store.DB().QueryRow(`SELECT min(id), max(id) FROM streams WHERE enabled AND NOT is_deleted`).Scan(&disable, &mapping); err != nil {
		t.Fatal(err)
	}
	act := func(op action.Op, row action.Row) *Result {
		return e.runner.Action(ctx, e.store, ActionOptions{Priority: ratelimit.Interactive, Request: action.Request{
			Op: op, Rows: []action.Row{row}, Source: action.Source{Kind: "command", Name: string(op)}, StartedBy: "cli:test"}})
	}
	step("disable", func() *Result { return act(action.OpDisable, action.Row{Line: 1, StreamID: disable}) })
	step("mapping", func() *Result {
		return act(action.OpMapping, action.Row{Line: 1, StreamID: mapping, Patch: json.RawMessage(`{"note":"audited"}`)})
	})
	def := config.Report{Name: "rows", Workspace: e.firstWorkspace(), Table: "report_rows",
		DateRange: config.DateRange{LastDays: 3}, Dimensions: []string{"Data Stream"},
		Measurements: []string{"Data Stream Total Rows"}, Mode: config.ModeReplace, Timezone: "UTC"}
	step("report", func() *Result { return e.runner.Report(ctx, e.store, ReportOptions{Definition: def}) })
	step("incremental crawl", func() *Result { return e.runner.Extract(ctx, e.store, ExtractOptions{}) })

	total := e.sim.Calls().Total
	if rows, attempts, maxID := e.count(`SELECT count(*) FROM api_calls`), e.count(`SELECT count(DISTINCT attempt_id) FROM api_calls`),
		e.count(`SELECT max(id) FROM api_calls`); rows != total || attempts != total || maxID != total {
		t.Errorf("api_calls: %d rows, %d distinct attempts, ids up to %d; the API saw %d calls", rows, attempts, maxID, total)
	}
	if n := e.count(`SELECT count(*) FROM api_calls WHERE run_id IS NULL OR run_id NOT IN (SELECT id FROM runs)`); n != 0 {
		t.Errorf("%d api_calls rows belong to no run", n)
	}
	if got := e.servingCalls(); got != total {
		t.Errorf("serving.duckdb holds %d api_calls rows, want %d", got, total)
	}
}

// servingCalls counts the api_calls rows of serving.duckdb.
func (e *env) servingCalls() int {
	e.t.Helper()
	ro, err := load.OpenReadOnly(context.Background(), e.runner.Config.Store.ServingPath())
	if err != nil {
		e.t.Fatal(err)
	}
	defer ro.Close()
	var n int
	if err := ro.DB().QueryRow(`SELECT count(*) FROM api_calls`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// TestActionCallsJoinTheirAttempts: each action_calls row joins to the api_calls rows of
// the requests that carried it out (a mapping change is a GET and a PUT), with status,
// latency and rate headers; the action's other reads belong to its run but to no call.
func TestActionCallsJoinTheirAttempts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if res := e.runner.Extract(ctx, e.store, ExtractOptions{}); res.Status != load.RunOK {
		t.Fatalf("crawl: %+v", res)
	}
	var rows []action.Row
	ids, err := e.store.DB().Query(`SELECT id FROM streams WHERE enabled AND NOT is_deleted ORDER BY id LIMIT 3`)
	if err != nil {
		t.Fatal(err)
	}
	for ids.Next() {
		var id int64
		if err := ids.Scan(&id); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, action.Row{Line: len(rows) + 1, StreamID: id, Patch: json.RawMessage(`{"note":"joined"}`)})
	}
	ids.Close()
	res := e.runner.Action(ctx, e.store, ActionOptions{Priority: ratelimit.Interactive, Request: action.Request{
		Op: action.OpMapping, Rows: rows, Source: action.Source{Kind: "command", Name: "mapping"}}})
	if res.Status != load.RunOK || res.Action.Report == nil || res.Action.Report.CallsSent != len(rows) {
		t.Fatalf("action: %s %v %+v", res.Status, res.Err, res.Action.Report)
	}
	q, err := e.store.DB().Query(`
		SELECT c.call_no, c.status, string_agg(a.method || ' ' || a.status, ', ' ORDER BY a.id),
		       bool_and(a.latency_ms IS NOT NULL AND a.platform_remaining IS NOT NULL AND a.daily_remaining IS NOT NULL
		                AND a.run_id = $2)
		FROM action_calls c LEFT JOIN api_calls a ON a.action_run_id = c.action_run_id AND a.action_call_no = c.call_no
		WHERE c.action_run_id = $1 GROUP BY ALL ORDER BY c.call_no`, res.Action.Report.RunID, res.RunID)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	n := 0
	for q.Next() {
		var no int
		var status string
		var attempts sql.NullString
		var complete sql.NullBool
		if err := q.Scan(&no, &status, &attempts, &complete); err != nil {
			t.Fatal(err)
		}
		n++
		if status != "sent" || attempts.String != "GET 200, PUT 200" || !complete.Bool {
			t.Errorf("action call %d (%s): attempts %q, status, latency, rate headers and run all there: %v",
				no, status, attempts.String, complete.Bool)
		}
	}
	if n != len(rows) {
		t.Errorf("%d action calls, want %d", n, len(rows))
	}
	tagged := e.count(`SELECT count(*) FROM api_calls WHERE action_run_id IS NOT NULL`)
	if tagged != 2*len(rows) {
		t.Errorf("%d api_calls rows name an action call, want %d", tagged, 2*len(rows))
	}
}
