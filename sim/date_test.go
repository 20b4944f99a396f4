package sim

import (
	"net/http"
	"testing"
	"time"
)

// TestDateHeaderIsTheSimulatorsTime: every answer — 200, 401, 404, 429, an injected 503 —
// and the controls carry a Date header in the simulator's own time, which moves with
// POST /_sim/advance and not with the host's clock.
func TestDateHeaderIsTheSimulatorsTime(t *testing.T) {
	h := newHarness(t, Options{PlatformLimit: 1})
	date := func(r resp) time.Time {
		t.Helper()
		v := r.header.Get("Date")
		d, err := http.ParseTime(v)
		if err != nil {
			t.Fatalf("status %d: Date %q: %v", r.status, v, err)
		}
		if v != d.UTC().Format(http.TimeFormat) {
			t.Errorf("Date %q is not in IMF-fixdate form", v)
		}
		return d
	}
	check := func(what string, r resp, want int) {
		t.Helper()
		if r.status != want {
			t.Fatalf("%s: status %d, want %d", what, r.status, want)
		}
		now := h.sim.Now().Truncate(time.Second)
		if got := date(r); !got.Equal(now) {
			t.Errorf("%s: Date %v, want the simulator's %v", what, got, now)
		}
	}
	check("404", h.do("GET", "/v1/no-such-thing", nil), 404) // refused calls are not counted
	check("401", h.do("GET", "/v1/workspaces", nil, withToken("")), 401)
	check("200", h.do("GET", "/v1/workspaces", nil), 200)
	check("429", h.do("GET", "/v1/workspaces", nil), 429)

	if code, _ := postSim(t, h, "/_sim/advance?by=24h", ""); code != 200 {
		t.Fatalf("advance: %d", code)
	}
	if !h.sim.Now().Equal(start.Add(24 * time.Hour)) {
		t.Fatalf("simulator at %v after advancing 24h from %v", h.sim.Now(), start)
	}
	check("200 after advancing", h.do("GET", "/v1/workspaces", nil), 200)
	h.clk.Advance(time.Minute) // a fresh window for the next call
	h.sim.SetFaults(Faults{Rates: map[string]float64{FaultHTTP503: 1}})
	check("injected 503", h.do("GET", "/v1/workspaces", nil), 503)
	h.sim.SetFaults(Faults{})

	res, err := h.hc.Get(h.base + "/_sim/time")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	check("control", resp{status: res.StatusCode, header: res.Header}, 200)
}
