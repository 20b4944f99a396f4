package sim

import (
	"strconv"
)

// CallStats counts the API calls the simulator answered (never /_sim/).
type CallStats struct {
	Total    int            `json:"total"`
	ByStatus map[string]int `json:"by_status"` // "200", "429", …
	// ByEndpoint is keyed by route, e.g. "POST /v1/data-streams/api/{id}/stats";
	// requests that matched no route count under "unmatched".
	ByEndpoint map[string]int `json:"by_endpoint"`
	ByToken    map[string]int `json:"by_token"` // token number "1", "2", …; "none" without a valid token
	// Faults counts the injected faults that took effect, by kind.
	Faults map[string]int `json:"faults"`
	// Notes counts requests that met a switchable unknown or a lenient path:
	// "bearer_auth", "sandbox_mode", "page_size_capped", "stats_past_end",
	// "rerun_reused_ids", "query_runtime_error".
	Notes map[string]int `json:"notes"`
}

type callCounter struct{ c CallStats }

func (cc *callCounter) reset() {
	cc.c = CallStats{
		ByStatus: map[string]int{}, ByEndpoint: map[string]int{}, ByToken: map[string]int{},
		Faults: map[string]int{}, Notes: map[string]int{},
	}
}

func (cc *callCounter) note(name string) { cc.c.Notes[name]++ }

func (cc *callCounter) record(c *call, tok *token, fault string, bearer, sandbox bool) {
	cc.c.Total++
	cc.c.ByStatus[strconv.Itoa(c.status)]++
	cc.c.ByEndpoint[c.label]++
	if tok == nil {
		cc.c.ByToken["none"]++
	} else {
		cc.c.ByToken[strconv.Itoa(tok.index)]++
	}
	if fault != "" {
		cc.c.Faults[fault]++
	}
	if bearer {
		cc.c.Notes["bearer_auth"]++
	}
	if sandbox {
		cc.c.Notes["sandbox_mode"]++
	}
}

func (cc *callCounter) snapshot() CallStats {
	cp := func(m map[string]int) map[string]int {
		out := make(map[string]int, len(m))
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	return CallStats{
		Total: cc.c.Total, ByStatus: cp(cc.c.ByStatus), ByEndpoint: cp(cc.c.ByEndpoint),
		ByToken: cp(cc.c.ByToken), Faults: cp(cc.c.Faults), Notes: cp(cc.c.Notes),
	}
}

// Calls returns the counters since New or the last ResetCalls.
func (s *Sim) Calls() CallStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls.snapshot()
}

// ResetCalls zeroes the counters. Rate-limit windows are not touched.
func (s *Sim) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls.reset()
}
