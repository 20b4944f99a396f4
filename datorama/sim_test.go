package datorama

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/sim"
)

// These tests run every client method against the simulator over real HTTP, mounted
// under /base, and check the results against the simulator's ground truth.

var simStart = time.Date(2024, 7, 13, 12, 0, 0, 0, time.UTC)

type simEnv struct {
	*testEnv
	s *sim.Sim
}

// newSim serves a simulator for o and a client of its first token. Unless shared is
// set, the simulator's clock is frozen (a Manual nobody advances), so its truth stays
// exactly what the client read, while the client's backoffs run on the client's own
// auto-advancing clock. shared makes both use one auto-advancing clock, for tests where
// the simulator's rate windows must reopen.
func newSim(t *testing.T, o sim.Options, shared bool, eo ...envOption) *simEnv {
	t.Helper()
	simClk := clock.NewManual(simStart)
	o.Clock = simClk
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.PlatformLimit == 0 {
		o.PlatformLimit = 1_000_000
	}
	if o.QueryLimit == 0 {
		o.QueryLimit = 1_000_000
	}
	if o.DailyQuota == 0 {
		o.DailyQuota = 10_000_000
	}
	s := sim.New(o)
	opts := []envOption{withToken(s.Tokens()[0])}
	if shared {
		opts = append(opts, withClock(simClk))
	} else {
		opts = append(opts, withClock(clock.NewManual(simStart)))
	}
	return &simEnv{testEnv: newEnv(t, serve(t, s), append(opts, eo...)...), s: s}
}

// truthOf decodes the simulator's truth with the client's own decoders.
type truthOf struct {
	raw        sim.Truth
	workspaces map[int64]Workspace
	streams    map[int64]Stream
	jobs       map[int64][]Job // by stream, ascending id
	jobByID    map[int64]Job
}

func decodeTruth(t *testing.T, tr sim.Truth) *truthOf {
	t.Helper()
	out := &truthOf{raw: tr, workspaces: map[int64]Workspace{}, streams: map[int64]Stream{}, jobs: map[int64][]Job{}, jobByID: map[int64]Job{}}
	for _, r := range tr.Workspaces {
		w, err := decodeRecord[Workspace](r, "truth workspace", nil)
		if err != nil {
			t.Fatal(err)
		}
		out.workspaces[w.ID] = *w
	}
	for _, r := range tr.Streams {
		s, err := decodeRecord[Stream](r, "truth stream", nil)
		if err != nil {
			t.Fatal(err)
		}
		out.streams[s.ID] = *s
	}
	for _, r := range tr.Jobs {
		j, err := decodeRecord(r, "truth job", jobOf(0))
		if err != nil {
			t.Fatal(err)
		}
		out.jobs[int64(j.DataStreamID)] = append(out.jobs[int64(j.DataStreamID)], *j)
		out.jobByID[j.ID] = *j
	}
	for id := range out.jobs {
		slices.SortFunc(out.jobs[id], func(a, b Job) int { return int(a.ID - b.ID) })
	}
	return out
}

func (tr *truthOf) streamIDs(ws int64) []int64 {
	var ids []int64
	for _, s := range tr.streams {
		if int64(s.WorkspaceID) == ws {
			ids = append(ids, s.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func (tr *truthOf) workspaceIDs() []int64 { return slices.Sorted(maps.Keys(tr.workspaces)) }

// sameJSON reports whether two JSON texts are the same value.
func sameJSON(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xa, yb)
}

// checkJobs compares a listing with the truth of one stream: same ids, each once, same
// records.
func checkJobs(t *testing.T, streamID int64, got []Job, want []Job) {
	t.Helper()
	ids := func(js []Job) []int64 {
		out := make([]int64, len(js))
		for i, j := range js {
			out[i] = j.ID
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(ids(got), ids(want)) {
		t.Errorf("stream %d: got jobs %v, want %v", streamID, ids(got), ids(want))
		return
	}
	byID := map[int64]Job{}
	for _, j := range want {
		byID[j.ID] = j
	}
	for _, j := range got {
		if !sameJSON(j.Raw, byID[j.ID].Raw) {
			t.Errorf("job %d: got %s, want %s", j.ID, j.Raw, byID[j.ID].Raw)
		}
	}
}

func allJobs(t *testing.T, c *Client, streamID int64, pageSize int) ([]Job, error) {
	t.Helper()
	var out []Job
	for j, err := range c.Jobs.allPages(t.Context(), streamID, pageSize) {
		if err != nil {
			return out, err
		}
		out = append(out, *j)
	}
	return out, nil
}

// TestSimulatorReads calls every reading method and checks it against the truth and
// against its doc comment's endpoint (the path the observer saw).
func TestSimulatorReads(t *testing.T) {
	e := newSim(t, sim.Options{Workspaces: 3, Streams: 24, JobsPerStream: 12}, false)
	tr := decodeTruth(t, e.s.Truth())
	docs := endpointDocs(t)
	ctx := t.Context()
	step := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			from := len(e.rec.all())
			f(t)
			recs := e.rec.all()[from:]
			if len(recs) == 0 {
				t.Fatal("no call was made")
			}
			for _, r := range recs {
				if got := r.Method + " " + r.PathTemplate; got != docs[name] {
					t.Errorf("%s called %s; its doc comment says %s", name, got, docs[name])
				}
			}
		})
	}

	step("WorkspacesService.List", func(t *testing.T) {
		ws, err := e.c.Workspaces.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != len(tr.workspaces) {
			t.Fatalf("%d workspaces, want %d", len(ws), len(tr.workspaces))
		}
		for _, w := range ws {
			if !sameJSON(w.Raw, tr.workspaces[w.ID].Raw) || w.Name != tr.workspaces[w.ID].Name {
				t.Errorf("workspace %d differs from the truth", w.ID)
			}
		}
	})
	step("WorkspacesService.Get", func(t *testing.T) {
		for _, id := range tr.workspaceIDs() {
			w, err := e.c.Workspaces.Get(ctx, id)
			if err != nil || !sameJSON(w.Raw, tr.workspaces[id].Raw) {
				t.Errorf("workspace %d: %v", id, err)
			}
		}
	})
	step("StreamsService.List", func(t *testing.T) {
		seen := 0
		for _, ws := range tr.workspaceIDs() {
			list, err := e.c.Streams.List(ctx, ws)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range list {
				seen++
				if int64(s.WorkspaceID) != ws || !sameJSON(s.Raw, tr.streams[s.ID].Raw) {
					t.Errorf("stream %d differs from the truth", s.ID)
				}
			}
		}
		if seen != len(tr.streams) {
			t.Errorf("%d streams listed, want %d", seen, len(tr.streams))
		}
	})
	step("StreamsService.Get", func(t *testing.T) {
		for id, want := range tr.streams {
			s, err := e.c.Streams.Get(ctx, id)
			if err != nil || !sameJSON(s.Raw, want.Raw) {
				t.Errorf("stream %d: %v", id, err)
			}
		}
	})
	step("StreamsService.GetInWorkspace", func(t *testing.T) {
		for id, want := range tr.streams {
			s, err := e.c.Streams.GetInWorkspace(ctx, int64(want.WorkspaceID), id)
			if err != nil || !sameJSON(s.Raw, want.Raw) {
				t.Errorf("stream %d: %v", id, err)
			}
		}
	})
	step("StreamsService.BulkStatus", func(t *testing.T) {
		for _, ws := range tr.workspaceIDs() {
			ids := tr.streamIDs(ws)
			got, err := e.c.Streams.BulkStatus(ctx, ws, ids)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(ids) {
				t.Errorf("workspace %d: %d statuses for %d streams", ws, len(got), len(ids))
			}
			for _, st := range got {
				s := tr.streams[st.ID]
				want := map[bool]string{true: "ENABLED", false: "DISABLED"}[s.Enabled]
				jobs := tr.jobs[st.ID]
				wantRun := ""
				if len(jobs) > 0 {
					wantRun = jobs[len(jobs)-1].Status
				}
				if st.Status != want || st.RunStatus != wantRun {
					t.Errorf("stream %d: status %s/%s, want %s/%s", st.ID, st.Status, st.RunStatus, want, wantRun)
				}
			}
		}
	})
	var many int64 // a stream with more than one page of 5
	for id, js := range tr.jobs {
		if len(js) > 5 && (many == 0 || id < many) {
			many = id
		}
	}
	if many == 0 {
		t.Fatal("the account has no stream with more than 5 jobs")
	}
	step("JobsService.Page", func(t *testing.T) {
		page, err := e.c.Jobs.Page(ctx, many, 5, 1)
		if err != nil {
			t.Fatal(err)
		}
		checkJobs(t, many, page, tr.jobs[many][:5])
	})
	step("JobsService.allPages", func(t *testing.T) {
		for id := range tr.streams {
			got, err := allJobs(t, e.c, id, 5)
			if err != nil {
				t.Fatal(err)
			}
			checkJobs(t, id, got, tr.jobs[id])
		}
	})
	step("JobsService.Get", func(t *testing.T) {
		for _, want := range tr.jobs[many] {
			j, err := e.c.Jobs.Get(ctx, want.ID)
			if err != nil || !sameJSON(j.Raw, want.Raw) {
				t.Errorf("job %d: %v", want.ID, err)
			}
		}
	})
	successOf := func(totalConnect bool) int64 {
		for _, id := range slices.Sorted(maps.Keys(tr.streams)) {
			if s := tr.streams[id]; s.IsTotalConnect() != totalConnect {
				continue
			}
			for _, j := range tr.jobs[id] {
				if j.Status == StatusSuccess {
					return j.ID
				}
			}
		}
		t.Fatalf("no SUCCESS job of a stream with TotalConnect=%v", totalConnect)
		return 0
	}
	step("JobsService.Download", func(t *testing.T) {
		var buf bytes.Buffer
		n, err := e.c.Jobs.Download(ctx, successOf(false), &buf)
		if err != nil || n != int64(buf.Len()) || !bytes.HasPrefix(buf.Bytes(), []byte("PK\x03\x04")) {
			t.Fatalf("n=%d err=%v: want a zip file", n, err)
		}
	})
	step("JobsService.DownloadTotalConnect", func(t *testing.T) {
		var buf bytes.Buffer
		n, err := e.c.Jobs.DownloadTotalConnect(ctx, successOf(true), &buf)
		if err != nil || n == 0 || n != int64(buf.Len()) || !bytes.Contains(buf.Bytes(), []byte(",")) {
			t.Fatalf("n=%d err=%v: want a CSV file", n, err)
		}
	})
	step("MappingsService.Get", func(t *testing.T) {
		for id := range tr.streams {
			m, err := e.c.Mappings.Get(ctx, id)
			if err != nil || m.StreamID != id || !sameJSON(m.Raw, tr.raw.Mappings[strconv.FormatInt(id, 10)]) {
				t.Errorf("mapping of %d: %v", id, err)
			}
		}
	})
	fieldStep := func(name string, list func(ws int64) ([]Field, error), truth map[string]json.RawMessage) {
		step(name, func(t *testing.T) {
			for _, ws := range tr.workspaceIDs() {
				got, err := list(ws)
				if err != nil {
					t.Fatal(err)
				}
				want, err := decodeFields(truth[strconv.FormatInt(ws, 10)], name)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) == 0 || dump(got) != dump(want) {
					t.Errorf("workspace %d: %d fields, want %d equal to the truth", ws, len(got), len(want))
				}
			}
		})
	}
	fieldStep("MetadataService.Dimensions", func(ws int64) ([]Field, error) { return e.c.Metadata.Dimensions(ctx, ws, "") }, tr.raw.Dimensions)
	fieldStep("MetadataService.Measurements", func(ws int64) ([]Field, error) { return e.c.Metadata.Measurements(ctx, ws, "type") }, tr.raw.Measurements)
	listStep := func(name string, list func(ws int64) (any, error), decode func([]byte) (any, error), truth map[string]json.RawMessage) {
		step(name, func(t *testing.T) {
			for _, ws := range tr.workspaceIDs() {
				got, err := list(ws)
				if err != nil {
					t.Fatal(err)
				}
				want, err := decode(truth[strconv.FormatInt(ws, 10)])
				if err != nil {
					t.Fatal(err)
				}
				if dump(got) != dump(want) {
					t.Errorf("workspace %d differs from the truth:\n%s\nwant\n%s", ws, dump(got), dump(want))
				}
			}
		})
	}
	listStep("MetadataService.HarmonizedDimensions",
		func(ws int64) (any, error) { return e.c.Metadata.HarmonizedDimensions(ctx, ws) },
		func(b []byte) (any, error) { return decodeRecords[HarmonizedDimension](b, "h", nil) }, tr.raw.HarmonizedDimensions)
	listStep("MetadataService.Patterns",
		func(ws int64) (any, error) { return e.c.Metadata.Patterns(ctx, ws) },
		func(b []byte) (any, error) { return decodeRecords[Pattern](b, "p", nil) }, tr.raw.Patterns)
	listStep("MetadataService.CalculatedMeasurements",
		func(ws int64) (any, error) { return e.c.Metadata.CalculatedMeasurements(ctx, ws) },
		func(b []byte) (any, error) { return decodeRecords[CalculatedMeasurement](b, "c", nil) }, tr.raw.CalculatedMeasurements)
	listStep("DashboardsService.Hierarchy",
		func(ws int64) (any, error) { return e.c.Dashboards.Hierarchy(ctx, ws) },
		func(b []byte) (any, error) { return decodeRecord[DashboardHierarchy](b, "d", nil) }, tr.raw.Dashboards)
	step("ConnectorsService.Get", func(t *testing.T) {
		if len(tr.raw.Connectors) == 0 {
			t.Fatal("no connectors in the truth")
		}
		for k, raw := range tr.raw.Connectors {
			id, _ := strconv.ParseInt(k, 10, 64)
			c, err := e.c.Connectors.Get(ctx, id)
			if err != nil || !sameJSON(c.Raw, raw) {
				t.Errorf("connector %d: %v", id, err)
			}
		}
	})

	// The Query API answers from the days SUCCESS jobs loaded (Truth.DailyRows).
	ws := tr.workspaceIDs()[0]
	rowsByStream := map[string]int64{}
	first, last := "", ""
	for _, r := range tr.raw.DailyRows {
		if r.WorkspaceID != ws {
			continue
		}
		rowsByStream[tr.streams[r.DataStreamID].Name] += r.Rows
		if first == "" || r.Date < first {
			first = r.Date
		}
		last = max(last, r.Date)
	}
	if len(rowsByStream) == 0 {
		t.Fatal("no daily rows in the first workspace")
	}
	q := QueryRequest{WorkspaceID: ws, DateRange: "CUSTOM", StartDate: mustDate(t, first), EndDate: mustDate(t, last),
		Measurements: []Measure{{"Data Stream Total Rows"}}, Dimensions: []string{"Data Stream"}, TopResults: 1000}
	checkRows := func(t *testing.T, res *QueryResult, headers []string) {
		t.Helper()
		if !slices.Equal(res.Headers, headers) {
			t.Errorf("headers %v, want %v", res.Headers, headers)
		}
		got := map[string]int64{}
		for _, row := range res.Rows {
			var name string
			var n int64
			if len(row) != 2 || json.Unmarshal(row[0], &name) != nil || json.Unmarshal(row[1], &n) != nil {
				t.Fatalf("row %s", row)
			}
			got[name] = n
		}
		if !maps.Equal(got, rowsByStream) {
			t.Errorf("rows per stream %v, want %v", got, rowsByStream)
		}
	}
	step("QueryService.Run", func(t *testing.T) {
		res, err := e.c.Query.Run(ctx, q, false)
		if err != nil {
			t.Fatal(err)
		}
		checkRows(t, res, []string{"Data Stream", "Data Stream Total Rows"})
		res, err = e.c.Query.Run(ctx, q, true)
		if err != nil {
			t.Fatal(err)
		}
		checkRows(t, res, []string{"BRAND_DATA_SOURCE_INSTANCE", "DATA_STREAM_TOTAL_ROWS"})
		bad := q
		bad.Dimensions = []string{"No Such Dimension"}
		_, err = e.c.Query.Run(ctx, bad, false)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 422 || !strings.Contains(ae.Message, "No Such Dimension") {
			t.Errorf("unknown dimension: %v", err)
		}
	})
	step("QueryService.Batch", func(t *testing.T) {
		res, err := e.c.Query.Batch(ctx, []QueryRequest{q, q})
		if err != nil || len(res) != 2 {
			t.Fatalf("%d results, %v", len(res), err)
		}
		checkRows(t, &res[0], []string{"Data Stream", "Data Stream Total Rows"})
		checkRows(t, &res[1], []string{"Data Stream", "Data Stream Total Rows"})
	})
}

// TestSimulatorChanges calls every state-changing method and checks the truth after.
func TestSimulatorChanges(t *testing.T) {
	e := newSim(t, sim.Options{Workspaces: 2, Streams: 8, JobsPerStream: 6}, false)
	tr := decodeTruth(t, e.s.Truth())
	docs := endpointDocs(t)
	ctx := t.Context()
	ws := tr.workspaceIDs()[0]
	ids := tr.streamIDs(ws)
	sid := ids[0]
	step := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			from := len(e.rec.all())
			f(t)
			for _, r := range e.rec.all()[from:] {
				if got := r.Method + " " + r.PathTemplate; got != docs[name] {
					t.Errorf("%s called %s; its doc comment says %s", name, got, docs[name])
				}
			}
			tr = decodeTruth(t, e.s.Truth())
		})
	}
	step("StreamsService.Patch", func(t *testing.T) {
		want := !tr.streams[sid].Enabled
		s, err := e.c.Streams.Patch(ctx, sid, map[string]any{"enabled": want})
		if err != nil {
			t.Fatal(err)
		}
		after := decodeTruth(t, e.s.Truth()).streams[sid]
		if (s != nil && s.Enabled != want) || after.Enabled != want || after.Name != tr.streams[sid].Name {
			t.Errorf("after PATCH enabled=%v: answer %+v, truth %+v", want, s, after)
		}
	})
	cur, err := e.c.Streams.Get(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	step("StreamsService.Put", func(t *testing.T) {
		var m map[string]any
		_ = json.Unmarshal(cur.Raw, &m)
		m["name"] = "Renamed by PUT"
		if _, err := e.c.Streams.Put(ctx, sid, m); err != nil {
			t.Fatal(err)
		}
		if got := decodeTruth(t, e.s.Truth()).streams[sid].Name; got != "Renamed by PUT" {
			t.Errorf("name after PUT %q", got)
		}
	})
	var created int64
	step("StreamsService.Create", func(t *testing.T) {
		src := tr.streams[sid]
		s, err := e.c.Streams.Create(ctx, map[string]any{"name": "Created by the client test", "workspaceId": ws, "dataSourceId": int64(src.DataSourceID)})
		if err != nil {
			t.Fatal(err)
		}
		created = s.ID
		got, ok := decodeTruth(t, e.s.Truth()).streams[s.ID]
		if !ok || got.Name != "Created by the client test" || !sameJSON(got.Raw, s.Raw) {
			t.Errorf("created stream %d not in the truth as answered", s.ID)
		}
	})
	step("StreamsService.Delete", func(t *testing.T) {
		if err := e.c.Streams.Delete(ctx, created); err != nil {
			t.Fatal(err)
		}
		if _, ok := decodeTruth(t, e.s.Truth()).streams[created]; ok {
			t.Error("deleted stream still in the truth")
		}
		if err := e.c.Streams.Delete(ctx, created); !IsNotFound(err) {
			t.Errorf("second delete: %v", err)
		}
	})
	newJobs := func(t *testing.T, got []Job, n int) {
		t.Helper()
		after := decodeTruth(t, e.s.Truth())
		if n >= 0 && len(got) != n {
			t.Errorf("%d jobs, want %d", len(got), n)
		}
		for _, j := range got {
			if _, existed := tr.jobByID[j.ID]; existed {
				t.Errorf("job %d existed before", j.ID)
			}
			if _, ok := after.jobByID[j.ID]; !ok {
				t.Errorf("job %d is not in the truth", j.ID)
			}
		}
	}
	step("JobsService.Process", func(t *testing.T) {
		got, err := e.c.Jobs.Process(ctx, sid, mustDate(t, "2024-06-04"), mustDate(t, "2024-07-13"))
		if err != nil {
			t.Fatal(err)
		}
		newJobs(t, got, 4)
		for i, j := range got {
			if j.ID != got[0].ID+int64(i) || j.DataStartDate.String() != mustDate(t, "2024-06-04").AddDays(10*i).String() {
				t.Errorf("job %d: id %d start %s: want consecutive ids and 10-day chunks", i, j.ID, j.DataStartDate)
			}
		}
	})
	step("JobsService.ProcessMany", func(t *testing.T) {
		got, err := e.c.Jobs.ProcessMany(ctx, ids[:2], mustDate(t, "2024-07-01"), mustDate(t, "2024-07-10"), false)
		if err != nil {
			t.Fatal(err)
		}
		newJobs(t, got, 2)
	})
	step("JobsService.Rerun", func(t *testing.T) {
		var done int64
		for _, j := range tr.jobs[ids[1]] {
			if IsFinal(j.Status) {
				done = j.ID
			}
		}
		if done == 0 {
			t.Fatal("no finished job to rerun")
		}
		got, err := e.c.Jobs.Rerun(ctx, ids[1], []int64{done})
		if err != nil {
			t.Fatal(err)
		}
		newJobs(t, got, 1)
	})
	step("JobsService.RerunAll", func(t *testing.T) {
		got, err := e.c.Jobs.RerunAll(ctx, ids[2])
		if err != nil {
			t.Fatal(err)
		}
		newJobs(t, got, -1)
	})
	step("MappingsService.Put", func(t *testing.T) {
		m := json.RawMessage(`{"fields": [{"source": "clicks", "target": "DELIVERY_CLICKS"}], "note": "from the client test"}`)
		got, err := e.c.Mappings.Put(ctx, sid, m)
		if err != nil {
			t.Fatal(err)
		}
		truth := decodeTruth(t, e.s.Truth()).raw.Mappings[strconv.FormatInt(sid, 10)]
		if !bytes.Contains(truth, []byte("from the client test")) || (got != nil && !sameJSON(got.Raw, truth)) {
			t.Errorf("mapping after PUT: answer %s, truth %s", got.Raw, truth)
		}
	})
	step("MetadataService.CreatePattern", func(t *testing.T) {
		hs, err := decodeRecords[HarmonizedDimension](tr.raw.HarmonizedDimensions[strconv.FormatInt(ws, 10)], "h", nil)
		if err != nil || len(hs) == 0 {
			t.Fatalf("no harmonized dimension: %v", err)
		}
		p, err := e.c.Metadata.CreatePattern(ctx, map[string]any{"workspaceId": ws, "harmonizedDimensionId": hs[0].ID,
			"name": "Pattern from the client test", "sourceDimension": "Campaign Name", "expression": "^x", "value": "X"})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(decodeTruth(t, e.s.Truth()).raw.Patterns[strconv.FormatInt(ws, 10)], []byte(strconv.FormatInt(p.ID, 10))) {
			t.Errorf("pattern %d not in the truth", p.ID)
		}
	})
	step("MetadataService.CreateCalculatedMeasurement", func(t *testing.T) {
		m, err := e.c.Metadata.CreateCalculatedMeasurement(ctx, ws, map[string]any{"workspaceId": ws, "name": "CTR test", "formula": "DELIVERY_CLICKS/DELIVERY_IMPRESSIONS"})
		if err != nil {
			t.Fatal(err)
		}
		if m.Name != "CTR test" || !bytes.Contains(decodeTruth(t, e.s.Truth()).raw.CalculatedMeasurements[strconv.FormatInt(ws, 10)], []byte(`"CTR test"`)) {
			t.Errorf("calculated measurement %+v not in the truth", m)
		}
	})
}

func TestSimulatorAccess(t *testing.T) {
	e := newSim(t, sim.Options{Workspaces: 4, Streams: 12, JobsPerStream: 3, Tokens: 2}, false)
	tr := decodeTruth(t, e.s.Truth())
	visible := map[int64]bool{}
	for _, id := range tr.raw.TokenWorkspaces["2"] {
		visible[id] = true
	}
	var hidden int64
	for _, id := range tr.workspaceIDs() {
		if !visible[id] {
			hidden = id
		}
	}
	if hidden == 0 {
		t.Fatal("token 2 sees every workspace")
	}
	env2 := newEnv(t, serve(t, e.s), withToken(e.s.Tokens()[1]))
	ctx := t.Context()
	ws, err := env2.c.Workspaces.List(ctx)
	if err != nil || len(ws) != len(visible) {
		t.Errorf("token 2 lists %d workspaces, want %d (%v)", len(ws), len(visible), err)
	}
	if _, err := env2.c.Workspaces.Get(ctx, hidden); !IsForbidden(err) {
		t.Errorf("hidden workspace: %v", err)
	}
	if _, err := env2.c.Streams.Get(ctx, tr.streamIDs(hidden)[0]); !IsNotFound(err) {
		t.Errorf("stream of a hidden workspace: %v", err)
	}
	bad := newEnv(t, serve(t, e.s), withToken("dato-api-00000000-0000-0000-0000-000000000000"))
	if _, err := bad.c.Workspaces.List(ctx); !IsUnauthorized(err) {
		t.Errorf("unknown token: %v", err)
	}
}

// TestSimulatorUnknowns: the client is right under every alternative the simulator can
// switch to for the facts file's unknowns.
func TestSimulatorUnknowns(t *testing.T) {
	tests := []struct {
		name     string
		opts     sim.Options
		pageSize int
		check    func(t *testing.T, e *simEnv, tr *truthOf)
	}{
		{name: "stats ascending", opts: sim.Options{StatsOrder: "asc"}, pageSize: 4},
		{name: "stats descending", opts: sim.Options{StatsOrder: "desc"}, pageSize: 4},
		{name: "page size capped below the request, caller passes the cap", opts: sim.Options{MaxPageSize: 3}, pageSize: 3},
		{name: "page size capped below the request, caller asks for more", opts: sim.Options{MaxPageSize: 3}, pageSize: 10,
			check: func(t *testing.T, e *simEnv, tr *truthOf) {
				// Documented limitation: every page looks short, so All stops after the
				// first. extract must pass the learned cap.
				for id, jobs := range tr.jobs {
					got, err := allJobs(t, e.c, id, 10)
					if err != nil {
						t.Fatal(err)
					}
					if want := min(len(jobs), 3); len(got) != want {
						t.Errorf("stream %d: %d jobs, want the first page only (%d)", id, len(got), want)
					}
				}
			}},
		{name: "lastRunStatus as a string", opts: sim.Options{LastRunStatus: "string"}, pageSize: 50,
			check: func(t *testing.T, e *simEnv, tr *truthOf) { checkRunStatus(t, e, tr, false) }},
		{name: "lastRunStatus as a boolean", opts: sim.Options{LastRunStatus: "bool"}, pageSize: 50,
			check: func(t *testing.T, e *simEnv, tr *truthOf) { checkRunStatus(t, e, tr, true) }},
		{name: "error bodies as text", opts: sim.Options{ErrorBody: "text"}, pageSize: 50,
			check: func(t *testing.T, e *simEnv, tr *truthOf) {
				_, err := e.c.Streams.Get(t.Context(), 1)
				var ae *APIError
				if !errors.As(err, &ae) || ae.Status != 404 || !strings.Contains(ae.Message, "not found") {
					t.Errorf("text error body: %v", err)
				}
			}},
		{name: "rerun keeps job ids", opts: sim.Options{RerunNewIDs: sim.Bool(false)}, pageSize: 50,
			check: func(t *testing.T, e *simEnv, tr *truthOf) {
				for id, jobs := range tr.jobs {
					for _, j := range jobs {
						if !IsFinal(j.Status) {
							continue
						}
						got, err := e.c.Jobs.Rerun(t.Context(), id, []int64{j.ID})
						if err != nil || len(got) != 1 || got[0].ID != j.ID {
							t.Fatalf("rerun of %d gave %v, %v: want the same id back", j.ID, got, err)
						}
						return
					}
				}
				t.Fatal("no finished job")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.Workspaces, o.Streams, o.JobsPerStream = 2, 10, 9
			e := newSim(t, o, false)
			tr := decodeTruth(t, e.s.Truth())
			if tt.check != nil {
				tt.check(t, e, tr)
				return
			}
			for id := range tr.streams {
				got, err := allJobs(t, e.c, id, tt.pageSize)
				if err != nil {
					t.Fatal(err)
				}
				checkJobs(t, id, got, tr.jobs[id])
			}
		})
	}
}

// checkRunStatus: lastRunStatus decodes in either type and agrees with the stream's
// last finished job.
func checkRunStatus(t *testing.T, e *simEnv, tr *truthOf, wantBool bool) {
	t.Helper()
	checked := 0
	for _, ws := range tr.workspaceIDs() {
		list, err := e.c.Streams.List(t.Context(), ws)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			var lastFinal *Job
			for i, j := range tr.jobs[s.ID] {
				if IsFinal(j.Status) && (lastFinal == nil || j.EndExecutionTime.After(lastFinal.EndExecutionTime.Time)) {
					lastFinal = &tr.jobs[s.ID][i]
				}
			}
			if s.LastRunStatus.Raw == nil || lastFinal == nil {
				continue
			}
			checked++
			if (s.LastRunStatus.Bool != nil) != wantBool {
				t.Errorf("stream %d: lastRunStatus %s, want bool=%v", s.ID, s.LastRunStatus.Raw, wantBool)
			}
			if s.LastRunStatus.Failed() != (lastFinal.Status == StatusFailure) {
				t.Errorf("stream %d: lastRunStatus %s but its last finished job %d is %s", s.ID, s.LastRunStatus.Raw, lastFinal.ID, lastFinal.Status)
			}
		}
	}
	if checked == 0 {
		t.Error("no stream had a last run")
	}
}

// TestSimulator429 is the acceptance case of the brief: with a small limit on a shared
// manual clock, the client waits for the next minute and the retried answer is returned.
func TestSimulator429(t *testing.T) {
	t.Run("minute window", func(t *testing.T) {
		e := newSim(t, sim.Options{Workspaces: 2, Streams: 4, JobsPerStream: 2, PlatformLimit: 3}, true)
		want := decodeTruth(t, e.s.Truth())
		for i := range 5 {
			ws, err := e.c.Workspaces.List(t.Context())
			if err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			if len(ws) != len(want.workspaces) || !sameJSON(ws[0].Raw, want.workspaces[ws[0].ID].Raw) {
				t.Errorf("call %d: answer differs from the truth", i)
			}
		}
		if got := e.rec.statuses(); !slices.Equal(got, []int{200, 200, 200, 429, 200, 200}) {
			t.Errorf("statuses %v, want three 200s, a 429, then 200s", got)
		}
		if now := e.clk.Now(); now.Before(simStart.Truncate(time.Minute).Add(time.Minute)) {
			t.Errorf("clock at %v: the client did not wait for the next minute", now)
		}
		if c := e.s.Calls(); c.ByStatus["429"] != 1 {
			t.Errorf("simulator counted %v", c.ByStatus)
		}
	})
	t.Run("daily quota", func(t *testing.T) {
		e := newSim(t, sim.Options{Workspaces: 2, Streams: 4, JobsPerStream: 2, DailyQuota: 2}, true)
		for range 2 {
			if _, err := e.c.Workspaces.List(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		_, err := e.c.Workspaces.List(t.Context())
		var qe *QuotaError
		midnight := simStart.Truncate(24 * time.Hour).Add(24 * time.Hour)
		if !errors.As(err, &qe) || !qe.Reset.Equal(midnight) {
			t.Fatalf("want a quota error resetting at %v, got %v", midnight, err)
		}
	})
}

// TestSimulatorFaults: with each fault kind of the simulator switched on, a crawl of the
// account (workspaces, streams, bulk status, every job list, every mapping) still equals
// the truth.
func TestSimulatorFaults(t *testing.T) {
	kinds := []string{sim.FaultHTTP500, sim.FaultHTTP502, sim.FaultHTTP503, sim.FaultSlow, sim.FaultReset,
		sim.FaultTruncated, sim.FaultMalformed, sim.FaultHTML, sim.FaultRepeat, sim.FaultEmptyPage}
	tests := []struct {
		name  string
		rates map[string]float64
	}{{name: "every kind at 2% (as the chaos test)", rates: map[string]float64{}}}
	for _, k := range kinds {
		tests[0].rates[k] = 0.02
		rate := 0.2
		switch k {
		case sim.FaultSlow:
			rate = 0.1 // each costs a real-time timeout
		case sim.FaultRepeat, sim.FaultEmptyPage:
			// The defences refetch a bounded number of times: 3 empty answers in a row
			// (0.1³ per page) still end a list, 4 repeats in a row (0.1⁴) fail it.
			rate = 0.1
		}
		tests = append(tests, struct {
			name  string
			rates map[string]float64
		}{k, map[string]float64{k: rate}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newSim(t, sim.Options{Workspaces: 2, Streams: 10, JobsPerStream: 14,
				// A slow answer is held until the client gives up; the attempt timeout
				// leaves room for a good answer on a loaded machine.
				Faults: sim.Faults{Rates: tt.rates, SlowDelay: time.Hour, OnlyReads: true}}, false,
				withOpts(WithTimeout(time.Second), WithRetries(6)))
			tr := decodeTruth(t, e.s.Truth())
			t.Cleanup(func() {
				if t.Failed() {
					t.Log(lastLines(e.logs.String(), 30))
				}
			})
			crawlEqualsTruth(t, e, tr, 4)
			hits := 0
			for k := range tt.rates {
				hits += e.s.Calls().Faults[k]
			}
			if hits == 0 {
				t.Errorf("no fault was injected: %+v", e.s.Calls())
			}
		})
	}
}

// TestSimulatorStorm429: a storm of 429s (the token's window suddenly exhausted) is
// waited out on the shared clock.
func TestSimulatorStorm429(t *testing.T) {
	e := newSim(t, sim.Options{Workspaces: 2, Streams: 4, JobsPerStream: 2,
		Faults: sim.Faults{Rates: map[string]float64{sim.FaultStorm429: 0.3}}}, true)
	want := decodeTruth(t, e.s.Truth())
	for range 10 {
		ws, err := e.c.Workspaces.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != len(want.workspaces) {
			t.Fatalf("%d workspaces", len(ws))
		}
		for _, id := range want.workspaceIDs() {
			if _, err := e.c.Metadata.Dimensions(t.Context(), id, ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	if e.s.Calls().ByStatus["429"] == 0 {
		t.Error("no 429 was injected")
	}
}

// crawlEqualsTruth reads the whole account as a crawler would and compares it with tr.
func crawlEqualsTruth(t *testing.T, e *simEnv, tr *truthOf, pageSize int) {
	t.Helper()
	ctx := t.Context()
	ws, err := e.c.Workspaces.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != len(tr.workspaces) {
		t.Errorf("%d workspaces, want %d", len(ws), len(tr.workspaces))
	}
	streams := 0
	for _, w := range ws {
		list, err := e.c.Streams.List(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, s := range list {
			streams++
			ids = append(ids, s.ID)
			if !sameJSON(s.Raw, tr.streams[s.ID].Raw) {
				t.Errorf("stream %d differs", s.ID)
			}
			jobs, err := allJobs(t, e.c, s.ID, pageSize)
			if err != nil {
				t.Fatalf("jobs of %d: %v", s.ID, err)
			}
			checkJobs(t, s.ID, jobs, tr.jobs[s.ID])
			m, err := e.c.Mappings.Get(ctx, s.ID)
			if err != nil || !sameJSON(m.Raw, tr.raw.Mappings[strconv.FormatInt(s.ID, 10)]) {
				t.Errorf("mapping of %d: %v", s.ID, err)
			}
		}
		st, err := e.c.Streams.BulkStatus(ctx, w.ID, ids)
		if err != nil || len(st) != len(ids) {
			t.Errorf("bulk status: %d for %d, %v", len(st), len(ids), err)
		}
	}
	if streams != len(tr.streams) {
		t.Errorf("%d streams, want %d", streams, len(tr.streams))
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// TestSimulatorHostileListings: the simulator's hostile listings, over real HTTP, are
// refused with the typed errors, and a huge stats page with a *BodyTooLargeError; a
// page as large as its bound allows is read.
func TestSimulatorHostileListings(t *testing.T) {
	ctx := t.Context()
	firstStream := func(e *simEnv) int64 {
		return decodeTruth(t, e.s.Truth()).streamIDs(decodeTruth(t, e.s.Truth()).workspaceIDs()[0])[0]
	}
	for _, tt := range []struct {
		kind, path string
		call       func(e *simEnv) error
		check      func(error) bool
	}{
		{sim.FaultDupID, "/v1/workspaces/*/data-streams", func(e *simEnv) error {
			_, err := e.c.Streams.List(ctx, decodeTruth(t, e.s.Truth()).workspaceIDs()[0])
			return err
		}, func(err error) bool {
			var de *DuplicateError
			return errors.As(err, &de) && de.First == 0 && de.Second == 1
		}},
		{sim.FaultSameID, "/v1/data-streams/api/*/stats", func(e *simEnv) error {
			_, err := e.c.Jobs.Page(ctx, firstStream(e), 5, 1)
			return err
		}, func(err error) bool { var de *DuplicateError; return errors.As(err, &de) && de.Second == 1 }},
		{sim.FaultNegID, "/v1/workspaces", func(e *simEnv) error {
			_, err := e.c.Workspaces.List(ctx)
			return err
		}, func(err error) bool {
			var re *RecordError
			return errors.As(err, &re) && re.Field == "id" && strings.HasPrefix(re.Value, "-")
		}},
		{sim.FaultNullStatus, "/v1/data-streams/api/*/stats", func(e *simEnv) error {
			_, err := e.c.Jobs.Page(ctx, firstStream(e), 5, 1)
			return err
		}, func(err error) bool {
			var re *RecordError
			return errors.As(err, &re) && re.Index == 0 && re.Field == "status" && re.Value == "null" && re.ID > 0
		}},
		{sim.FaultDupID, "/v1/workspaces/*/measurements", func(e *simEnv) error {
			_, err := e.c.Metadata.Measurements(ctx, decodeTruth(t, e.s.Truth()).workspaceIDs()[0], "")
			return err
		}, func(err error) bool { var de *DuplicateError; return errors.As(err, &de) && de.Key != "" }},
	} {
		t.Run(tt.kind+" "+tt.path, func(t *testing.T) {
			e := newSim(t, sim.Options{Workspaces: 2, Streams: 6, JobsPerStream: 10,
				Faults: sim.Faults{Rates: map[string]float64{tt.kind: 1}, Path: tt.path}}, false)
			if err := tt.call(e); !tt.check(err) {
				t.Errorf("got %v", err)
			}
			if e.s.Calls().Faults[tt.kind] != 1 || e.s.Calls().Total != 1 {
				t.Errorf("calls %+v: want one hostile answer and no second request", e.s.Calls())
			}
		})
	}
	for _, tt := range []struct {
		name  string
		bytes int
		ok    bool
	}{{"under the bound", minPageBody - 64<<10, true}, {"over the bound", 3 << 20, false}} {
		t.Run("hugepage "+tt.name, func(t *testing.T) {
			e := newSim(t, sim.Options{Workspaces: 1, Streams: 2, JobsPerStream: 10,
				Faults: sim.Faults{Rates: map[string]float64{sim.FaultHugePage: 1}, HugePageBytes: tt.bytes}}, false)
			jobs, err := e.c.Jobs.Page(ctx, firstStream(e), 5, 1) // bound: minPageBody
			var tl *BodyTooLargeError
			switch {
			case tt.ok && (err != nil || len(jobs) != 5 || len(jobs[0].ProcessLog) < 100<<10):
				t.Errorf("a page under the bound: %d jobs, %v", len(jobs), err)
			case !tt.ok && (!errors.As(err, &tl) || tl.Limit != minPageBody || tl.Size <= minPageBody):
				t.Errorf("want a *BodyTooLargeError at %d bytes, got %v", minPageBody, err)
			}
		})
	}
}
