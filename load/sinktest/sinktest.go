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

// StatusChange is one recorded job status transition. A job's first sight is not one.
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
		{"HistoryOfConfigurationOnly", testHistoryOfConfigurationOnly},
		{"HistoryValidFromChangeTime", testHistoryValidFromChangeTime},
		{"JobStatusChanges", testJobStatusChanges},
		{"RunsAndCalls", testRunsAndCalls},
		{"RejectsMismatchedBatch", testRejectsMismatchedBatch},
		{"CheckpointsByKind", testCheckpointsByKind},
		{"BatchesAsOneWrites", testBatchesAsOneWrites},
		{"BatchesFailTogether", testBatchesFailTogether},
		{"BatchesCancelled", testBatchesCancelled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink, insp := open(t)
			h := &harness{t: t, ctx: context.Background(), sink: sink, insp: insp, open: open}
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
	open Opener // for a test that compares two sinks
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
	// The first sight of a job is not a transition: only real changes are recorded.
	want := []StatusChange{
		{Old: "PENDING", New: "IN_PROGRESS", SeenAt: t0.Add(time.Hour), RunID: run},
		{Old: "IN_PROGRESS", New: "SUCCESS", SeenAt: t0.Add(3 * time.Hour), RunID: run},
	}
	equal(t, "changes of job 1", got, want)
	got, _ = h.insp.StatusChanges(h.ctx, 2)
	equal(t, "changes of job 2 (never changed)", len(got), 0)
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

// StreamWith makes a stream row whose record carries a change time (zero: none) and the
// given run statistics, as the API's stream listing does.
func StreamWith(id, ws int64, name string, updated time.Time, stats map[string]any) load.StreamRow {
	rec := map[string]any{"id": id, "workspaceId": ws, "name": name, "enabled": true}
	if !updated.IsZero() {
		rec["updateTime"] = updated.UnixMilli()
	}
	for k, v := range stats {
		rec[k] = v
	}
	raw, _ := json.Marshal(rec)
	return load.StreamRow{ID: id, WorkspaceID: ws, Name: name, Enabled: true, UpdateTime: updated, Raw: raw}
}

func (h *harness) history(table, key string) []Version {
	h.t.Helper()
	v, err := h.insp.History(h.ctx, table, key)
	if err != nil {
		h.t.Fatal(err)
	}
	return v
}

func testHistoryOfConfigurationOnly(t *testing.T, h *harness) {
	run := h.run()
	listing := func(obs time.Time, r load.StreamRow) {
		h.write(run, load.Batch{Entity: load.Streams, ParentID: 1, ObservedAt: obs, Complete: true, Streams: []load.StreamRow{r}})
	}
	upd := t0.Add(-24 * time.Hour)
	// Every run moves the run statistics; none of them is a new configuration.
	for i, stats := range []map[string]any{
		{"lastRunStatus": nil, "hasData": false, "processedRows": 0},
		{"lastRunStatus": true, "lastUpdate": t0.Add(time.Hour).UnixMilli(), "lastRowsRetrieved": 10,
			"processedRows": 10, "lastDataDate": "2025-03-09", "processStatsCounts": 1, "hasData": true},
		{"lastRunStatus": false, "lastUpdate": t0.Add(2 * time.Hour).UnixMilli(), "lastRowsRetrieved": 0,
			"processedRows": 10, "lastDataDate": "2025-03-10", "processStatsCounts": 2, "hasData": true},
	} {
		listing(t0.Add(time.Duration(i)*time.Hour), StreamWith(10, 1, "a", upd, stats))
	}
	if hist := h.history(load.Streams, "10"); len(hist) != 1 || !hist[0].Current {
		t.Fatalf("a stream whose runs changed only its run statistics has versions %+v, want one current", hist)
	}
	last := StreamWith(10, 1, "a", upd, map[string]any{"lastRunStatus": false,
		"lastUpdate": t0.Add(2 * time.Hour).UnixMilli(), "lastRowsRetrieved": 0, "processedRows": 10,
		"lastDataDate": "2025-03-10", "processStatsCounts": 2, "hasData": true})
	equal(t, "current row keeps the latest record", h.rows(load.Streams)["10"].Raw, string(last.Raw))

	// A configuration change is a version, whatever the statistics do.
	cfg := StreamWith(10, 1, "b", t0.Add(150*time.Minute), map[string]any{"lastRunStatus": true, "processedRows": 99})
	listing(t0.Add(3*time.Hour), cfg)
	hist := h.history(load.Streams, "10")
	if len(hist) != 2 || hist[0].Current || !hist[1].Current || hist[0].RowHash == hist[1].RowHash {
		t.Errorf("after a rename: versions %+v, want the first closed and a second current", hist)
	}
}

func testHistoryValidFromChangeTime(t *testing.T, h *harness) {
	run := h.run()
	listing := func(obs time.Time, r load.StreamRow) {
		h.write(run, load.Batch{Entity: load.Streams, ParentID: 1, ObservedAt: obs, Complete: true, Streams: []load.StreamRow{r}})
	}
	created := t0.Add(-48 * time.Hour)
	// First sight: the configuration is valid since the API says it last changed.
	listing(t0, StreamWith(10, 1, "a", created, nil))
	// A change the API dates: the old version ends and the new one starts at that time.
	changed := t0.Add(90 * time.Minute)
	listing(t0.Add(2*time.Hour), StreamWith(10, 1, "b", changed, nil))
	// A change dated no later than the version it replaces (the API did not move
	// updateTime): dated by the crawl that saw it.
	obs3 := t0.Add(3 * time.Hour)
	listing(obs3, StreamWith(10, 1, "c", changed, nil))
	// A stream without a change time: the crawl time.
	obs4 := t0.Add(4 * time.Hour)
	h.write(run, load.Batch{Entity: load.Streams, ParentID: 1, ObservedAt: obs4, Complete: true,
		Streams: []load.StreamRow{StreamWith(10, 1, "c", changed, nil), Stream(11, 1, "x")}})

	hist := h.history(load.Streams, "10")
	want := []struct{ from, to time.Time }{{created, changed}, {changed, obs3}, {obs3, time.Time{}}}
	if len(hist) != len(want) {
		t.Fatalf("stream 10 versions %+v, want %d", hist, len(want))
	}
	for i, w := range want {
		if !hist[i].ValidFrom.Equal(w.from) || !hist[i].ValidTo.Equal(w.to) {
			t.Errorf("version %d valid %v..%v, want %v..%v", i, hist[i].ValidFrom, hist[i].ValidTo, w.from, w.to)
		}
	}
	if other := h.history(load.Streams, "11"); len(other) != 1 || !other[0].ValidFrom.Equal(obs4) {
		t.Errorf("stream without a change time: versions %+v, want one valid from the crawl time %v", other, obs4)
	}
	// A stream that comes back after its deletion starts again no earlier than the end of
	// its last version, even if its change time is older.
	del := t0.Add(5 * time.Hour)
	h.write(run, load.Batch{Entity: load.Streams, ParentID: 1, ObservedAt: del, Complete: true, Streams: []load.StreamRow{Stream(11, 1, "x")}})
	back := t0.Add(6 * time.Hour)
	listing(back, StreamWith(10, 1, "c", changed, nil))
	hist = h.history(load.Streams, "10")
	if n := len(hist); n != 4 || !hist[2].ValidTo.Equal(del) || !hist[3].ValidFrom.Equal(back) || !hist[3].Current {
		t.Errorf("after deletion at %v and return at %v: versions %+v", del, back, hist)
	}
}

// groupSequence is batches that exercise what a merge of several batches must get right:
// the same parent twice (a later page of a stream, a revived job), a listing and then a
// row it lacked, a checkpoint written twice, entities mixed.
func groupSequence() []load.Batch {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	cp := func(kind string, parent int64, state string) *load.Checkpoint {
		return &load.Checkpoint{Kind: kind, ParentID: parent, State: json.RawMessage(state)}
	}
	mapping := func(raw string) []load.MappingRow {
		return []load.MappingRow{{StreamID: 10, WorkspaceID: 1, Raw: json.RawMessage(raw)}}
	}
	return []load.Batch{
		{Entity: load.Workspaces, ObservedAt: at(0), Complete: true, Workspaces: []load.WorkspaceRow{Workspace(1, "w")}},
		{Entity: load.Streams, ParentID: 1, ObservedAt: at(0), Complete: true,
			Streams: []load.StreamRow{Stream(10, 1, "a"), Stream(20, 1, "b"), Stream(30, 1, "c")}},
		{Entity: load.Jobs, ParentID: 10, ObservedAt: at(1), Jobs: jobs(10, "PENDING", 1, 2, 3), Checkpoint: cp("jobs", 10, `{"p":1}`)},
		{Entity: load.Jobs, ParentID: 20, ObservedAt: at(1), Complete: true, Jobs: jobs(20, "PENDING", 4, 5), Checkpoint: cp("jobs", 20, `{"p":1}`)},
		{Entity: load.Mappings, ParentID: 10, ObservedAt: at(1), Complete: true, Mappings: mapping(`{"a":1}`)},
		{Entity: load.Jobs, ParentID: 10, ObservedAt: at(2), Complete: true, AllIDs: []int64{1, 2, 6},
			Jobs: append(jobs(10, "SUCCESS", 2), jobs(10, "PENDING", 6)...), Checkpoint: cp("jobs", 10, `{"p":2}`)},
		{Entity: load.Streams, ParentID: 1, ObservedAt: at(3), Complete: true, Streams: []load.StreamRow{Stream(10, 1, "a2"), Stream(20, 1, "b")}},
		{Entity: load.Jobs, ParentID: 10, ObservedAt: at(4), Jobs: jobs(10, "FAILURE", 3, 2)},
		{Entity: load.Streams, ParentID: 1, ObservedAt: at(5), Streams: []load.StreamRow{Stream(30, 1, "c")}},
		{Entity: load.Mappings, ParentID: 10, ObservedAt: at(5), Complete: true, Mappings: mapping(`{"a":2}`)},
		{Entity: load.Jobs, ParentID: 20, ObservedAt: at(6), Complete: true, Checkpoint: cp("jobs", 20, `{"p":9}`)},
		{Entity: load.Jobs, ParentID: 10, Checkpoint: cp("account", 0, `{"cap":10}`)},
		{Entity: load.Workspaces, ObservedAt: at(7), Complete: true, Workspaces: []load.WorkspaceRow{Workspace(1, "w2"), Workspace(2, "v")}},
	}
}

// snapshot is everything a sink shows of what groupSequence wrote, with run ids made
// relative to the run that wrote it.
func (h *harness) snapshot(run int64) map[string]any {
	h.t.Helper()
	out := map[string]any{}
	for _, table := range []string{load.Workspaces, load.Streams, load.Jobs, load.Mappings} {
		rows := h.rows(table)
		for k, r := range rows {
			r.RunID -= run
			rows[k] = r
		}
		out[table] = rows
	}
	for _, key := range []struct{ table, key string }{{load.Workspaces, "1"}, {load.Streams, "10"}, {load.Streams, "30"}, {load.Mappings, "10"}} {
		out["history "+key.table+" "+key.key] = h.history(key.table, key.key)
	}
	for id := int64(1); id <= 6; id++ {
		ch, err := h.insp.StatusChanges(h.ctx, id)
		if err != nil {
			h.t.Fatal(err)
		}
		for i := range ch {
			ch[i].RunID -= run
		}
		out[fmt.Sprint("changes of job ", id)] = ch
	}
	for _, kind := range []string{"jobs", "account"} {
		cps := h.checkpoints(kind)
		for k, cp := range cps {
			cp.RunID -= run
			cps[k] = cp
		}
		out["checkpoints "+kind] = cps
	}
	out["index 10"], out["index 20"] = h.jobIndex(10), h.jobIndex(20)
	return out
}

func testBatchesAsOneWrites(t *testing.T, h *harness) {
	seq := groupSequence()
	run := h.run()
	for _, b := range seq {
		h.write(run, b)
	}
	want := h.snapshot(run)
	// The sequence does what it is meant to exercise: job 3 left stream 10's listing and
	// came back, stream 20's jobs left its listing, stream 30 left and came back.
	equal(t, "sequential: deleted jobs", deletedKeys(h.rows(load.Jobs)), strs(4, 5))
	equal(t, "sequential: deleted streams", deletedKeys(h.rows(load.Streams)), []string(nil))
	equal(t, "sequential: versions of stream 30", len(h.history(load.Streams, "30")), 2)
	equal(t, "sequential: versions of mapping 10", len(h.history(load.Mappings, "10")), 2)
	if ch, _ := h.insp.StatusChanges(h.ctx, 3); len(ch) != 1 || ch[0].Old != "PENDING" || ch[0].New != "FAILURE" {
		t.Errorf("sequential: changes of revived job 3 = %+v", ch)
	}

	for name, cut := range map[string][]int{"all at once": nil, "in three calls": {4, 9}} {
		t.Run(name, func(t *testing.T) {
			sink, insp := h.open(t)
			g := &harness{t: t, ctx: h.ctx, sink: sink, insp: insp, open: h.open}
			run := g.run()
			from := 0
			for _, to := range append(cut, len(seq)) {
				if err := sink.WriteBatches(g.ctx, run, slices.Clone(seq[from:to])); err != nil {
					t.Fatalf("WriteBatches(%d..%d): %v", from, to, err)
				}
				from = to
			}
			got := g.snapshot(run)
			for k, w := range want {
				equal(t, k, got[k], w)
			}
		})
	}
}

func testBatchesFailTogether(t *testing.T, h *harness) {
	run := h.run()
	h.write(run, load.Batch{Entity: load.Jobs, ParentID: 10, ObservedAt: t0, Jobs: jobs(10, "PENDING", 1),
		Checkpoint: &load.Checkpoint{Kind: "jobs", ParentID: 10, State: json.RawMessage(`{"page":1}`)}})
	before := map[string]any{"jobs": h.rows(load.Jobs), "streams": h.rows(load.Streams), "checkpoints": h.checkpoints("jobs")}

	bad := jobs(20, "SUCCESS", 7, 8)
	bad[1].Raw = json.RawMessage(`{"id": 8,`)
	good := func() []load.Batch {
		return []load.Batch{
			{Entity: load.Jobs, ParentID: 10, ObservedAt: t0.Add(time.Minute), Complete: true, Jobs: jobs(10, "SUCCESS", 2),
				Checkpoint: &load.Checkpoint{Kind: "jobs", ParentID: 10, State: json.RawMessage(`{"page":2}`)}},
			{Entity: load.Streams, ParentID: 1, ObservedAt: t0.Add(time.Minute), Complete: true, Streams: []load.StreamRow{Stream(10, 1, "a")}},
		}
	}
	for name, b := range map[string]load.Batch{
		"a row that is not JSON": {Entity: load.Jobs, ParentID: 20, ObservedAt: t0.Add(time.Minute), Jobs: bad,
			Checkpoint: &load.Checkpoint{Kind: "jobs", ParentID: 20, State: json.RawMessage(`{"page":1}`)}},
		"a job of another stream": {Entity: load.Jobs, ParentID: 20, ObservedAt: t0.Add(time.Minute), Jobs: jobs(21, "SUCCESS", 9),
			Checkpoint: &load.Checkpoint{Kind: "jobs", ParentID: 20, State: json.RawMessage(`{"page":1}`)}},
	} {
		for _, pos := range []int{0, 1, 2} {
			group := good()
			group = slices.Insert(group, pos, b)
			if err := h.sink.WriteBatches(h.ctx, run, group); err == nil {
				t.Fatalf("%s at %d: WriteBatches accepted the group", name, pos)
			}
			after := map[string]any{"jobs": h.rows(load.Jobs), "streams": h.rows(load.Streams), "checkpoints": h.checkpoints("jobs")}
			equal(t, fmt.Sprintf("%s at %d: store after the failed group", name, pos), after, before)
		}
	}
	// The sink is still usable and takes the good batches.
	if err := h.sink.WriteBatches(h.ctx, run, good()); err != nil {
		t.Fatal(err)
	}
	equal(t, "jobs after the good group", keys(h.jobIndex(10)), []int64{2})
	equal(t, "checkpoint after the good group", string(h.checkpoints("jobs")[10].State), `{"page":2}`)
}

func testBatchesCancelled(t *testing.T, h *harness) {
	run := h.run()
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	err := h.sink.WriteBatches(ctx, run, []load.Batch{
		{Entity: load.Jobs, ParentID: 10, ObservedAt: t0, Jobs: jobs(10, "SUCCESS", 1),
			Checkpoint: &load.Checkpoint{Kind: "jobs", ParentID: 10, State: json.RawMessage(`{}`)}},
		{Entity: load.Jobs, ParentID: 20, ObservedAt: t0, Jobs: jobs(20, "SUCCESS", 2)},
	})
	if err == nil {
		t.Fatal("WriteBatches with a cancelled context succeeded")
	}
	equal(t, "jobs", len(h.rows(load.Jobs)), 0)
	equal(t, "checkpoints", len(h.checkpoints("jobs")), 0)
	if err := h.sink.WriteBatches(h.ctx, run, nil); err != nil {
		t.Errorf("WriteBatches of no batches: %v", err)
	}
}
