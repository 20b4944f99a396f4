package sim

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestProcessChunking(t *testing.T) {
	h := newHarness(t, Options{})
	st := firstStream(t, h.sim, apiStream)
	var jobs []tJob
	h.ok(h.do("POST", fmt.Sprintf("/v1/data-streams/%d/process", st.ID), map[string]string{"startDate": "2024-06-01", "endDate": "2024-07-01"}), 200, &jobs)
	want := [][2]string{{"2024-06-01", "2024-06-10"}, {"2024-06-11", "2024-06-20"}, {"2024-06-21", "2024-06-30"}, {"2024-07-01", "2024-07-01"}}
	if len(jobs) != len(want) {
		t.Fatalf("31 days gave %d jobs, want 4", len(jobs))
	}
	for i, j := range jobs {
		if j.Status != "PENDING" || j.DataStartDate != want[i][0] || j.DataEndDate != want[i][1] || j.DataStreamID != st.ID {
			t.Errorf("job %d: %+v, want PENDING %v", i, j, want[i])
		}
		if i > 0 && j.ID != jobs[i-1].ID+1 {
			t.Errorf("job ids %d, %d are not consecutive", jobs[i-1].ID, j.ID)
		}
	}
	// The batch form: every stream's chunks consecutive, all answered in order.
	var ids []int64
	for _, s := range decodeAll[tStream](t, h.sim.Truth().Streams)[:3] {
		ids = append(ids, s.ID)
	}
	var batch []tJob
	h.ok(h.do("POST", "/v1/data-streams/process", map[string]any{"dataStreamIds": ids, "startDate": "2024-05-01", "endDate": "2024-05-25", "create": false}), 200, &batch)
	if len(batch) != 9 {
		t.Fatalf("batch of 3 streams × 25 days gave %d jobs, want 9", len(batch))
	}
	for i, j := range batch {
		if j.DataStreamID != ids[i/3] || j.Status != "PENDING" {
			t.Errorf("batch job %d: %+v", i, j)
		}
		if i%3 > 0 && j.ID != batch[i-1].ID+1 {
			t.Errorf("batch job ids %d, %d of one stream are not consecutive", batch[i-1].ID, j.ID)
		}
	}
	for _, tc := range []struct {
		name string
		body any
		want int
	}{
		{"end before start", map[string]string{"startDate": "2024-07-02", "endDate": "2024-07-01"}, 400},
		{"time part", map[string]string{"startDate": "2024-07-01 00:00:00", "endDate": "2024-07-02"}, 400},
		{"missing", map[string]string{"startDate": "2024-07-01"}, 400},
		{"not json", "{", 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.ok(h.do("POST", fmt.Sprintf("/v1/data-streams/%d/process", st.ID), tc.body), tc.want, nil)
		})
	}
	h.ok(h.do("POST", "/v1/data-streams/process", map[string]any{"dataStreamIds": []int64{ids[0], 1}, "startDate": "2024-05-01", "endDate": "2024-05-02"}), 404, nil)
}

// Jobs move PENDING → IN_PROGRESS → SUCCESS|FAILURE as the clock moves, one at a time
// per stream, and the stream's last-run fields follow.
func TestLifecycle(t *testing.T) {
	h := newHarness(t, Options{})
	st := firstStream(t, h.sim, func(s tStream) bool { return apiStream(s) && s.Enabled })
	var created []tJob
	h.ok(h.do("POST", fmt.Sprintf("/v1/data-streams/%d/process", st.ID), map[string]string{"startDate": "2024-06-01", "endDate": "2024-06-30"}), 200, &created)
	statusOf := func() map[int64]tJob {
		out := map[int64]tJob{}
		for _, j := range decodeAll[tJob](t, h.sim.Truth().Jobs) {
			out[j.ID] = j
		}
		return out
	}
	seen := map[int64][]string{}
	for step := 0; step < 5*24*60/5; step++ {
		jobs := statusOf()
		running := 0
		allFinal := true
		for _, c := range created {
			j := jobs[c.ID]
			if s := seen[c.ID]; len(s) == 0 || s[len(s)-1] != j.Status {
				seen[c.ID] = append(seen[c.ID], j.Status)
			}
			if j.Status == "IN_PROGRESS" {
				running++
				if j.Start == nil || j.End != nil {
					t.Fatalf("IN_PROGRESS job %d: start %v end %v", j.ID, j.Start, j.End)
				}
			}
			allFinal = allFinal && (j.Status == "SUCCESS" || j.Status == "FAILURE")
		}
		for _, j := range jobs {
			if j.DataStreamID == st.ID && j.Status == "IN_PROGRESS" && !slices.ContainsFunc(created, func(c tJob) bool { return c.ID == j.ID }) {
				running++
			}
		}
		if running > 1 {
			t.Fatalf("%d jobs of stream %d run at once", running, st.ID)
		}
		if allFinal {
			break
		}
		h.clk.Advance(5 * time.Minute)
	}
	for _, c := range created {
		s := seen[c.ID]
		if len(s) != 3 || s[0] != "PENDING" || s[1] != "IN_PROGRESS" || (s[2] != "SUCCESS" && s[2] != "FAILURE") {
			t.Errorf("job %d went through %v", c.ID, s)
		}
	}
	var after tStream
	h.get(fmt.Sprintf("/v1/data-streams/%d", st.ID), &after)
	if after.LastUpdate == nil || *after.LastUpdate <= start.UnixMilli() {
		t.Errorf("stream lastUpdate %v did not move", after.LastUpdate)
	}
}

// Enabled streams get one scheduled run per day at their hour, loading that day;
// disabled and workflow-only streams get none.
func TestScheduledDailyRuns(t *testing.T) {
	h := newHarness(t, Options{Streams: 40})
	before := map[int64]int{}
	for _, j := range decodeAll[tJob](t, h.sim.Truth().Jobs) {
		before[j.DataStreamID]++
	}
	streams := decodeAll[tStream](t, h.sim.Truth().Streams)
	off := streams[0].ID
	h.ok(h.do("PATCH", fmt.Sprintf("/v1/data-streams/%d", off), map[string]bool{"enabled": false}), 200, nil)
	h.clk.Advance(72 * time.Hour)
	days := map[int64][]string{}
	for _, j := range decodeAll[tJob](t, h.sim.Truth().Jobs) {
		if j.DataStartDate >= "2024-07-14" {
			days[j.DataStreamID] = append(days[j.DataStreamID], j.DataStartDate)
		}
	}
	for _, s := range streams {
		got := days[s.ID]
		switch {
		case s.ID == off || !s.Enabled || s.RunOnlyWorkflow:
			if len(got) != 0 {
				t.Errorf("stream %d (enabled %v, workflow-only %v) ran on %v", s.ID, s.ID != off && s.Enabled, s.RunOnlyWorkflow, got)
			}
		case !slices.Equal(got, []string{"2024-07-14", "2024-07-15"}) && !slices.Equal(got, []string{"2024-07-14", "2024-07-15", "2024-07-16"}):
			// The runs of 07-13 after 12:00 carry that date; by 07-16 12:00 a stream
			// whose hour is before noon has also run for 07-16.
			t.Errorf("stream %d (hour %v) ran on %v", s.ID, *s.RetrievalHour, got)
		}
	}
}

func TestPatchPutDelete(t *testing.T) {
	h := newHarness(t, Options{Tokens: 2})
	st := firstStream(t, h.sim, apiStream)
	path := fmt.Sprintf("/v1/data-streams/%d", st.ID)
	var orig map[string]json.RawMessage
	h.get(path, &orig)
	h.clk.Advance(time.Hour)

	// PATCH changes only the given fields (and the entity history).
	var patched map[string]json.RawMessage
	h.ok(h.do("PATCH", path, map[string]any{"name": "Renamed", "customAttribute1": "X"}), 200, &patched)
	for k, v := range orig {
		switch k {
		case "name", "customAttribute1", "updateTime", "updateUserId", "updateUser":
		default:
			if !bytes.Equal(v, patched[k]) {
				t.Errorf("PATCH changed %s: %s → %s", k, v, patched[k])
			}
		}
	}
	if string(patched["name"]) != `"Renamed"` || string(patched["customAttribute1"]) != `"X"` {
		t.Errorf("PATCH did not apply: name %s customAttribute1 %s", patched["name"], patched["customAttribute1"])
	}
	if string(patched["updateTime"]) != strconv.FormatInt(start.Add(time.Hour).UnixMilli(), 10) {
		t.Errorf("updateTime %s, want now", patched["updateTime"])
	}
	// PUT replaces: writable fields left out are cleared; server-managed ones stay.
	var put tStream
	h.ok(h.do("PUT", path, map[string]any{"name": "Replaced", "enabled": true, "id": 1, "processedRows": 5}), 200, &put)
	if put.Name != "Replaced" || !put.Enabled || put.CustomAttribute1 != "" || string(put.Config) != "null" || put.RetrievalHour != nil || put.ID != st.ID {
		t.Errorf("PUT result %+v: want name Replaced, enabled, customAttribute1 and config cleared", put)
	}
	if put.ProcessedRows != st.ProcessedRows {
		t.Errorf("PUT changed server-managed processedRows: %d → %d", st.ProcessedRows, put.ProcessedRows)
	}
	var m map[string]json.RawMessage
	h.get(fmt.Sprintf("/v1/data-streams/api/%d/mapping", st.ID), &m)
	if string(m["fields"]) != "[]" {
		t.Errorf("mapping after config cleared: %s", m["fields"])
	}
	h.ok(h.do("PATCH", path, map[string]any{"enabled": "yes"}), 400, nil)

	// DELETE: 204, then gone everywhere.
	r := h.do("DELETE", path, nil)
	if r.status != 204 || len(r.body) != 0 {
		t.Fatalf("DELETE: %d %q", r.status, r.body)
	}
	h.ok(h.do("GET", path, nil), 404, nil)
	h.ok(h.do("POST", fmt.Sprintf("/v1/data-streams/api/%d/stats", st.ID), map[string]int{"pageSize": 10, "pageNumber": 1}), 404, nil)
	var list []tStream
	h.get(fmt.Sprintf("/v1/workspaces/%d/data-streams", st.WorkspaceID), &list)
	for _, s := range list {
		if s.ID == st.ID {
			t.Error("deleted stream still listed")
		}
	}
	for _, j := range decodeAll[tJob](t, h.sim.Truth().Jobs) {
		if j.DataStreamID == st.ID {
			t.Fatal("deleted stream's jobs still in the truth")
		}
	}
}

func TestCreateStream(t *testing.T) {
	h := newHarness(t, Options{})
	ws := decodeAll[tWorkspace](t, h.sim.Truth().Workspaces)[1].ID
	var created tStream
	h.ok(h.do("POST", "/v1/data-streams", map[string]any{"name": "New GA", "workspaceId": strconv.FormatInt(ws, 10), "dataSourceId": 412, "templateId": 27259, "parentInstanceId": "null", "config": map[string]string{"account_id": "1"}}), 201, &created)
	if created.ID == 0 || created.Name != "New GA" || created.WorkspaceID != ws || created.DataSourceName != "Google Analytics" || !created.Enabled {
		t.Fatalf("created %+v", created)
	}
	var list []tStream
	h.get(fmt.Sprintf("/v1/workspaces/%d/data-streams", ws), &list)
	if !slices.ContainsFunc(list, func(s tStream) bool { return s.ID == created.ID }) {
		t.Error("new stream not listed")
	}
	for _, tc := range []struct {
		name string
		body any
		want int
	}{
		{"no name", map[string]any{"workspaceId": ws, "dataSourceId": 412}, 400},
		{"no workspace", map[string]any{"name": "x", "dataSourceId": 412}, 400},
		{"unknown source", map[string]any{"name": "x", "workspaceId": ws, "dataSourceId": 9}, 400},
		{"unknown workspace", map[string]any{"name": "x", "workspaceId": 1, "dataSourceId": 412}, 404},
	} {
		t.Run(tc.name, func(t *testing.T) { h.ok(h.do("POST", "/v1/data-streams", tc.body), tc.want, nil) })
	}
	// It runs on schedule like the others.
	h.clk.Advance(25 * time.Hour)
	var jobs []tJob
	h.ok(h.do("POST", fmt.Sprintf("/v1/data-streams/api/%d/stats", created.ID), map[string]int{"pageSize": 10, "pageNumber": 1}), 200, &jobs)
	if len(jobs) != 1 {
		t.Errorf("new stream has %d jobs after a day, want 1", len(jobs))
	}
}

// Paging gives every job exactly once, in the configured order, whatever the page size
// and the cap; a page past the end is [].
func TestStatsPaging(t *testing.T) {
	for _, tc := range []struct {
		order    string
		maxPage  int
		pageSize int
		wantPage int // items on a full page
	}{
		{"asc", 0, 7, 7},
		{"desc", 0, 7, 7},
		{"asc", 5, 7, 5},
		{"desc", 5, 100, 5},
		{"asc", 0, 2000, 1000},
	} {
		t.Run(fmt.Sprintf("%s-max%d-size%d", tc.order, tc.maxPage, tc.pageSize), func(t *testing.T) {
			h := newHarness(t, Options{StatsOrder: tc.order, MaxPageSize: tc.maxPage, JobsPerStream: 30})
			st := firstStream(t, h.sim, func(tStream) bool { return true })
			var want []int64
			for _, j := range decodeAll[tJob](t, h.sim.Truth().Jobs) {
				if j.DataStreamID == st.ID {
					want = append(want, j.ID)
				}
			}
			if tc.order == "desc" {
				slices.Reverse(want)
			}
			var got []int64
			for page := 1; ; page++ {
				var jobs []tJob
				h.ok(h.do("POST", fmt.Sprintf("/v1/data-streams/api/%d/stats", st.ID), map[string]int{"pageSize": tc.pageSize, "pageNumber": page}), 200, &jobs)
				if len(jobs) > tc.wantPage {
					t.Fatalf("page %d has %d items, want at most %d", page, len(jobs), tc.wantPage)
				}
				for _, j := range jobs {
					got = append(got, j.ID)
				}
				if len(jobs) < tc.wantPage {
					break
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("paged ids %v, want %v", got, want)
			}
			var past []tJob
			h.ok(h.do("POST", fmt.Sprintf("/v1/data-streams/api/%d/stats", st.ID), map[string]int{"pageSize": tc.pageSize, "pageNumber": 99}), 200, &past)
			if len(past) != 0 {
				t.Errorf("page past the end has %d items", len(past))
			}
			if tc.pageSize > tc.wantPage && h.sim.Calls().Notes["page_size_capped"] == 0 {
				t.Error("capped pages not noted in Calls")
			}
			// 10b: the variant without /api/ answers the same.
			var first, first10b []tJob
			h.ok(h.do("POST", fmt.Sprintf("/v1/data-streams/api/%d/stats", st.ID), map[string]int{"pageSize": 3, "pageNumber": 1}), 200, &first)
			h.ok(h.do("POST", fmt.Sprintf("/v1/data-streams/%d/stats", st.ID), map[string]int{"pageSize": 3}), 200, &first10b)
			if !reflect.DeepEqual(first, first10b) {
				t.Errorf("10b variant answered %v, want %v", first10b, first)
			}
		})
	}
	h := newHarness(t, Options{})
	st := firstStream(t, h.sim, func(tStream) bool { return true })
	h.ok(h.do("POST", fmt.Sprintf("/v1/data-streams/api/%d/stats", st.ID), map[string]int{"pageSize": 10, "pageNumber": 0}), 400, nil)
}

// Token 1 sees everything; another token sees a strict subset, gets 403 on a
// workspace-scoped path of another workspace and 404 for that workspace's streams and
// jobs. A missing or unknown token is 401; "Bearer " is accepted.
func TestTokenVisibility(t *testing.T) {
	h := newHarness(t, Options{Tokens: 3, Workspaces: 4})
	tr := h.sim.Truth()
	all := decodeAll[tWorkspace](t, tr.Workspaces)
	tok2 := h.sim.Tokens()[1]
	var seen1, seen2 []tWorkspace
	h.get("/v1/workspaces", &seen1)
	h.ok(h.do("GET", "/v1/workspaces", nil, withToken(tok2)), 200, &seen2)
	if len(seen1) != len(all) || len(seen2) == 0 || len(seen2) >= len(all) {
		t.Fatalf("token 1 sees %d, token 2 sees %d of %d workspaces", len(seen1), len(seen2), len(all))
	}
	var wantIDs []int64
	for _, w := range seen2 {
		wantIDs = append(wantIDs, w.ID)
	}
	if !slices.Equal(tr.TokenWorkspaces["2"], wantIDs) {
		t.Errorf("truth says token 2 sees %v, API %v", tr.TokenWorkspaces["2"], wantIDs)
	}
	var hidden int64
	for _, w := range all {
		if !slices.Contains(wantIDs, w.ID) {
			hidden = w.ID
		}
	}
	var hiddenStream tStream
	var hiddenJob tJob
	for _, s := range decodeAll[tStream](t, tr.Streams) {
		if s.WorkspaceID == hidden {
			hiddenStream = s
		}
	}
	for _, j := range decodeAll[tJob](t, tr.Jobs) {
		if j.DataStreamID == hiddenStream.ID {
			hiddenJob = j
		}
	}
	as2 := withToken(tok2)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{"GET", fmt.Sprintf("/v1/workspaces/%d", hidden), 403},
		{"GET", fmt.Sprintf("/v1/workspaces/%d/data-streams", hidden), 403},
		{"GET", fmt.Sprintf("/v1/workspaces/%d/dimensions", hidden), 403},
		{"GET", "/v1/workspaces/1", 404},
		{"GET", fmt.Sprintf("/v1/data-streams/%d", hiddenStream.ID), 404},
		{"GET", fmt.Sprintf("/v1/data-stream-stat/%d", hiddenJob.ID), 404},
		{"PATCH", fmt.Sprintf("/v1/data-streams/%d", hiddenStream.ID), 404},
	} {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			h.ok(h.do(tc.method, tc.path, `{"enabled":false}`, as2), tc.want, nil)
			h.ok(h.do("GET", fmt.Sprintf("/v1/data-streams/%d", hiddenStream.ID), nil), 200, nil)
		})
	}
	h.ok(h.do("GET", "/v1/workspaces", nil, withToken("")), 401, nil)
	h.ok(h.do("GET", "/v1/workspaces", nil, withToken("dato-api-wrong")), 401, nil)
	h.ok(h.do("GET", "/v1/workspaces", nil, withToken("Bearer "+h.token)), 200, nil)
	h.ok(h.do("GET", "/v1/workspaces", nil, func(r *http.Request) { r.Header.Set("sandbox-mode", "true") }), 200, nil)
	c := h.sim.Calls()
	if c.ByToken["none"] != 2 || c.Notes["bearer_auth"] != 1 || c.Notes["sandbox_mode"] != 1 || c.ByStatus["401"] != 2 {
		t.Errorf("calls %+v", c)
	}
}

// Every other endpoint of the index answers in the shape the facts file gives.
func TestOtherEndpoints(t *testing.T) {
	h := newHarness(t, Options{})
	tr := h.sim.Truth()
	ws := decodeAll[tWorkspace](t, tr.Workspaces)[0]
	wsPath := fmt.Sprintf("/v1/workspaces/%d", ws.ID)
	var one tWorkspace
	h.get(wsPath, &one)
	if one != ws {
		t.Errorf("GET workspace %+v, want %+v", one, ws)
	}
	var streams []tStream
	h.get(wsPath+"/data-streams", &streams)
	api := streams[0]
	var tc tStream
	for _, s := range streams {
		if s.DataSourceName == "TotalConnect" {
			tc = s
		}
		if s.DataSourceName != "TotalConnect" {
			api = s
		}
	}
	var scoped tStream
	h.get(fmt.Sprintf("%s/data-streams/%d", wsPath, api.ID), &scoped)
	if scoped.ID != api.ID {
		t.Errorf("row 4 answered stream %d", scoped.ID)
	}
	// Bulk status: runStatus from the latest job, status from enabled; unknown ids left out.
	var bulk []struct {
		ID        int64   `json:"id"`
		RunStatus *string `json:"runStatus"`
		Status    string  `json:"status"`
	}
	h.get(fmt.Sprintf("%s/data-streams/status/bulk?ids=%d,%d,1", wsPath, api.ID, streams[1].ID), &bulk)
	wantEnabled := map[bool]string{true: "ENABLED", false: "DISABLED"}
	if len(bulk) != 2 || bulk[0].ID != api.ID || bulk[0].Status != wantEnabled[api.Enabled] || bulk[1].Status != wantEnabled[streams[1].Enabled] {
		t.Errorf("bulk status %+v", bulk)
	}
	jobs := map[int64][]tJob{}
	for _, j := range decodeAll[tJob](t, tr.Jobs) {
		jobs[j.DataStreamID] = append(jobs[j.DataStreamID], j)
	}
	if latest := jobs[api.ID][len(jobs[api.ID])-1]; bulk[0].RunStatus == nil || *bulk[0].RunStatus != latest.Status {
		t.Errorf("bulk runStatus %v, latest job %+v", bulk[0].RunStatus, latest)
	}
	h.ok(h.do("GET", wsPath+"/data-streams/status/bulk", nil), 400, nil)

	// One stat; rerun; rerun-all.
	var success tJob
	for _, j := range jobs[api.ID] {
		if j.Status == "SUCCESS" {
			success = j
		}
	}
	var stat tJob
	h.get(fmt.Sprintf("/v1/data-stream-stat/%d", success.ID), &stat)
	if !reflect.DeepEqual(stat, success) {
		t.Errorf("stat %+v, want %+v", stat, success)
	}
	if !strings.Contains(stat.ProcessLog, "Job finished successfully") {
		t.Errorf("processLog %q", stat.ProcessLog)
	}
	var rerun []tJob
	h.ok(h.do("POST", fmt.Sprintf("/v1/data-streams/api/%d/rerun", api.ID), []int64{success.ID}), 200, &rerun)
	if len(rerun) != 1 || rerun[0].ID <= success.ID || rerun[0].Status != "PENDING" || rerun[0].DataStartDate != success.DataStartDate {
		t.Errorf("rerun %+v of %+v", rerun, success)
	}
	var otherJob int64
	for id, js := range jobs {
		if id != api.ID {
			otherJob = js[0].ID
		}
	}
	h.ok(h.do("POST", fmt.Sprintf("/v1/data-streams/api/%d/rerun", api.ID), []int64{otherJob}), 404, nil)
	h.ok(h.do("POST", fmt.Sprintf("/v1/data-streams/api/%d/rerun", api.ID), []int64{}), 400, nil)
	var all []tJob
	h.ok(h.do("POST", fmt.Sprintf("/v1/data-streams/api/%d/rerun-all", api.ID), nil), 200, &all)
	ranges := map[string]bool{}
	for _, j := range jobs[api.ID] {
		ranges[j.DataStartDate+j.DataEndDate] = true
	}
	if len(all) == 0 || len(all) > len(ranges) {
		t.Errorf("rerun-all made %d jobs for %d date ranges", len(all), len(ranges))
	}

	// Downloads: zip for API streams, CSV for TotalConnect, each 400 on the other path.
	r := h.do("GET", fmt.Sprintf("/v1/data-stream-stats/api/%d/download", success.ID), nil)
	h.ok(r, 200, nil)
	if r.header.Get("Content-Type") != "application/zip" || !strings.Contains(r.header.Get("Content-Disposition"), fmt.Sprintf(`filename="%d.zip"`, success.ID)) {
		t.Errorf("zip headers %v", r.header)
	}
	zr, err := zip.NewReader(bytes.NewReader(r.body), int64(len(r.body)))
	if err != nil || len(zr.File) != 1 {
		t.Fatalf("zip: %v", err)
	}
	f, _ := zr.File[0].Open()
	csv, _ := io.ReadAll(f)
	if !strings.HasPrefix(string(csv), "Date,") || !strings.Contains(string(csv), success.DataStartDate) {
		t.Errorf("zip csv %q", csv)
	}
	h.ok(h.do("GET", fmt.Sprintf("/v1/data-stream-stats/dynamic/%d/download", success.ID), nil), 400, nil)
	if tc.ID != 0 {
		for _, j := range jobs[tc.ID] {
			if j.Status == "SUCCESS" {
				r := h.do("GET", fmt.Sprintf("/v1/data-stream-stats/dynamic/%d/download", j.ID), nil)
				h.ok(r, 200, nil)
				if !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") || !strings.Contains(string(r.body), j.DataStartDate) {
					t.Errorf("TotalConnect download: %v %q", r.header, truncate(r.body))
				}
				h.ok(h.do("GET", fmt.Sprintf("/v1/data-stream-stats/api/%d/download", j.ID), nil), 400, nil)
				break
			}
		}
	}

	// Mapping: GET the object, PUT a new one; the stream's config embeds it.
	var mapping map[string]json.RawMessage
	h.get(fmt.Sprintf("/v1/data-streams/api/%d/mapping", api.ID), &mapping)
	if string(mapping["dataStreamId"]) != strconv.FormatInt(api.ID, 10) || len(mapping["fields"]) < 10 {
		t.Errorf("mapping %v", mapping)
	}
	newMap := map[string]any{"fields": []map[string]string{{"sourceField": "a", "targetField": "CAMPAIGN_NAME", "type": "DIMENSION"}}}
	h.ok(h.do("PUT", fmt.Sprintf("/v1/data-streams/api/%d/mapping", api.ID), newMap), 200, nil)
	var after tStream
	h.get(fmt.Sprintf("/v1/data-streams/%d", api.ID), &after)
	if !strings.Contains(string(after.Config), `"sourceField":"a"`) || after.UpdateTime <= api.UpdateTime {
		t.Errorf("config after mapping PUT %s (updateTime %d → %d)", after.Config, api.UpdateTime, after.UpdateTime)
	}
	var truthMap map[string]json.RawMessage
	_ = json.Unmarshal(h.sim.Truth().Mappings[strconv.FormatInt(api.ID, 10)], &truthMap)
	if !strings.Contains(string(truthMap["fields"]), `"sourceField":"a"`) {
		t.Errorf("truth mapping %s", truthMap["fields"])
	}

	// Workspace metadata: maps keyed by system name; arrays; the hierarchy.
	var dims, meas map[string]struct {
		SystemName  string `json:"systemName"`
		DisplayName string `json:"displayName"`
	}
	h.get(wsPath+"/dimensions?type=dimensionType", &dims)
	h.get(wsPath+"/measurements?type=type", &meas)
	if dims["BRAND_DATA_SOURCE_INSTANCE"].DisplayName != "Data Stream" || meas["DATA_STREAM_TOTAL_ROWS"].SystemName != "DATA_STREAM_TOTAL_ROWS" {
		t.Errorf("dimensions %v measurements %v", dims, meas)
	}
	var hds []struct {
		ID int64 `json:"id"`
	}
	h.get(wsPath+"/harmonized-dimensions", &hds)
	var patterns, calcs []map[string]any
	h.get(wsPath+"/patterns", &patterns)
	h.get(wsPath+"/calculated-measurements", &calcs)
	if len(hds) == 0 || len(patterns) == 0 || len(calcs) == 0 {
		t.Fatalf("harmonized %d patterns %d calculated %d", len(hds), len(patterns), len(calcs))
	}
	var pat map[string]any
	h.ok(h.do("POST", "/v1/harmonization/patterns", map[string]any{"workspaceId": ws.ID, "harmonizedDimensionId": hds[0].ID, "name": "p"}), 201, &pat)
	h.ok(h.do("POST", "/v1/harmonization/patterns", map[string]any{"workspaceId": ws.ID, "harmonizedDimensionId": 1, "name": "p"}), 400, nil)
	h.ok(h.do("POST", wsPath+"/calculated-measurements", map[string]any{"workspaceId": ws.ID, "name": "ROAS", "formula": "REVENUE / MEDIA_COST"}), 201, nil)
	h.ok(h.do("POST", wsPath+"/calculated-measurements", nil), 400, nil)
	var patterns2, calcs2 []map[string]any
	h.get(wsPath+"/patterns", &patterns2)
	h.get(wsPath+"/calculated-measurements", &calcs2)
	if len(patterns2) != len(patterns)+1 || len(calcs2) != len(calcs)+1 {
		t.Errorf("created pattern/calculated measurement not listed")
	}
	var conn map[string]any
	h.get(fmt.Sprintf("/v1/connectors/%d", api.DataSourceID), &conn)
	if conn["name"] != api.DataSourceName {
		t.Errorf("connector %v for stream source %q", conn, api.DataSourceName)
	}
	h.ok(h.do("GET", "/v1/connectors/5", nil), 404, nil)
	var hier struct {
		Dashboards []map[string]any `json:"dashboards"`
		Widgets    []struct {
			ID          int64 `json:"id"`
			PageID      int64 `json:"pageId"`
			DashboardID int64 `json:"dashboardId"`
		} `json:"widgets"`
	}
	h.get(wsPath+"/dashboards/hierarchy", &hier)
	if len(hier.Dashboards) == 0 || len(hier.Widgets) == 0 || hier.Widgets[0].PageID == 0 {
		t.Errorf("hierarchy %+v", hier)
	}
	// Unknown routes and methods answer JSON errors, counted under "unmatched".
	h.ok(h.do("GET", "/v1/nothing", nil), 404, nil)
	h.ok(h.do("DELETE", "/v1/workspaces", nil), 405, nil)
	if h.sim.Calls().ByEndpoint["unmatched"] != 2 {
		t.Errorf("unmatched calls: %v", h.sim.Calls().ByEndpoint)
	}
	// A path that is not clean is unknown too, answered with the rate headers like any
	// other call, not redirected by the mux.
	for _, p := range []string{"/v1//workspaces", "/v1/x/../workspaces", "/v1/./workspaces"} {
		r := h.do("GET", p, nil)
		h.ok(r, 404, nil)
		if r.header.Get("X-PlatformRateLimit-Remaining") == "" {
			t.Errorf("GET %s: no rate headers on the answer", p)
		}
	}
	if h.sim.Calls().ByEndpoint["unmatched"] != 5 {
		t.Errorf("unmatched calls after unclean paths: %v", h.sim.Calls().ByEndpoint)
	}
}

// Every row 1–24 and 28–29 of the facts file's endpoint index has a route.
func TestEndpointIndexCovered(t *testing.T) {
	h := newHarness(t, Options{})
	for _, route := range []string{
		"GET /v1/workspaces", "GET /v1/workspaces/{wsId}", "GET /v1/workspaces/{wsId}/data-streams",
		"GET /v1/workspaces/{wsId}/data-streams/{id}", "GET /v1/workspaces/{wsId}/data-streams/status/bulk",
		"GET /v1/data-streams/{id}", "PUT /v1/data-streams/{id}", "PATCH /v1/data-streams/{id}",
		"DELETE /v1/data-streams/{id}", "POST /v1/data-streams", "POST /v1/data-streams/{id}/process",
		"POST /v1/data-streams/process", "POST /v1/data-streams/api/{id}/stats", "POST /v1/data-streams/{id}/stats",
		"GET /v1/data-stream-stat/{statId}", "POST /v1/data-streams/api/{id}/rerun",
		"POST /v1/data-streams/api/{id}/rerun-all", "GET /v1/data-stream-stats/api/{statId}/download",
		"GET /v1/data-stream-stats/dynamic/{statId}/download", "GET /v1/data-streams/api/{id}/mapping",
		"PUT /v1/data-streams/api/{id}/mapping", "GET /v1/workspaces/{wsId}/dimensions",
		"GET /v1/workspaces/{wsId}/measurements", "GET /v1/workspaces/{wsId}/harmonized-dimensions",
		"GET /v1/workspaces/{wsId}/patterns", "POST /v1/harmonization/patterns",
		"GET /v1/workspaces/{wsId}/calculated-measurements", "POST /v1/workspaces/{wsId}/calculated-measurements",
		"GET /v1/connectors/{id}", "GET /v1/workspaces/{wsId}/dashboards/hierarchy",
		"POST /v1/query", "POST /v1/query-batch",
	} {
		method, path, _ := strings.Cut(route, " ")
		path = strings.NewReplacer("{wsId}", "1", "{id}", "2", "{statId}", "3").Replace(path)
		h.do(method, path, "{}")
		if got := h.sim.Calls().ByEndpoint[route]; got != 1 {
			t.Errorf("%s: not routed (by endpoint %v)", route, h.sim.Calls().ByEndpoint)
		}
		h.sim.ResetCalls()
	}
}
