package sim

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

var nineHeaders = []string{
	"X-PlatformRateLimit-Limit", "X-PlatformRateLimit-Remaining", "X-PlatformRateLimit-Reset",
	"X-QueryRateLimit-Limit", "X-QueryRateLimit-Remaining", "X-QueryRateLimit-Reset",
	"X-DailyQuota-Limit", "X-DailyQuota-Remaining", "X-DailyQuota-Reset",
}

func headerInt(t *testing.T, r resp, name string) int64 {
	t.Helper()
	v := r.header.Get(name)
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("header %s = %q: not an integer", name, v)
	}
	return n
}

func queryBody(wsID int64) map[string]any {
	return map[string]any{
		"workspaceId": strconv.FormatInt(wsID, 10), "dateRange": "LAST_7_DAYS",
		"measurements": []map[string]string{{"name": "Data Stream Total Rows"}}, "dimensions": []string{"Data Stream"},
	}
}

// The 61st platform call of a minute gets a 429 with every header the facts file names
// and no Retry-After; the first call of the next minute gets 200.
func TestRateLimitPlatformMinute(t *testing.T) {
	h := newHarness(t, Options{PlatformLimit: 60})
	nextMinute := start.Truncate(time.Minute).Add(time.Minute).UnixMilli()
	nextDay := time.Date(2024, 7, 14, 0, 0, 0, 0, time.UTC).UnixMilli()
	for i := 1; i <= 60; i++ {
		r := h.do("GET", "/v1/workspaces", nil)
		h.ok(r, 200, nil)
		for _, name := range nineHeaders {
			headerInt(t, r, name)
		}
		if got := headerInt(t, r, "X-PlatformRateLimit-Remaining"); got != int64(60-i) {
			t.Fatalf("call %d: platform remaining %d, want %d", i, got, 60-i)
		}
		if got := headerInt(t, r, "X-DailyQuota-Remaining"); got != int64(20000-i) {
			t.Fatalf("call %d: daily remaining %d, want %d", i, got, 20000-i)
		}
	}
	r := h.do("GET", "/v1/workspaces", nil)
	if r.status != 429 {
		t.Fatalf("61st call: status %d, want 429", r.status)
	}
	want := map[string]int64{
		"X-PlatformRateLimit-Limit": 60, "X-PlatformRateLimit-Remaining": 0, "X-PlatformRateLimit-Reset": nextMinute,
		"X-QueryRateLimit-Limit": 200, "X-QueryRateLimit-Remaining": 200, "X-QueryRateLimit-Reset": nextMinute,
		"X-DailyQuota-Limit": 20000, "X-DailyQuota-Remaining": 20000 - 60, "X-DailyQuota-Reset": nextDay,
		"X-RateLimit-Reset": nextMinute, "X-DailyQuota-Rest": nextDay,
	}
	for name, v := range want {
		if got := headerInt(t, r, name); got != v {
			t.Errorf("429 header %s = %d, want %d", name, got, v)
		}
	}
	if r.header.Get("Retry-After") != "" {
		t.Error("429 carries Retry-After; the API sends none")
	}
	if !strings.Contains(string(r.body), "Too Many Requests") {
		t.Errorf("429 body %q lacks \"Too Many Requests\"", r.body)
	}
	h.clk.Set(time.UnixMilli(nextMinute))
	r = h.do("GET", "/v1/workspaces", nil)
	h.ok(r, 200, nil)
	if got := headerInt(t, r, "X-PlatformRateLimit-Remaining"); got != 59 {
		t.Errorf("first call of the next minute: remaining %d, want 59", got)
	}
	if c := h.sim.Calls(); c.ByStatus["429"] != 1 || c.ByStatus["200"] != 61 || c.Total != 62 {
		t.Errorf("calls %+v", c)
	}
}

func TestRateLimitQueryBucketSeparate(t *testing.T) {
	h := newHarness(t, Options{PlatformLimit: 3, QueryLimit: 5})
	ws := decodeAll[tWorkspace](t, h.sim.Truth().Workspaces)[0].ID
	for range 3 {
		h.ok(h.do("GET", "/v1/workspaces", nil), 200, nil)
	}
	h.ok(h.do("GET", "/v1/workspaces", nil), 429, nil)
	for i := 1; i <= 5; i++ {
		r := h.do("POST", "/v1/query", queryBody(ws))
		h.ok(r, 200, nil)
		if p, q := headerInt(t, r, "X-PlatformRateLimit-Remaining"), headerInt(t, r, "X-QueryRateLimit-Remaining"); p != 0 || q != int64(5-i) {
			t.Fatalf("query call %d: platform remaining %d, query remaining %d; want 0, %d", i, p, q, 5-i)
		}
	}
	r := h.do("POST", "/v1/query", queryBody(ws))
	h.ok(r, 429, nil)
	if got := r.header.Get("X-RateLimit-Reset"); got == "" {
		t.Error("query 429 lacks X-RateLimit-Reset")
	}
	// query-batch is a query call too.
	h.ok(h.do("POST", "/v1/query-batch", []any{queryBody(ws)}), 429, nil)
}

func TestDailyQuotaShared(t *testing.T) {
	h := newHarness(t, Options{PlatformLimit: 100, QueryLimit: 100, DailyQuota: 10})
	ws := decodeAll[tWorkspace](t, h.sim.Truth().Workspaces)[0].ID
	for range 6 {
		h.ok(h.do("GET", "/v1/workspaces", nil), 200, nil)
	}
	for range 4 {
		h.ok(h.do("POST", "/v1/query", queryBody(ws)), 200, nil)
	}
	for _, call := range []func() resp{
		func() resp { return h.do("GET", "/v1/workspaces", nil) },
		func() resp { return h.do("POST", "/v1/query", queryBody(ws)) },
	} {
		r := call()
		h.ok(r, 429, nil)
		if got := headerInt(t, r, "X-DailyQuota-Remaining"); got != 0 {
			t.Errorf("daily remaining %d after the quota, want 0", got)
		}
		if got := headerInt(t, r, "X-DailyQuota-Rest"); got != time.Date(2024, 7, 14, 0, 0, 0, 0, time.UTC).UnixMilli() {
			t.Errorf("X-DailyQuota-Rest %d, want next UTC midnight", got)
		}
	}
	// Still blocked an hour later; open again at the next UTC day.
	h.clk.Advance(time.Hour)
	h.ok(h.do("GET", "/v1/workspaces", nil), 429, nil)
	h.clk.Set(time.Date(2024, 7, 14, 0, 0, 1, 0, time.UTC))
	r := h.do("GET", "/v1/workspaces", nil)
	h.ok(r, 200, nil)
	if got := headerInt(t, r, "X-DailyQuota-Remaining"); got != 9 {
		t.Errorf("daily remaining %d on the new day, want 9", got)
	}
}

// Failed calls count only with CountFailedCalls; a 429 never counts; a call without a
// valid token is answered 401 with the headers of fresh windows.
func TestRateCountingOfFailures(t *testing.T) {
	for _, count := range []bool{false, true} {
		t.Run(strconv.FormatBool(count), func(t *testing.T) {
			h := newHarness(t, Options{PlatformLimit: 5, CountFailedCalls: count})
			h.ok(h.do("GET", "/v1/workspaces", nil), 200, nil)
			r := h.do("GET", "/v1/data-streams/1", nil)
			h.ok(r, 404, nil)
			want := int64(4)
			if count {
				want = 3
			}
			if got := headerInt(t, r, "X-PlatformRateLimit-Remaining"); got != want {
				t.Errorf("remaining after a 404: %d, want %d", got, want)
			}
			for _, name := range nineHeaders {
				headerInt(t, r, name)
			}
			r = h.do("GET", "/v1/workspaces", nil, withToken("nope"))
			h.ok(r, 401, nil)
			if got := headerInt(t, r, "X-PlatformRateLimit-Remaining"); got != 5 {
				t.Errorf("401 shows remaining %d, want a fresh 5", got)
			}
		})
	}
	h := newHarness(t, Options{PlatformLimit: 1})
	h.ok(h.do("GET", "/v1/workspaces", nil), 200, nil)
	for range 3 {
		h.ok(h.do("GET", "/v1/workspaces", nil), 429, nil)
	}
	h.clk.Advance(time.Minute)
	r := h.do("GET", "/v1/workspaces", nil)
	h.ok(r, 200, nil)
	if got := headerInt(t, r, "X-DailyQuota-Remaining"); got != 20000-2 {
		t.Errorf("daily remaining %d: the 429s must not count", got)
	}
}

// The rate headers go on the wire in the documented spelling.
func TestRateHeaderSpelling(t *testing.T) {
	h := newHarness(t, Options{})
	conn, err := net.Dial("tcp", strings.TrimPrefix(strings.TrimSuffix(h.base, "/base"), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /base/v1/workspaces HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nConnection: close\r\n\r\n", h.token)
	raw, _ := io.ReadAll(conn)
	for _, name := range nineHeaders {
		if !strings.Contains(string(raw), "\r\n"+name+": ") {
			t.Errorf("the answer does not carry %q as spelt", name)
		}
	}
}
