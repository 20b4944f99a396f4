// Package sinktest is the conformance suite for load.Sink: every implementation (the DuckDB
// store, any in-memory or alternative sink) must pass SinkSuite. It knows the Sink
// contract and nothing of how a sink stores rows; what the Sink interface does not expose
// it reads through the Inspector the implementation supplies.
package sinktest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/drextract/drextract/load"
)

// Row is one stored current-state row as the suite compares it.
type Row struct {
	Raw       string // the stored raw JSON, as written
	RunID     int64
	FirstSeen time.Time
	LastSeen  time.Time
	Deleted   bool
	DeletedAt time.Time // zero unless Deleted
}

// Version is one SCD2 history version.
type Version struct {
	RowHash   string
	ValidFrom time.Time
	ValidTo   time.Time // zero while current
	Current   bool
}

// StatusChange is one recorded job status transition; Old is "" for the first sight.
type StatusChange struct {
	Old, New string
	SeenAt   time.Time
	RunID    int64
}

// RunRecord is a run as stored.
type RunRecord struct {
	Status string
	Calls  int
	Rows   map[string]int
	Error  string
}

// Inspector reads back what a sink stored, for the checks the Sink interface cannot make.
type Inspector interface {
	// Rows returns the current rows of an entity table (load.Jobs, …) keyed by their key:
	// the id in decimal, or "workspaceID/systemName" for dimensions and measurements.
	// Rows marked deleted are included. It must fail if a key is stored twice.
	Rows(ctx context.Context, table string) (map[string]Row, error)
	// History returns the versions of one key ("123") of load.Workspaces, load.Streams or
	// load.Mappings (keyed by stream id), oldest first.
	History(ctx context.Context, table, key string) ([]Version, error)
	// StatusChanges returns the recorded transitions of one job, oldest first.
	StatusChanges(ctx context.Context, jobID int64) ([]StatusChange, error)
	// Run returns a run as stored.
	Run(ctx context.Context, id int64) (RunRecord, error)
	// CallCount counts the API call audit rows of a run.
	CallCount(ctx context.Context, runID int64) (int, error)
}

// Opener makes a fresh, empty sink for one subtest, with its inspector; it registers its
// own cleanup with t.
type Opener func(t *testing.T) (load.Sink, Inspector)

// SinkSuite runs the conformance suite against the sinks open makes.
func SinkSuite(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"IdempotentRewrite", testIdempotentRewrite},
		{"RepeatedRowInBatch", testRepeatedRowInBatch},
		{"CheckpointCommitsWithRows", testCheckpointCommitsWithRows},
		{"CancelledWriteStoresNothing", testCancelledWrite},
		{"CompleteMarksMissingDeleted", testCompleteMarksMissingDeleted},
		{"CompleteAcrossBatches", testCompleteAcrossBatches},
		{"CompleteOfEveryEntity", testCompleteOfEveryEntity},
		{"HistoryVersions", testHistoryVersions},
		{"JobStatusChanges", testJobStatusChanges},
		{"RunsAndCalls", testRunsAndCalls},
		{"RejectsMismatchedBatch", testRejectsMismatchedBatch},
		{"CheckpointsByKind", testCheckpointsByKind},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink, insp := open(t)
			h := &harness{t: t, ctx: context.Background(), sink: sink, insp: insp}
			tc.fn(t, h)
		})
	}
}

var t0 = time.Date(2025, 3, 10, 8, 0, 0, 0, time.UTC)

type harness struct {
	t    *testing.T
	ctx  context.Context
	sink load.Sink
	insp Inspector
}

func (h *harness) run() int64 {
	h.t.Helper()
	id, err := h.sink.StartRun(h.ctx, load.RunStart{Schedule: "test", Kind: "extract", Started: t0})
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

func (h *harness) write(run int64, b load.Batch) {
	h.t.Helper()
	if err := h.sink.Write(h.ctx, run, b); err != nil {
		h.t.Fatalf("Write(%s of %d): %v", b.Entity, b.ParentID, err)
	}
}

func (h *harness) rows(table string) map[string]Row {
	h.t.Helper()
	r, err := h.insp.Rows(h.ctx, table)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func (h *harness) jobIndex(stream int64) []load.JobKey {
	h.t.Helper()
	idx, err := h.sink.JobIndex(h.ctx, stream)
	if err != nil {
		h.t.Fatal(err)
	}
	// The crawler relies on the order (it aligns pages with the stored ids).
	if !slices.IsSortedFunc(idx, func(a, b load.JobKey) int { return cmp.Compare(a.ID, b.ID) }) {
		h.t.Fatalf("JobIndex of stream %d is not ordered by id: %v", stream, idx)
	}
	return idx
}

func (h *harness) checkpoints(kind string) map[int64]load.Checkpoint {
	h.t.Helper()
	cps, err := h.sink.Checkpoints(h.ctx, kind)
	if err != nil {
		h.t.Fatal(err)
	}
	return cps
}

// Job makes a job row with a raw record that reflects its fields.
func Job(id, stream int64, status string, day time.Time) load.JobRow {
	raw, _ := json.Marshal(map[string]any{"id": id, "dataStreamId": stream, "status": status,
		"dataStartDate": day.Format(time.DateOnly), "startExecutionTime": day.Add(time.Hour).UnixMilli()})
	return load.JobRow{ID: id, StreamID: stream, WorkspaceID: 1, Status: status, DataStartDate: day,
		DataEndDate: day, StartExecutionTime: day.Add(time.Hour), Raw: raw}
}

// Stream makes a stream row of workspace ws.
func Stream(id, ws int64, name string) load.StreamRow {
	raw, _ := json.Marshal(map[string]any{"id": id, "workspaceId": ws, "name": name, "enabled": true})
	return load.StreamRow{ID: id, WorkspaceID: ws, Name: name, Enabled: true, Raw: raw}
}

// Workspace makes a workspace row.
func Workspace(id int64, name string) load.WorkspaceRow {
	raw, _ := json.Marshal(map[string]any{"id": id, "name": name})
	return load.WorkspaceRow{ID: id, Name: name, AccountID: 9, Raw: raw}
}

func jobs(stream int64, status string, ids ...int64) []load.JobRow {
	out := make([]load.JobRow, len(ids))
	for i, id := range ids {
		out[i] = Job(id, stream, status, t0.AddDate(0, 0, -int(id)))
	}
	return out
}

func keys(idx []load.JobKey) []int64 {
	out := make([]int64, len(idx))
	for i, k := range idx {
		out[i] = k.ID
	}
	return out
}

func liveKeys(rows map[string]Row) []string {
	var out []string
	for k, r := range rows {
		if !r.Deleted {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func deletedKeys(rows map[string]Row) []string {
	var out []string
	for k, r := range rows {
		if r.Deleted {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func strs(ids ...int64) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = fmt.Sprint(id)
	}
	sort.Strings(out)
	return out
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

func testIdempotentRewrite(t *testing.T, h *harness) {
	run := h.run()
	obs := t0.Add(time.Hour)
	jb := load.Batch{Entity: load.Jobs, ParentID: 10, ObservedAt: obs, Complete: true,
		Jobs:       jobs(10, "SUCCESS", 1, 2, 3),
		Checkpoint: &load.Checkpoint{Kind: "jobs", ParentID: 10, State: json.RawMessage(`{"page":1}`)}}
	sb := load.Batch{Entity: load.Streams, ParentID: 1, ObservedAt: obs, Complete: true,
		Streams: []load.StreamRow{Stream(10, 1, "a"), Stream(11, 1, "b")}}
	h.write(run, jb)
	h.write(run, sb)
	jobsBefore, streamsBefore := h.rows(load.Jobs), h.rows(load.Streams)
	idxBefore, cpsBefore := h.jobIndex(10), h.checkpoints("jobs")
	changesBefore, err := h.insp.StatusChanges(h.ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	// A resumed crawl repeats the page, with the same observation time.
	h.write(run, jb)
	h.write(run, sb)
	equal(t, "jobs after rewrite", h.rows(load.Jobs), jobsBefore)
	equal(t, "streams after rewrite", h.rows(load.Streams), streamsBefore)
	equal(t, "job index after rewrite", h.jobIndex(10), idxBefore)
	equal(t, "checkpoints after rewrite", h.checkpoints("jobs"), cpsBefore)
	changes, err := h.insp.StatusChanges(h.ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "status changes after rewrite", changes, changesBefore)
	hist, err := h.insp.History(h.ctx, load.Streams, "10")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 1 {
		t.Errorf("stream 10 has %d history versions after an identical rewrite, want 1", len(hist))
	}
	equal(t, "job ids", keys(h.jobIndex(10)), []int64{1, 2, 3})

	// The same rows seen again by a later run: only last_seen and the run id move on.
	run2 := h.run()
	later := obs.Add(24 * time.Hour)
	jb.ObservedAt, jb.Checkpoint = later, nil
	h.write(run2, jb)
	for k, r := range h.rows(load.Jobs) {
		before := jobsBefore[k]
		if !r.FirstSeen.Equal(before.FirstSeen) || !r.LastSeen.Equal(later) || r.RunID != run2 || r.Raw != before.Raw {
			t.Errorf("job %s seen again unchanged = %+v, want first seen %v, last seen %v, run %d",
				k, r, before.FirstSeen, later, run2)
		}
	}
	changes, _ = h.insp.StatusChanges(h.ctx, 2)
	equal(t, "status changes after a later unchanged read", changes, changesBefore)
}

func testRepeatedRowInBatch(t *testing.T, h *harness) {
	run := h.run()
	// A faulty page may repeat items; the later copy wins and the job is stored once.
	rows := jobs(10, "PENDING", 1, 2)
	rows = append(rows, Job(2, 10, "SUCCESS", t0))
	h.write(run, load.Batch{Entity: load.Jobs, ParentID: 10, ObservedAt: t0, Jobs: rows})
	equal(t, "job index", h.jobIndex(10), []load.JobKey{{ID: 1, Status: "PENDING"}, {ID: 2, Status: "SUCCESS"}})
	if n := len(h.rows(load.Jobs)); n != 2 {
		t.Errorf("%d job rows stored, want 2", n)
	}
}

func testCheckpointCommitsWithRows(t *testing.T, h *harness) {
	run := h.run()
	h.write(run, load.Batch{Entity: load.Jobs, ParentID: 10, ObservedAt: t0, Jobs: jobs(10, "SUCCESS", 1, 2),
		Checkpoint: &load.Checkpoint{Kind: "jobs", ParentID: 10, State: json.RawMessage(`{"page":1}`)}})
	// The second page holds a row that cannot be stored (its raw record is not JSON), after
	// rows that can: neither those rows nor the checkpoint may be kept.
	bad := jobs(10, "SUCCESS", 3, 4, 5)
	bad[2].Raw = json.RawMessage(`{"id": 5, "status": `)
	err := h.sink.Write(h.ctx, run, load.Batch{Entity: load.Jobs, ParentID: 10, ObservedAt: t0.Add(time.Minute),
		Complete: true, Jobs: bad, Checkpoint: &load.Checkpoint{Kind: "jobs", ParentID: 10, State: json.RawMessage(`{"page":2}`)}})
	if err == nil {
		t.Fatal("Write accepted a row whose raw record is not JSON")
	}
	equal(t, "jobs after failed write", keys(h.jobIndex(10)), []int64{1, 2})
	cp := h.checkpoints("jobs")[10]
	equal(t, "checkpoint after failed write", string(cp.State), `{"page":1}`)
	equal(t, "checkpoint run", cp.RunID, run)
	if d := deletedKeys(h.rows(load.Jobs)); len(d) != 0 {
		t.Errorf("the failed Complete batch deleted %v", d)
	}
	// The sink is still usable afterwards.
	h.write(run, load.Batch{Entity: load.Jobs, ParentID: 10, ObservedAt: t0.Add(2 * time.Minute), Jobs: jobs(10, "SUCCESS", 3),
		Checkpoint: &load.Checkpoint{Kind: "jobs", ParentID: 10, State: json.RawMessage(`{"page":2}`)}})
	equal(t, "jobs after retry", keys(h.jobIndex(10)), []int64{1, 2, 3})
	equal(t, "checkpoint after retry", string(h.checkpoints("jobs")[10].State), `{"page":2}`)
}

func testCancelledWrite(t *testing.T, h *harness) {
	run := h.run()
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	err := h.sink.Write(ctx, run, load.Batch{Entity: load.Jobs, ParentID: 10, ObservedAt: t0, Jobs: jobs(10, "SUCCESS", 1),
		Checkpoint: &load.Checkpoint{Kind: "jobs", ParentID: 10, State: json.RawMessage(`{}`)}})
	if err == nil {
		t.Fatal("Write with a cancelled context succeeded")
	}
	equal(t, "jobs", len(h.jobIndex(10)), 0)
	equal(t, "checkpoints", len(h.checkpoints("jobs")), 0)
}

func testCompleteMarksMissingDeleted(t *testing.T, h *harness) {
	run := h.run()
	h.write(run, load.Batch{Entity: load.Jobs, ParentID: 10, ObservedAt: t0, Complete: true, Jobs: jobs(10, "SUCCESS", 1, 2, 3, 4, 5)})
	h.write(run, load.Batch{Entity: load.Jobs, ParentID: 20, ObservedAt: t0, Complete: true, Jobs: jobs(20, "SUCCESS", 6, 7)})

	// A listing that failed part-way is not Complete: nothing is deleted.
	h.write(run, load.Batch{Entity: load.Jobs, ParentID: 10, ObservedAt: t0.Add(time.Hour), Jobs: jobs(10, "SUCCESS", 1, 2)})
	equal(t, "jobs after incomplete batch", keys(h.jobIndex(10)), []int64{1, 2, 3, 4, 5})

	del := t0.Add(2 * time.Hour)
	h.write(run, load.Batch{Entity: load.Jobs, ParentID: 10, ObservedAt: del, Complete: true, Jobs: jobs(10, "SUCCESS", 1, 2, 3)})
	equal(t, "job index after complete batch", keys(h.jobIndex(10)), []int64{1, 2, 3})
	rows := h.rows(load.Jobs)
	equal(t, "deleted jobs", deletedKeys(rows), strs(4, 5))
	equal(t, "deleted_at", rows["4"].DeletedAt, del)
	equal(t, "other stream untouched", keys(h.jobIndex(20)), []int64{6, 7})

	// A job that comes back is live again and keeps its first sight.
	h.write(run, load.Batch{Entity: load.Jobs, ParentID: 10, ObservedAt: del.Add(time.Hour), Jobs: jobs(10, "SUCCESS", 4)})
	rows = h.rows(load.Jobs)
	equal(t, "revived job deleted", rows["4"].Deleted, false)
	equal(t, "revived job first seen", rows["4"].FirstSeen, t0)
	equal(t, "revived job last seen", rows["4"].LastSeen, del.Add(time.Hour))

	// An empty Complete listing means the stream has no jobs left.
	h.write(run, load.Batch{Entity: load.Jobs, ParentID: 20, ObservedAt: del, Complete: true})
	equal(t, "jobs of emptied stream", len(h.jobIndex(20)), 0)
}

func testCompleteAcrossBatches(t *testing.T, h *harness) {
	run := h.run()
	h.write(run, load.Batch{Entity: load.Jobs, ParentID: 10, ObservedAt: t0, Jobs: jobs(10, "SUCCESS", 1, 2, 3, 4, 5, 6)})
	// The last batch of a listing delivered in three pages carries every id in AllIDs.
	h.write(run, load.Batch{Entity: load.Jobs, ParentID: 10, ObservedAt: t0.Add(time.Hour), Complete: true,
		AllIDs: []int64{1, 2, 3, 4, 5}, Jobs: jobs(10, "SUCCESS", 5)})
	equal(t, "jobs", keys(h.jobIndex(10)), []int64{1, 2, 3, 4, 5})
	equal(t, "deleted", deletedKeys(h.rows(load.Jobs)), strs(6))
}

func testCompleteOfEveryEntity(t *testing.T, h *harness) {
	run := h.run()
	type step struct {
		batch func(ids []int64, obs time.Time) load.Batch
		table string
		key   func(id int64) string
	}
	id := func(id int64) string { return fmt.Sprint(id) }
	raw := func(id int64) json.RawMessage { return json.RawMessage(fmt.Sprintf(`{"id":%d}`, id)) }
	steps := []step{
		{table: load.Workspaces, key: id, batch: func(ids []int64, obs time.Time) load.Batch {
			b := load.Batch{Entity: load.Workspaces, ObservedAt: obs, Complete: true}
			for _, i := range ids {
				b.Workspaces = append(b.Workspaces, Workspace(i, fmt.Sprint("ws", i)))
			}
			return b
		}},
		{table: load.Streams, key: id, batch: func(ids []int64, obs time.Time) load.Batch {
			b := load.Batch{Entity: load.Streams, ParentID: 1, ObservedAt: obs, Complete: true}
			for _, i := range ids {
				b.Streams = append(b.Streams, Stream(i, 1, fmt.Sprint("s", i)))
			}
			return b
		}},
		{table: load.Mappings, key: id, batch: func(ids []int64, obs time.Time) load.Batch {
			// One mapping per stream: its parent is the stream, so "missing" means the
			// stream's complete listing came back without a mapping.
			b := load.Batch{Entity: load.Mappings, ParentID: 10, ObservedAt: obs, Complete: true}
			if len(ids) > 0 {
				b.Mappings = []load.MappingRow{{StreamID: 10, WorkspaceID: 1, Raw: json.RawMessage(`{"fields":[]}`)}}
			}
			return b
		}},
		{table: load.Dimensions, key: func(i int64) string { return fmt.Sprintf("1/DIM_%d", i) }, batch: func(ids []int64, obs time.Time) load.Batch {
			b := load.Batch{Entity: load.Dimensions, ParentID: 1, ObservedAt: obs, Complete: true}
			for _, i := range ids {
				b.Fields = append(b.Fields, load.FieldRow{WorkspaceID: 1, SystemName: fmt.Sprint("DIM_", i), DisplayName: "d", Raw: raw(i)})
			}
			return b
		}},
		{table: load.Measurements, key: func(i int64) string { return fmt.Sprintf("1/MEAS_%d", i) }, batch: func(ids []int64, obs time.Time) load.Batch {
			b := load.Batch{Entity: load.Measurements, ParentID: 1, ObservedAt: obs, Complete: true}
			for _, i := range ids {
				b.Fields = append(b.Fields, load.FieldRow{WorkspaceID: 1, SystemName: fmt.Sprint("MEAS_", i), DisplayName: "m", Raw: raw(i)})
			}
			return b
		}},
		{table: load.HarmonizedDimensions, key: id, batch: func(ids []int64, obs time.Time) load.Batch {
			b := load.Batch{Entity: load.HarmonizedDimensions, ParentID: 1, ObservedAt: obs, Complete: true}
			for _, i := range ids {
				b.Harmonized = append(b.Harmonized, load.HarmonizedDimensionRow{ID: i, WorkspaceID: 1, Name: "h", Raw: raw(i)})
			}
			return b
		}},
		{table: load.Patterns, key: id, batch: func(ids []int64, obs time.Time) load.Batch {
			b := load.Batch{Entity: load.Patterns, ParentID: 1, ObservedAt: obs, Complete: true}
			for _, i := range ids {
				b.Patterns = append(b.Patterns, load.PatternRow{ID: i, WorkspaceID: 1, HarmonizedDimensionID: 3, Name: "p", Raw: raw(i)})
			}
			return b
		}},
		{table: load.CalculatedMeasurements, key: id, batch: func(ids []int64, obs time.Time) load.Batch {
			b := load.Batch{Entity: load.CalculatedMeasurements, ParentID: 1, ObservedAt: obs, Complete: true}
			for _, i := range ids {
				b.CalcMeas = append(b.CalcMeas, load.CalculatedMeasurementRow{ID: i, WorkspaceID: 1, Name: "c", Formula: "a+b", Raw: raw(i)})
			}
			return b
		}},
	}
	for _, st := range steps {
		t.Run(st.table, func(t *testing.T) {
			ids := []int64{10, 11, 12}
			if st.table == load.Mappings {
				ids = []int64{10}
			}
			h.write(run, st.batch(ids, t0))
			want := make([]string, len(ids))
			for i, id := range ids {
				want[i] = st.key(id)
			}
			sort.Strings(want)
			equal(t, "live after first listing", liveKeys(h.rows(st.table)), want)
			incomplete := st.batch(ids[:len(ids)-1], t0.Add(time.Hour))
			incomplete.Complete = false
			h.write(run, incomplete)
			equal(t, "live after incomplete listing", liveKeys(h.rows(st.table)), want)
			h.write(run, st.batch(ids[:len(ids)-1], t0.Add(2*time.Hour)))
			equal(t, "deleted after complete listing", deletedKeys(h.rows(st.table)), []string{st.key(ids[len(ids)-1])})
		})
	}
}

func testHistoryVersions(t *testing.T, h *harness) {
	run := h.run()
	t1, t2, t3, t4 := t0, t0.Add(time.Hour), t0.Add(2*time.Hour), t0.Add(3*time.Hour)
	listing := func(obs time.Time, rows ...load.StreamRow) {
		h.write(run, load.Batch{Entity: load.Streams, ParentID: 1, ObservedAt: obs, Complete: true, Streams: rows})
	}
	listing(t1, Stream(10, 1, "old name"), Stream(11, 1, "other"))
	listing(t1.Add(30*time.Minute), Stream(10, 1, "old name"), Stream(11, 1, "other")) // unchanged: no version
	listing(t2, Stream(10, 1, "new name"), Stream(11, 1, "other"))                     // renamed
	hist, err := h.insp.History(h.ctx, load.Streams, "10")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 {
		t.Fatalf("renamed stream has %d history versions, want 2: %+v", len(hist), hist)
	}
	if hist[0].Current || !hist[0].ValidTo.Equal(t2) || !hist[0].ValidFrom.Equal(t1) {
		t.Errorf("old version = %+v, want valid %v..%v and not current", hist[0], t1, t2)
	}
	if !hist[1].Current || !hist[1].ValidTo.IsZero() || !hist[1].ValidFrom.Equal(t2) {
		t.Errorf("new version = %+v, want valid from %v and current", hist[1], t2)
	}
	if hist[0].RowHash == hist[1].RowHash {
		t.Error("both versions have the same row hash")
	}
	// Deletion closes the current version without opening one.
	listing(t3, Stream(11, 1, "other"))
	hist, _ = h.insp.History(h.ctx, load.Streams, "10")
	if len(hist) != 2 || hist[1].Current || !hist[1].ValidTo.Equal(t3) {
		t.Errorf("after deletion: %+v, want the second version closed at %v", hist, t3)
	}
	// Coming back opens a new version.
	listing(t4, Stream(10, 1, "new name"), Stream(11, 1, "other"))
	hist, _ = h.insp.History(h.ctx, load.Streams, "10")
	if len(hist) != 3 || !hist[2].Current || !hist[2].ValidFrom.Equal(t4) {
		t.Errorf("after return: %+v, want a third, current version from %v", hist, t4)
	}
	other, _ := h.insp.History(h.ctx, load.Streams, "11")
	if len(other) != 1 || !other[0].Current {
		t.Errorf("unchanged stream 11 history = %+v, want one current version", other)
	}

	// Workspaces and mappings keep history the same way.
	h.write(run, load.Batch{Entity: load.Workspaces, ObservedAt: t1, Complete: true, Workspaces: []load.WorkspaceRow{Workspace(1, "a")}})
	h.write(run, load.Batch{Entity: load.Workspaces, ObservedAt: t2, Complete: true, Workspaces: []load.WorkspaceRow{Workspace(1, "b")}})
	ws, _ := h.insp.History(h.ctx, load.Workspaces, "1")
	equal(t, "workspace versions", len(ws), 2)
	for i, m := range []string{`{"a":1}`, `{"a":1}`, `{"a":2}`} {
		h.write(run, load.Batch{Entity: load.Mappings, ParentID: 10, ObservedAt: t1.Add(time.Duration(i) * time.Hour),
			Mappings: []load.MappingRow{{StreamID: 10, WorkspaceID: 1, Raw: json.RawMessage(m)}}})
	}
	mp, _ := h.insp.History(h.ctx, load.Mappings, "10")
	equal(t, "mapping versions", len(mp), 2)
}

func testJobStatusChanges(t *testing.T, h *harness) {
	run := h.run()
	day := t0.AddDate(0, 0, -1)
	for i, st := range []string{"PENDING", "IN_PROGRESS", "IN_PROGRESS", "SUCCESS"} {
		h.write(run, load.Batch{Entity: load.Jobs, ParentID: 10, ObservedAt: t0.Add(time.Duration(i) * time.Hour),
			Jobs: []load.JobRow{Job(1, 10, st, day), Job(2, 10, "SUCCESS", day)}})
	}
	got, err := h.insp.StatusChanges(h.ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := []StatusChange{
		{Old: "", New: "PENDING", SeenAt: t0, RunID: run},
		{Old: "PENDING", New: "IN_PROGRESS", SeenAt: t0.Add(time.Hour), RunID: run},
		{Old: "IN_PROGRESS", New: "SUCCESS", SeenAt: t0.Add(3 * time.Hour), RunID: run},
	}
	equal(t, "changes of job 1", got, want)
	got, _ = h.insp.StatusChanges(h.ctx, 2)
	equal(t, "changes of job 2", got, []StatusChange{{Old: "", New: "SUCCESS", SeenAt: t0, RunID: run}})
	equal(t, "index", h.jobIndex(10), []load.JobKey{{ID: 1, Status: "SUCCESS"}, {ID: 2, Status: "SUCCESS"}})
}

func testRunsAndCalls(t *testing.T, h *harness) {
	r1, r2 := h.run(), h.run()
	if r2 <= r1 {
		t.Errorf("run ids %d then %d, want increasing", r1, r2)
	}
	h.write(r2, load.Batch{Entity: load.Jobs, ParentID: 10, ObservedAt: t0, Jobs: jobs(10, "SUCCESS", 1)})
	if got := h.rows(load.Jobs)["1"].RunID; got != r2 {
		t.Errorf("job written in run %d carries run %d", r2, got)
	}
	calls := []load.APICall{
		{Time: t0, Fingerprint: "tok_0123abcd", Method: "POST", PathTemplate: "/v1/data-streams/api/{id}/stats",
			Status: 200, Latency: 120 * time.Millisecond, Attempt: 1, PlatformRemaining: 10, QueryRemaining: -1, DailyRemaining: 900},
		{Time: t0.Add(time.Second), Fingerprint: "tok_0123abcd", Method: "GET", PathTemplate: "/v1/workspaces",
			Status: 429, Attempt: 2, PlatformRemaining: 0, QueryRemaining: -1, DailyRemaining: -1, Error: "rate limited"},
	}
	if err := h.sink.RecordCalls(h.ctx, r2, calls); err != nil {
		t.Fatal(err)
	}
	if n, err := h.insp.CallCount(h.ctx, r2); err != nil || n != 2 {
		t.Errorf("CallCount = %d, %v; want 2", n, err)
	}
	end := load.RunEnd{Finished: t0.Add(time.Hour), Status: load.RunPartial, Calls: 2,
		Rows: map[string]int{load.Jobs: 1}, Incomplete: []string{"jobs of stream 11"}}
	if err := h.sink.FinishRun(h.ctx, r2, end); err != nil {
		t.Fatal(err)
	}
	got, err := h.insp.Run(h.ctx, r2)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "run", got, RunRecord{Status: load.RunPartial, Calls: 2, Rows: map[string]int{load.Jobs: 1}})
	got, _ = h.insp.Run(h.ctx, r1)
	equal(t, "unfinished run status", got.Status, load.RunRunning)
}

func testRejectsMismatchedBatch(t *testing.T, h *harness) {
	run := h.run()
	for name, b := range map[string]load.Batch{
		"unknown entity":      {Entity: "nonsense", ObservedAt: t0},
		"rows of another":     {Entity: load.Streams, ParentID: 1, ObservedAt: t0, Jobs: jobs(10, "SUCCESS", 1)},
		"job of other stream": {Entity: load.Jobs, ParentID: 10, ObservedAt: t0, Jobs: jobs(11, "SUCCESS", 1)},
	} {
		if err := h.sink.Write(h.ctx, run, b); err == nil {
			t.Errorf("%s: Write accepted the batch", name)
		}
	}
	equal(t, "jobs", len(h.rows(load.Jobs)), 0)
}

func testCheckpointsByKind(t *testing.T, h *harness) {
	run := h.run()
	at := t0.Add(5 * time.Minute)
	h.write(run, load.Batch{Entity: load.Streams, ParentID: 1, ObservedAt: t0,
		Checkpoint: &load.Checkpoint{Kind: "streams", ParentID: 1, State: json.RawMessage(`{"n":1}`), UpdatedAt: at}})
	h.write(run, load.Batch{Entity: load.Streams, ParentID: 2, ObservedAt: t0,
		Checkpoint: &load.Checkpoint{Kind: "streams", ParentID: 2, State: json.RawMessage(`{"n":2}`)}})
	h.write(run, load.Batch{Entity: load.Jobs, ParentID: 10, ObservedAt: t0,
		Checkpoint: &load.Checkpoint{Kind: "jobs", ParentID: 10, State: json.RawMessage(`{"n":3}`)}})
	cps := h.checkpoints("streams")
	if len(cps) != 2 {
		t.Fatalf("streams checkpoints = %v, want 2", cps)
	}
	equal(t, "checkpoint 1", cps[1], load.Checkpoint{Kind: "streams", ParentID: 1, State: json.RawMessage(`{"n":1}`), UpdatedAt: at, RunID: run})
	equal(t, "checkpoint 2 time (defaults to observation)", cps[2].UpdatedAt, t0)
	equal(t, "no checkpoints of an unknown kind", len(h.checkpoints("none")), 0)
}
