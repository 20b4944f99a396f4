package sim

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

type queryAnswer struct {
	Data *struct {
		Headers []string `json:"headers"`
		Rows    [][]any  `json:"rows"`
	} `json:"queryResponseData"`
	Errors []string `json:"errors"`
}

// expectation computes a query's answer from Truth.DailyRows, independently of the
// simulator's query engine.
type expectRow struct {
	dims   []string
	rows   int64
	cents  int64
	clicks int64
}

func expect(t *testing.T, s *Sim, wsID int64, from, to string, dims []string, keep func(stream tStream, date string) bool) []expectRow {
	t.Helper()
	tr := s.Truth()
	streams := map[int64]tStream{}
	for _, st := range decodeAll[tStream](t, tr.Streams) {
		streams[st.ID] = st
	}
	wsName := map[int64]string{}
	for _, w := range decodeAll[tWorkspace](t, tr.Workspaces) {
		wsName[w.ID] = w.Name
	}
	groups := map[string]*expectRow{}
	for _, d := range tr.DailyRows {
		st := streams[d.DataStreamID]
		if d.WorkspaceID != wsID || d.Date < from || d.Date > to || (keep != nil && !keep(st, d.Date)) {
			continue
		}
		var vals []string
		for _, dim := range dims {
			switch dim {
			case "Data Stream":
				vals = append(vals, st.Name)
			case "Data Source":
				vals = append(vals, st.DataSourceName)
			case "Workspace":
				vals = append(vals, wsName[wsID])
			case "Date":
				vals = append(vals, d.Date)
			}
		}
		k := strings.Join(vals, "\x00")
		g := groups[k]
		if g == nil {
			g = &expectRow{dims: vals}
			groups[k] = g
		}
		g.rows += d.Rows
		g.cents += d.CostCents
		g.clicks += d.Clicks
	}
	var out []expectRow
	for _, g := range groups {
		out = append(out, *g)
	}
	return out
}

func (h *harness) query(path string, body map[string]any) queryAnswer {
	h.t.Helper()
	var a queryAnswer
	h.ok(h.do("POST", path, body), 200, &a)
	if len(a.Errors) > 0 || a.Data == nil {
		h.t.Fatalf("query errors %v", a.Errors)
	}
	return a
}

func TestQueryAgainstTruth(t *testing.T) {
	h := newHarness(t, Options{Workspaces: 2, Streams: 40})
	ws := decodeAll[tWorkspace](t, h.sim.Truth().Workspaces)[0].ID
	wsStr := strconv.FormatInt(ws, 10)
	base := func(extra map[string]any) map[string]any {
		b := map[string]any{
			"workspaceId": wsStr, "dateRange": "CUSTOM", "startDate": "2024-06-20", "endDate": "2024-07-13",
			"measurements": []map[string]string{{"name": "Data Stream Total Rows"}, {"name": "Cost"}},
			"dimensions":   []string{"Data Stream", "Date"},
		}
		for k, v := range extra {
			b[k] = v
		}
		return b
	}
	asRows := func(a queryAnswer) []expectRow {
		var out []expectRow
		for _, r := range a.Data.Rows {
			n := len(r)
			var dims []string
			for _, v := range r[:n-2] {
				dims = append(dims, v.(string))
			}
			rows := int64(r[n-2].(float64))
			cents := int64(r[n-1].(float64)*100 + 0.5)
			out = append(out, expectRow{dims: dims, rows: rows, cents: cents})
		}
		return out
	}
	sortRows := func(rs []expectRow) {
		sort.Slice(rs, func(i, j int) bool { return strings.Join(rs[i].dims, "\x00") < strings.Join(rs[j].dims, "\x00") })
	}
	same := func(t *testing.T, got, want []expectRow) {
		t.Helper()
		if len(want) == 0 {
			t.Fatal("the expectation is empty; the test would prove nothing")
		}
		sortRows(got)
		sortRows(want)
		for i := range want {
			want[i].clicks = 0
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("got %d rows, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
		}
	}
	var api, tc string
	for _, st := range decodeAll[tStream](t, h.sim.Truth().Streams) {
		if st.WorkspaceID == ws && st.DataSourceName == "TotalConnect" {
			tc = st.Name
		} else if st.WorkspaceID == ws {
			api = st.Name
		}
	}

	t.Run("rows per stream per day", func(t *testing.T) {
		a := h.query("/v1/query", base(nil))
		if strings.Join(a.Data.Headers, ",") != "Data Stream,Date,Data Stream Total Rows,Cost" {
			t.Errorf("headers %v", a.Data.Headers)
		}
		same(t, asRows(a), expect(t, h.sim, ws, "2024-06-20", "2024-07-13", []string{"Data Stream", "Date"}, nil))
	})
	t.Run("LAST_7_DAYS by source, system names", func(t *testing.T) {
		a := h.query("/v1/query?useSystemNames=true", base(map[string]any{"dateRange": "LAST_7_DAYS", "dimensions": []string{"DATA_SOURCE"}}))
		if strings.Join(a.Data.Headers, ",") != "DATA_SOURCE,DATA_STREAM_TOTAL_ROWS,MEDIA_COST" {
			t.Errorf("headers %v", a.Data.Headers)
		}
		same(t, asRows(a), expect(t, h.sim, ws, "2024-07-06", "2024-07-12", []string{"Data Source"}, nil))
	})
	t.Run("string filters OR", func(t *testing.T) {
		a := h.query("/v1/query", base(map[string]any{"stringDimensionFiltersOperator": "OR", "stringDimensionFilters": []map[string]string{
			{"dimension": "Data Source", "operator": "EQUALS", "val": "totalconnect"},
			{"dimension": "Data Stream", "operator": "EQUALS", "val": api},
		}}))
		same(t, asRows(a), expect(t, h.sim, ws, "2024-06-20", "2024-07-13", []string{"Data Stream", "Date"}, func(s tStream, _ string) bool {
			return s.DataSourceName == "TotalConnect" || s.Name == api
		}))
	})
	t.Run("group filter NOT IN and date filter", func(t *testing.T) {
		a := h.query("/v1/query", base(map[string]any{
			"groupDimensionFilters":  []map[string]any{{"dimension": "Data Stream", "operator": "NOT IN", "vals": []string{tc, api}}},
			"stringDimensionFilters": []map[string]string{{"dimension": "Date", "operator": "STARTS_WITH", "val": "2024-07"}},
		}))
		same(t, asRows(a), expect(t, h.sim, ws, "2024-06-20", "2024-07-13", []string{"Data Stream", "Date"}, func(s tStream, d string) bool {
			return s.Name != tc && s.Name != api && strings.HasPrefix(d, "2024-07")
		}))
	})
	t.Run("sort and top", func(t *testing.T) {
		a := h.query("/v1/query", base(map[string]any{"dimensions": []string{"Data Stream"}, "sortBy": "Data Stream Total Rows", "sortOrder": "DESC", "topResults": "3"}))
		want := expect(t, h.sim, ws, "2024-06-20", "2024-07-13", []string{"Data Stream"}, nil)
		sort.Slice(want, func(i, j int) bool { return want[i].rows > want[j].rows })
		got := asRows(a)
		if len(got) != 3 {
			t.Fatalf("%d rows, want 3", len(got))
		}
		for i := range got {
			if got[i].rows != want[i].rows || got[i].dims[0] != want[i].dims[0] {
				t.Errorf("row %d: %v, want %v", i, got[i], want[i])
			}
		}
		asc := asRows(h.query("/v1/query", base(map[string]any{"dimensions": []string{"Data Stream"}, "sortBy": "Cost", "sortOrder": "ASC", "topResults": 2})))
		if len(asc) != 2 || asc[0].cents > asc[1].cents {
			t.Errorf("ascending by cost: %v", asc)
		}
	})
	t.Run("measurement filter", func(t *testing.T) {
		all := asRows(h.query("/v1/query", base(map[string]any{"dimensions": []string{"Data Stream"}})))
		sort.Slice(all, func(i, j int) bool { return all[i].rows < all[j].rows })
		cut := all[len(all)/2].rows
		got := asRows(h.query("/v1/query", base(map[string]any{"dimensions": []string{"Data Stream"},
			"numberMeasurementFilter": []map[string]any{{"fieldName": "Data Stream Total Rows", "operator": "GREATER_EQUALS", "val": cut}}})))
		for _, r := range got {
			if r.rows < cut {
				t.Errorf("row %v passed rows >= %d", r, cut)
			}
		}
		if len(got) != len(all)-len(all)/2 {
			t.Errorf("%d rows pass, want %d", len(got), len(all)-len(all)/2)
		}
	})
	t.Run("batch", func(t *testing.T) {
		var answers []queryAnswer
		h.ok(h.do("POST", "/v1/query-batch", []any{base(nil), base(map[string]any{"dimensions": []string{"Workspace"}})}), 200, &answers)
		if len(answers) != 2 || answers[1].Data == nil || len(answers[1].Data.Rows) != 1 {
			t.Fatalf("batch answers %+v", answers)
		}
		same(t, asRows(answers[0]), expect(t, h.sim, ws, "2024-06-20", "2024-07-13", []string{"Data Stream", "Date"}, nil))
	})
	t.Run("data grows as jobs succeed", func(t *testing.T) {
		before := asRows(h.query("/v1/query", base(map[string]any{"dimensions": []string{"Workspace"}, "startDate": "2024-01-01", "endDate": "2024-01-31"})))
		if len(before) != 0 {
			t.Fatalf("January has data before any job loaded it: %v", before)
		}
		h.sim.Mutate(func(st *State) {
			for _, id := range st.StreamIDs(ws) {
				_ = st.SetStreamOutcome(id, "succeed")
				_, _ = st.Process(id, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC))
			}
		})
		h.clk.Advance(4 * 24 * time.Hour)
		after := asRows(h.query("/v1/query", base(map[string]any{"dimensions": []string{"Workspace"}, "startDate": "2024-01-01", "endDate": "2024-01-31"})))
		same(t, after, expect(t, h.sim, ws, "2024-01-01", "2024-01-31", []string{"Workspace"}, nil))
	})
}

func TestQueryErrors(t *testing.T) {
	h := newHarness(t, Options{Tokens: 2, Workspaces: 3, QueryMaxRows: 5})
	tr := h.sim.Truth()
	ws := tr.TokenWorkspaces["1"][0]
	var hidden int64
	for _, id := range tr.TokenWorkspaces["1"] {
		if !contains(tr.TokenWorkspaces["2"], id) {
			hidden = id
		}
	}
	good := func() map[string]any {
		return map[string]any{"workspaceId": ws, "dateRange": "THIS_MONTH",
			"measurements": []map[string]string{{"name": "Clicks"}}, "dimensions": []string{"Workspace"}}
	}
	for _, tc := range []struct {
		name   string
		edit   func(map[string]any)
		status int
		names  string // the message must contain this
	}{
		{"unknown dimension", func(b map[string]any) { b["dimensions"] = []string{"Campaign Colour"} }, 422, "Campaign Colour"},
		{"unknown measurement", func(b map[string]any) { b["measurements"] = []map[string]string{{"name": "Spend Velocity"}} }, 422, "Spend Velocity"},
		{"unknown filter dimension", func(b map[string]any) {
			b["stringDimensionFilters"] = []map[string]string{{"dimension": "Nope", "operator": "EQUALS", "val": "x"}}
		}, 422, "Nope"},
		{"bad operator", func(b map[string]any) {
			b["stringDimensionFilters"] = []map[string]string{{"dimension": "Workspace", "operator": "LIKE", "val": "x"}}
		}, 422, "LIKE"},
		{"sortBy not in query", func(b map[string]any) { b["sortBy"] = "Cost" }, 422, "Cost"},
		{"no workspace", func(b map[string]any) { delete(b, "workspaceId") }, 422, "workspaceId"},
		{"bad date range", func(b map[string]any) { b["dateRange"] = "FOREVER" }, 422, "dateRange"},
		{"custom without dates", func(b map[string]any) { b["dateRange"] = "CUSTOM" }, 422, "startDate"},
		{"type error", func(b map[string]any) { b["dimensions"] = "Workspace" }, 422, "dimensions"},
		{"no measurements", func(b map[string]any) { delete(b, "measurements") }, 422, "measurements"},
		{"unknown workspace", func(b map[string]any) { b["workspaceId"] = 1 }, 404, "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := good()
			tc.edit(b)
			r := h.do("POST", "/v1/query", b)
			if r.status != tc.status || !strings.Contains(string(r.body), tc.names) {
				t.Errorf("got %d %s, want %d naming %q", r.status, r.body, tc.status, tc.names)
			}
		})
	}
	h.ok(h.do("POST", "/v1/query", good()), 200, nil)
	b := good()
	b["workspaceId"] = strconv.FormatInt(hidden, 10)
	h.ok(h.do("POST", "/v1/query", b, withToken(h.sim.Tokens()[1])), 403, nil)
	// Batch: a parse error names the query.
	r := h.do("POST", "/v1/query-batch", []any{good(), map[string]any{"workspaceId": ws, "dateRange": "TODAY", "measurements": []map[string]string{{"name": "X"}}}})
	if r.status != 422 || !strings.Contains(string(r.body), "query 1") {
		t.Errorf("batch parse error: %d %s", r.status, r.body)
	}
	// A runtime error is 200 with errors.
	var a queryAnswer
	b = good()
	b["dimensions"] = []string{"Data Stream", "Date"}
	b["dateRange"] = "LAST_30_DAYS"
	h.ok(h.do("POST", "/v1/query", b), 200, &a)
	if len(a.Errors) == 0 || a.Data != nil || !strings.Contains(a.Errors[0], "maximum") {
		t.Errorf("over QueryMaxRows: %+v", a)
	}
}

func contains(s []int64, v int64) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestDateRange(t *testing.T) {
	today := time.Date(2024, 7, 10, 15, 0, 0, 0, time.UTC) // a Wednesday
	for _, tc := range []struct {
		name         string
		includeToday bool
		from, to     string
	}{
		{"TODAY", false, "2024-07-10", "2024-07-10"},
		{"YESTERDAY", false, "2024-07-09", "2024-07-09"},
		{"LAST_7_DAYS", false, "2024-07-03", "2024-07-09"},
		{"LAST_7_DAYS", true, "2024-07-04", "2024-07-10"},
		{"LAST_30_DAYS", false, "2024-06-10", "2024-07-09"},
		{"THIS_WEEK", false, "2024-07-08", "2024-07-10"},
		{"LAST_WEEK", false, "2024-07-01", "2024-07-07"},
		{"THIS_MONTH", false, "2024-07-01", "2024-07-10"},
		{"LAST_MONTH", false, "2024-06-01", "2024-06-30"},
		{"THIS_YEAR", false, "2024-01-01", "2024-07-10"},
		{"LAST_YEAR", false, "2023-01-01", "2023-12-31"},
	} {
		t.Run(fmt.Sprint(tc.name, tc.includeToday), func(t *testing.T) {
			f, to, err := DateRange(tc.name, today, tc.includeToday)
			if err != nil || f.Format("2006-01-02") != tc.from || to.Format("2006-01-02") != tc.to {
				t.Errorf("got %v..%v %v, want %s..%s", f, to, err, tc.from, tc.to)
			}
		})
	}
	if _, _, err := DateRange("SOMEDAY", today, false); err == nil {
		t.Error("unknown range accepted")
	}
}
