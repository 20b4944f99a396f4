package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// waitFor polls cond until it holds; the deadline only bounds a hang.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestParseFaults(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    map[string]float64
		slow    time.Duration
		wantErr string
	}{
		{in: "", want: map[string]float64{}},
		{in: "http500=0.02", want: map[string]float64{"http500": 0.02}},
		{in: " http500=0.02 , reset=0.5 ", want: map[string]float64{"http500": 0.02, "reset": 0.5}},
		{in: "http500=0.02,all=0.01,slowdelay=300ms", slow: 300 * time.Millisecond, want: map[string]float64{
			"http500": 0.02, "http502": 0.01, "http503": 0.01, "slow": 0.01, "reset": 0.01, "truncated": 0.01,
			"malformed": 0.01, "html": 0.01, "storm429": 0.01, "repeat": 0.01, "emptypage": 0.01}},
		{in: "all=0.1,queryerror=1", want: map[string]float64{
			"http500": 0.1, "http502": 0.1, "http503": 0.1, "slow": 0.1, "reset": 0.1, "truncated": 0.1,
			"malformed": 0.1, "html": 0.1, "storm429": 0.1, "repeat": 0.1, "emptypage": 0.1, "queryerror": 1}},
		{in: "http404=0.1", wantErr: `unknown kind "http404"`},
		{in: "http500", wantErr: "want KIND=RATE"},
		{in: "http500=2", wantErr: "from 0 to 1"},
		{in: "http500=x", wantErr: "from 0 to 1"},
		{in: "slowdelay=soon", wantErr: "duration"},
		{in: "dupid=1,path=/v1/workspaces/*/data-streams", want: map[string]float64{"dupid": 1}},
		{in: "all=0.5", want: map[string]float64{
			"http500": 0.5, "http502": 0.5, "http503": 0.5, "slow": 0.5, "reset": 0.5, "truncated": 0.5,
			"malformed": 0.5, "html": 0.5, "storm429": 0.5, "repeat": 0.5, "emptypage": 0.5}},
		{in: "hugepage=1,hugepagebytes=1048576,sameid=0.1,negid=0.1,nullstatus=0.1", want: map[string]float64{
			"hugepage": 1, "sameid": 0.1, "negid": 0.1, "nullstatus": 0.1}},
		{in: "path=v1", wantErr: "path pattern"},
		{in: "hugepagebytes=-1", wantErr: "positive"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			f, err := ParseFaults(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(f.Rates, tc.want) || f.SlowDelay != tc.slow {
				t.Errorf("got %v %v, want %v %v", f.Rates, f.SlowDelay, tc.want, tc.slow)
			}
			if err := f.Validate(); err != nil {
				t.Errorf("parsed faults do not validate: %v", err)
			}
			if again, err := ParseFaults(f.String()); err != nil || !reflect.DeepEqual(again.Rates, f.Rates) {
				t.Errorf("String() %q does not parse back: %v", f.String(), err)
			}
		})
	}
}

// faultHarness returns a harness with one fault kind always on, and a stream with at
// least three pages of five jobs.
func faultHarness(t *testing.T, kind string, extra func(*Faults)) (*harness, int64) {
	f := Faults{Rates: map[string]float64{kind: 1}, SlowDelay: 300 * time.Millisecond}
	if extra != nil {
		extra(&f)
	}
	h := newHarness(t, Options{JobsPerStream: 30, Faults: f})
	st := firstStream(t, h.sim, func(tStream) bool { return true })
	return h, st.ID
}

func statsPage(h *harness, id int64, page int) resp {
	return h.do("POST", fmt.Sprintf("/v1/data-streams/api/%d/stats", id), map[string]int{"pageSize": 5, "pageNumber": page})
}

// Each fault kind is observable over HTTP and counted in Calls().Faults.
func TestFaultKinds(t *testing.T) {
	jsonError := func(code int) func(*testing.T, *harness, int64) {
		return func(t *testing.T, h *harness, id int64) {
			r := statsPage(h, id, 1)
			if r.status != code || !json.Valid(r.body) || !strings.Contains(string(r.body), `"errors"`) {
				t.Errorf("got %d %q, want %d with a JSON error body", r.status, r.body, code)
			}
			if r.header.Get("X-PlatformRateLimit-Remaining") == "" {
				t.Error("fault answer lacks the rate headers")
			}
		}
	}
	badJSON := func(t *testing.T, h *harness, id int64) {
		r := statsPage(h, id, 1)
		if r.status != 200 || json.Valid(r.body) || len(r.body) == 0 {
			t.Errorf("got %d %q, want 200 with invalid JSON", r.status, truncate(r.body))
		}
	}
	for _, tc := range []struct {
		kind  string
		check func(*testing.T, *harness, int64)
	}{
		{FaultHTTP500, jsonError(500)},
		{FaultHTTP502, jsonError(502)},
		{FaultHTTP503, jsonError(503)},
		{FaultTruncated, badJSON},
		{FaultMalformed, badJSON},
		{FaultHTML, func(t *testing.T, h *harness, id int64) {
			r := statsPage(h, id, 1)
			if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !strings.Contains(string(r.body), "<html>") {
				t.Errorf("got %d %s %q", r.status, r.header.Get("Content-Type"), r.body)
			}
		}},
		{FaultReset, func(t *testing.T, h *harness, id int64) {
			req, _ := http.NewRequest("POST", fmt.Sprintf("%s/v1/data-streams/api/%d/stats", h.base, id), strings.NewReader(`{"pageSize":5,"pageNumber":1}`))
			req.Header.Set("Authorization", h.token)
			res, err := h.hc.Do(req)
			if err == nil {
				_, err = io.ReadAll(res.Body)
				res.Body.Close()
			}
			if err == nil {
				t.Fatal("a reset connection read cleanly")
			}
		}},
		{FaultSlow, func(t *testing.T, h *harness, id int64) {
			// The answer is held (SlowDelay is an hour here) until the client goes away;
			// then the handler returns at once: Close waits for every handler, so a
			// handler still holding the answer would hang the test.
			h.sim.SetFaults(Faults{Rates: map[string]float64{FaultSlow: 1}, SlowDelay: time.Hour})
			srv := httptest.NewServer(http.StripPrefix("/base", h.sim))
			ctx, cancel := context.WithCancel(context.Background())
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/base/v1/workspaces", nil)
			req.Header.Set("Authorization", h.token)
			done := make(chan error, 1)
			go func() {
				res, err := srv.Client().Do(req)
				if err == nil {
					res.Body.Close()
				}
				done <- err
			}()
			waitFor(t, func() bool { return h.sim.Calls().Faults[FaultSlow] > 0 }, "the slow fault to be drawn")
			select {
			case err := <-done:
				t.Fatalf("the slow answer came before the client left: %v", err)
			default:
			}
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("the client ended with %v, want its cancellation", err)
			}
			srv.Close() // returns only once the held handler has returned
			// A short delay answers, late but whole.
			h.sim.SetFaults(Faults{Rates: map[string]float64{FaultSlow: 1}, SlowDelay: time.Millisecond})
			h.ok(h.do("GET", "/v1/workspaces", nil), 200, nil)
		}},
		{FaultStorm429, func(t *testing.T, h *harness, id int64) {
			r := h.do("GET", "/v1/workspaces", nil)
			if r.status != 429 || headerInt(t, r, "X-PlatformRateLimit-Remaining") != 0 || r.header.Get("X-RateLimit-Reset") == "" {
				t.Fatalf("storm answer %d %v", r.status, r.header)
			}
			// The bucket stays empty until the window ends, faults or not.
			h.sim.SetFaults(Faults{})
			h.ok(h.do("GET", "/v1/workspaces", nil), 429, nil)
			h.clk.Set(time.UnixMilli(headerInt(t, r, "X-RateLimit-Reset")))
			h.ok(h.do("GET", "/v1/workspaces", nil), 200, nil)
			h.sim.SetFaults(Faults{Rates: map[string]float64{FaultStorm429: 1}})
		}},
		{FaultRepeat, func(t *testing.T, h *harness, id int64) {
			var p1, p2 []tJob
			h.ok(statsPage(h, id, 1), 200, &p1)
			h.ok(statsPage(h, id, 2), 200, &p2)
			if len(p1) != 5 || !reflect.DeepEqual(p1, p2) {
				t.Errorf("page 2 %v does not repeat page 1 %v", p2, p1)
			}
		}},
		{FaultEmptyPage, func(t *testing.T, h *harness, id int64) {
			var p1 []tJob
			h.ok(statsPage(h, id, 1), 200, &p1)
			if len(p1) != 0 {
				t.Errorf("page 1 has %d items, want an empty page", len(p1))
			}
		}},
		{FaultQueryError, func(t *testing.T, h *harness, id int64) {
			var out struct {
				Data   *json.RawMessage `json:"queryResponseData"`
				Errors []string         `json:"errors"`
			}
			ws := decodeAll[tWorkspace](t, h.sim.Truth().Workspaces)[0].ID
			h.ok(h.do("POST", "/v1/query", queryBody(ws)), 200, &out)
			if len(out.Errors) == 0 || out.Data != nil {
				t.Errorf("got %+v, want 200 with errors", out)
			}
		}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			h, id := faultHarness(t, tc.kind, nil)
			tc.check(t, h, id)
			if got := h.sim.Calls().Faults[tc.kind]; got == 0 {
				t.Errorf("fault %s not counted: %v", tc.kind, h.sim.Calls().Faults)
			}
			// The controls are never faulted.
			res, err := http.Get(h.base + "/_sim/calls")
			if err != nil || res.StatusCode != 200 {
				t.Fatalf("/_sim/calls under faults: %v %v", res, err)
			}
			res.Body.Close()
		})
	}
}

// Kinds that do not apply to a request leave it alone; OnlyReads spares changes.
func TestFaultApplicability(t *testing.T) {
	h, id := faultHarness(t, FaultRepeat, nil)
	var p1 []tJob
	h.ok(statsPage(h, id, 1), 200, &p1) // page 1 cannot repeat a previous page
	h.ok(h.do("GET", "/v1/workspaces", nil), 200, nil)
	if len(p1) != 5 || h.sim.Calls().Faults[FaultRepeat] != 0 {
		t.Errorf("repeat hit a request it cannot apply to: %v", h.sim.Calls().Faults)
	}
	h, id = faultHarness(t, FaultHTTP500, func(f *Faults) { f.OnlyReads = true })
	h.ok(h.do("PATCH", fmt.Sprintf("/v1/data-streams/%d", id), map[string]bool{"enabled": true}), 200, nil)
	h.ok(h.do("GET", "/v1/workspaces", nil), 500, nil)
}

// The same requests meet the same faults.
func TestFaultsReproducible(t *testing.T) {
	run := func() []int {
		h := newHarness(t, Options{PlatformLimit: 1000, Faults: Faults{Rates: map[string]float64{FaultHTTP500: 0.2, FaultHTTP503: 0.2}}})
		var out []int
		for range 40 {
			out = append(out, h.do("GET", "/v1/workspaces", nil).status)
		}
		return out
	}
	a, b := run(), run()
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("fault sequences differ:\n%v\n%v", a, b)
	}
	n := 0
	for _, s := range a {
		if s != 200 {
			n++
		}
	}
	if n < 6 || n > 28 {
		t.Errorf("%d of 40 calls faulted at a combined rate of 0.4", n)
	}
}

// Each hostile kind spoils the listings it applies to, over HTTP, and is counted; the
// truth is untouched.
func TestHostileKinds(t *testing.T) {
	type rec struct {
		ID     int64            `json:"id"`
		Status *json.RawMessage `json:"status"`
		Log    string           `json:"processLog"`
	}
	ids := func(t *testing.T, r resp) []int64 {
		t.Helper()
		var rs []rec
		if err := json.Unmarshal(r.body, &rs); err != nil {
			t.Fatalf("answer is not a JSON array: %v", err)
		}
		out := make([]int64, len(rs))
		for i, x := range rs {
			out[i] = x.ID
		}
		return out
	}
	for _, tc := range []struct {
		kind  string
		check func(t *testing.T, h *harness, id int64)
	}{
		{FaultDupID, func(t *testing.T, h *harness, id int64) {
			got := ids(t, h.do("GET", "/v1/workspaces", nil))
			if len(got) < 3 || got[1] != got[0] || got[2] == got[0] {
				t.Errorf("workspace ids %v: want the second repeating the first, no more", got)
			}
			got = ids(t, statsPage(h, id, 1))
			if got[1] != got[0] || got[2] == got[0] {
				t.Errorf("job ids %v", got)
			}
			ws := decodeAll[tWorkspace](t, h.sim.Truth().Workspaces)[0].ID
			r := h.do("GET", fmt.Sprintf("/v1/workspaces/%d/dimensions", ws), nil)
			if n := strings.Count(string(r.body), `"systemName":`); n < 3 || !json.Valid(r.body) {
				t.Fatalf("dimensions %s", truncate(r.body))
			}
			var first string
			dec := json.NewDecoder(strings.NewReader(string(r.body)))
			dec.Token()
			k1, _ := dec.Token()
			var v json.RawMessage
			dec.Decode(&v)
			k2, _ := dec.Token()
			first, _ = k1.(string)
			if k2 != first || !strings.Contains(string(r.body), `"systemName":"`+first+`"`) {
				t.Errorf("dimension keys %v, %v: want the first repeated", k1, k2)
			}
		}},
		{FaultSameID, func(t *testing.T, h *harness, id int64) {
			got := ids(t, statsPage(h, id, 2))
			for _, x := range got {
				if x != got[0] {
					t.Fatalf("job ids %v: want every one the first", got)
				}
			}
		}},
		{FaultNegID, func(t *testing.T, h *harness, id int64) {
			got := ids(t, statsPage(h, id, 1))
			if got[4] >= 0 || got[0] <= 0 {
				t.Errorf("job ids %v: want the last negated", got)
			}
		}},
		{FaultNullStatus, func(t *testing.T, h *harness, id int64) {
			var rs []rec
			h.ok(statsPage(h, id, 1), 200, &rs)
			if rs[0].Status != nil || rs[1].Status == nil {
				t.Errorf("statuses %v %v: want the first null", rs[0].Status, rs[1].Status)
			}
			// Lists without jobs are left alone.
			h.ok(h.do("GET", "/v1/workspaces", nil), 200, nil)
			if n := h.sim.Calls().Faults[FaultNullStatus]; n != 1 {
				t.Errorf("nullstatus counted %d times, want 1", n)
			}
		}},
		{FaultHugePage, func(t *testing.T, h *harness, id int64) {
			h.sim.SetFaults(Faults{Rates: map[string]float64{FaultHugePage: 1}, HugePageBytes: 3 << 20})
			r := statsPage(h, id, 1)
			var rs []rec
			h.ok(r, 200, &rs)
			if len(r.body) < 3<<20-100 || len(r.body) > 3<<20+4096 || len(rs) != 5 {
				t.Errorf("page of %d bytes, %d jobs; want about 3 MiB, 5 jobs", len(r.body), len(rs))
			}
			if !strings.Contains(rs[0].Log, "Retrying the data provider request\n") {
				t.Errorf("processLog not padded: %.80q", rs[0].Log)
			}
		}},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			h, id := faultHarness(t, tc.kind, nil)
			before := h.sim.Truth()
			tc.check(t, h, id)
			if h.sim.Calls().Faults[tc.kind] == 0 {
				t.Errorf("fault %s not counted: %v", tc.kind, h.sim.Calls().Faults)
			}
			if !reflect.DeepEqual(before.Jobs, h.sim.Truth().Jobs) {
				t.Error("a hostile answer changed the truth")
			}
		})
	}
}

// Path keeps faults to the requests it matches, and /_sim/faults sets it.
func TestFaultPath(t *testing.T) {
	h := newHarness(t, Options{})
	res, err := http.Post(h.base+"/_sim/faults", "text/plain", strings.NewReader("dupid=1,path=/v1/workspaces/*/data-streams"))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("POST /_sim/faults: %v %v", res, err)
	}
	res.Body.Close()
	if f := h.sim.Faults(); f.Path != "/v1/workspaces/*/data-streams" || f.Rates[FaultDupID] != 1 {
		t.Fatalf("faults %+v", f)
	}
	var wss []tWorkspace
	h.ok(h.do("GET", "/v1/workspaces", nil), 200, &wss)
	if wss[0].ID == wss[1].ID {
		t.Error("the workspace list was spoiled outside the path")
	}
	var streams []tStream
	h.ok(h.do("GET", fmt.Sprintf("/v1/workspaces/%d/data-streams", wss[0].ID), nil), 200, &streams)
	if len(streams) < 2 || streams[0].ID != streams[1].ID {
		t.Errorf("the stream list was not spoiled: %d streams", len(streams))
	}
}
