package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
)

// Every switchable unknown, away from its default.
func TestSwitchableUnknowns(t *testing.T) {
	t.Run("lastRunStatus string", func(t *testing.T) {
		h := newHarness(t, Options{LastRunStatus: "string"})
		for _, st := range decodeAll[tStream](t, h.sim.Truth().Streams) {
			var v any
			_ = json.Unmarshal(st.LastRunStatus, &v)
			if s, ok := v.(string); v != nil && (!ok || (s != "SUCCESS" && s != "FAILURE")) {
				t.Fatalf("lastRunStatus %s, want a stat status string", st.LastRunStatus)
			}
		}
		def := newHarness(t, Options{})
		st := decodeAll[tStream](t, def.sim.Truth().Streams)[0]
		if string(st.LastRunStatus) != "true" && string(st.LastRunStatus) != "false" {
			t.Errorf("default lastRunStatus %s, want a boolean", st.LastRunStatus)
		}
	})
	t.Run("error body text", func(t *testing.T) {
		h := newHarness(t, Options{ErrorBody: "text"})
		r := h.do("GET", "/v1/data-streams/1", nil)
		if r.status != 404 || json.Valid(r.body) || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
			t.Errorf("got %d %s %q", r.status, r.header.Get("Content-Type"), r.body)
		}
		var e struct{ Errors []string }
		def := newHarness(t, Options{})
		def.ok(def.do("GET", "/v1/data-streams/1", nil), 404, &e)
		if len(e.Errors) != 1 || !strings.Contains(e.Errors[0], "not found") {
			t.Errorf("default error body %+v", e)
		}
	})
	t.Run("no query-batch", func(t *testing.T) {
		h := newHarness(t, Options{QueryBatch: Bool(false)})
		ws := decodeAll[tWorkspace](t, h.sim.Truth().Workspaces)[0].ID
		h.ok(h.do("POST", "/v1/query-batch", []any{queryBody(ws)}), 404, nil)
		h.ok(h.do("POST", "/v1/query", queryBody(ws)), 200, nil)
	})
	t.Run("rerun reuses ids", func(t *testing.T) {
		h := newHarness(t, Options{RerunNewIDs: Bool(false)})
		st := firstStream(t, h.sim, apiStream)
		var done tJob
		for _, j := range decodeAll[tJob](t, h.sim.Truth().Jobs) {
			if j.DataStreamID == st.ID && j.Status != "PENDING" && j.Status != "IN_PROGRESS" {
				done = j
			}
		}
		before := len(h.sim.Truth().Jobs)
		var rerun []tJob
		h.ok(h.do("POST", fmt.Sprintf("/v1/data-streams/api/%d/rerun", st.ID), []int64{done.ID}), 200, &rerun)
		if len(rerun) != 1 || rerun[0].ID != done.ID || rerun[0].Status != "PENDING" || rerun[0].End != nil {
			t.Fatalf("rerun %+v of %+v: want the same id back in PENDING", rerun, done)
		}
		if after := len(h.sim.Truth().Jobs); after != before {
			t.Errorf("%d jobs before, %d after: a reused-id rerun must not add jobs", before, after)
		}
		h.clk.Advance(40 * time.Hour)
		var again tJob
		h.get(fmt.Sprintf("/v1/data-stream-stat/%d", done.ID), &again)
		if again.Status != "SUCCESS" && again.Status != "FAILURE" || *again.Start < start.UnixMilli() {
			t.Errorf("rerun job %+v did not run again", again)
		}
		if h.sim.Calls().Notes["rerun_reused_ids"] != 1 {
			t.Error("reused-id rerun not noted")
		}
	})
	t.Run("bulk status cap", func(t *testing.T) {
		h := newHarness(t, Options{BulkStatusMaxIDs: 2})
		ws := decodeAll[tWorkspace](t, h.sim.Truth().Workspaces)[0].ID
		h.ok(h.do("GET", fmt.Sprintf("/v1/workspaces/%d/data-streams/status/bulk?ids=1,2,3", ws), nil), 400, nil)
		h.ok(h.do("GET", fmt.Sprintf("/v1/workspaces/%d/data-streams/status/bulk?ids=1,2", ws), nil), 200, nil)
	})
	t.Run("viewer tokens get nulls", func(t *testing.T) {
		h := newHarness(t, Options{Tokens: 2, ViewerTokens: true})
		ws := h.sim.Truth().TokenWorkspaces["2"][0]
		var as1, as2 []map[string]json.RawMessage
		h.get(fmt.Sprintf("/v1/workspaces/%d/data-streams", ws), &as1)
		h.ok(h.do("GET", fmt.Sprintf("/v1/workspaces/%d/data-streams", ws), nil, withToken(h.sim.Tokens()[1])), 200, &as2)
		for _, k := range []string{"config", "dataSourceAuthenticationId", "createUser"} {
			if string(as2[0][k]) != "null" || string(as1[0][k]) == "null" {
				t.Errorf("%s: admin %s, viewer %s", k, as1[0][k], as2[0][k])
			}
		}
	})
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, ""},
		{Options{StatsOrder: "random"}, "stats order"},
		{Options{LastRunStatus: "int"}, "lastRunStatus"},
		{Options{ErrorBody: "xml"}, "error body"},
		{Options{Streams: -1}, "streams"},
		{Options{Faults: Faults{Rates: map[string]float64{"boom": 1}}}, "boom"},
	} {
		err := tc.o.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.o, err, tc.want)
		}
	}
}

func postSim(t *testing.T, h *harness, path, body string) (int, string) {
	t.Helper()
	res, err := http.Post(h.base+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// The controls need no token, are never limited or counted, and drive the account.
func TestControls(t *testing.T) {
	h := newHarness(t, Options{PlatformLimit: 1})
	h.ok(h.do("GET", "/v1/workspaces", nil), 200, nil)
	var tr Truth
	h.ok(h.do("GET", "/_sim/truth", nil, withToken("")), 200, &tr)
	if len(tr.Streams) != 30 || len(tr.Jobs) == 0 || len(tr.DailyRows) == 0 || !tr.Now.Equal(start) {
		t.Fatalf("truth over HTTP: %d streams, %d jobs, now %v", len(tr.Streams), len(tr.Jobs), tr.Now)
	}
	var calls CallStats
	h.ok(h.do("GET", "/_sim/calls", nil, withToken("")), 200, &calls)
	if calls.Total != 1 || calls.ByEndpoint["GET /v1/workspaces"] != 1 {
		t.Errorf("calls %+v: the controls must not count", calls)
	}
	if code, body := postSim(t, h, "/_sim/advance?by=90m", ""); code != 200 || !strings.Contains(body, start.Add(90*time.Minute).UTC().Format(time.RFC3339)) {
		t.Errorf("advance: %d %s", code, body)
	}
	if code, _ := postSim(t, h, "/_sim/advance?by=soon", ""); code != 400 {
		t.Errorf("bad advance: %d", code)
	}
	if code, body := postSim(t, h, "/_sim/faults", "http503=1"); code != 200 || !strings.Contains(body, "http503=1") {
		t.Errorf("set faults: %d %s", code, body)
	}
	h.ok(h.do("GET", "/v1/workspaces", nil), 503, nil)
	if code, _ := postSim(t, h, "/_sim/faults", "nonsense=1"); code != 400 {
		t.Errorf("bad faults accepted: %d", code)
	}
	postSim(t, h, "/_sim/faults", "")
	h.clk.Advance(time.Minute)
	h.ok(h.do("GET", "/v1/workspaces", nil), 200, nil)

	st := decodeAll[tStream](t, tr.Streams)[0]
	jobsOf := func() int {
		n := 0
		for _, j := range decodeAll[tJob](t, h.sim.Truth().Jobs) {
			if j.DataStreamID == st.ID {
				n++
			}
		}
		return n
	}
	n := jobsOf()
	if code, body := postSim(t, h, fmt.Sprintf("/_sim/run?ids=%d", st.ID), ""); code != 200 || jobsOf() != n+1 {
		t.Errorf("run: %d %s; jobs %d → %d", code, body, n, jobsOf())
	}
	for _, tc := range []struct {
		body string
		want int
	}{
		{fmt.Sprintf(`{"op":"rename","streamId":%d,"name":"Via control"}`, st.ID), 200},
		{fmt.Sprintf(`{"op":"outcome","streamId":%d,"value":"fail"}`, st.ID), 200},
		{fmt.Sprintf(`{"op":"config","streamId":%d,"key":"account_id","value":"42"}`, st.ID), 200},
		{fmt.Sprintf(`{"op":"add","workspaceId":%d,"dataSource":"Bing Ads","name":"Added"}`, st.WorkspaceID), 200},
		{fmt.Sprintf(`{"op":"process","streamId":%d,"startDate":"2024-01-01","endDate":"2024-01-15"}`, st.ID), 200},
		{fmt.Sprintf(`{"op":"disable","streamId":%d}`, st.ID), 200},
		{`{"op":"explode"}`, 400},
		{`{"op":"rename","streamId":1}`, 400},
	} {
		if code, body := postSim(t, h, "/_sim/mutate", tc.body); code != tc.want {
			t.Errorf("mutate %s: %d %s", tc.body, code, body)
		}
	}
	var after tStream
	h.clk.Advance(time.Minute)
	h.get(fmt.Sprintf("/v1/data-streams/%d", st.ID), &after)
	if after.Name != "Via control" || after.Enabled || !strings.Contains(string(after.Config), `"account_id":"42"`) || after.UpdateTime <= st.UpdateTime {
		t.Errorf("after mutations: %+v", after)
	}
	// A real clock cannot be advanced.
	real := New(Options{Seed: 1, Clock: clock.Real{}, Streams: 3})
	rec := httptest.NewRecorder()
	real.ServeHTTP(rec, httptest.NewRequest("POST", "/_sim/advance?by=1h", nil))
	if rec.Code != http.StatusConflict {
		t.Errorf("advancing the real clock: %d", rec.Code)
	}
}
