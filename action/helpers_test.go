package action

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/extract"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
	"github.com/drextract/drextract/sim"
)

// testStart is the virtual time every test account is generated at.
var testStart = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// env is a simulator served over real HTTP under /base, a real DuckDB store in a
// temporary directory, a client behind a real rate budget, the real crawler and an
// Engine, all on one virtual clock.
type env struct {
	t      testing.TB
	clk    *clock.Manual
	sim    *sim.Sim
	srv    *httptest.Server
	base   string
	store  *load.Store
	dbPath string
	budget *ratelimit.Budget
	client *datorama.Client
	eng    *Engine
}

func quietLogger() *slog.Logger {
	if os.Getenv("DREXTRACT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newEnv(t testing.TB, o sim.Options) *env {
	t.Helper()
	clk := clock.NewManual(testStart)
	t.Cleanup(clk.AutoAdvance(2 * time.Millisecond))
	if o.PlatformLimit == 0 {
		o.PlatformLimit = 1 << 30
	}
	if o.DailyQuota == 0 {
		o.DailyQuota = 1 << 30
	}
	if o.Seed == 0 {
		o.Seed = 7
	}
	o.Clock = clk
	s := sim.New(o)
	srv := httptest.NewServer(http.StripPrefix("/base", s))
	t.Cleanup(srv.Close)
	e := &env{t: t, clk: clk, sim: s, srv: srv, base: srv.URL + "/base"}
	e.dbPath = filepath.Join(t.TempDir(), load.LiveFile)
	st, err := load.Open(context.Background(), e.dbPath, load.Options{Clock: clk, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("opening the store: %v", err)
	}
	t.Cleanup(func() {
		if e.store != nil {
			_ = e.store.Close()
		}
	})
	e.store = st
	e.budget = ratelimit.NewBudget(s.Tokens()[0], ratelimit.Config{
		Clock: clk, PlatformLimit: o.PlatformLimit, DailyQuota: o.DailyQuota, Logger: quietLogger(),
	})
	c, err := datorama.New(e.base, s.Tokens()[0], datorama.WithGate(e.budget), datorama.WithClock(clk), datorama.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	e.eng = &Engine{DB: st.DB(), Client: c, Clock: clk, Logger: quietLogger(),
		OpenUserSQL: StoreSandbox(st, filepath.Join(filepath.Dir(e.dbPath), load.ServingFile), load.SandboxOptions{}),
		Budget:      func() BudgetView { return BudgetViewOf(e.budget.Status()) }}
	return e
}

// closeStore closes the store so that another process may open the file.
func (e *env) closeStore() {
	e.t.Helper()
	if err := e.store.Close(); err != nil {
		e.t.Fatal(err)
	}
	e.store = nil
}

// reopenStore opens the store file again, as a process starting after a crash would.
func (e *env) reopenStore() {
	e.t.Helper()
	st, err := load.Open(context.Background(), e.dbPath, load.Options{Clock: e.clk, Logger: quietLogger()})
	if err != nil {
		e.t.Fatalf("reopening the store: %v", err)
	}
	e.store = st
	e.eng.DB = st.DB()
	e.eng.OpenUserSQL = StoreSandbox(st, filepath.Join(filepath.Dir(e.dbPath), load.ServingFile), load.SandboxOptions{})
}

// crawl runs the real crawler (incremental unless full) and then the follow-up, as the
// extract command does.
func (e *env) crawl(full bool, entities ...string) {
	e.t.Helper()
	c := &extract.Crawler{Client: e.client, Sink: e.store}
	res, err := c.Run(context.Background(), extract.Options{Full: full, Entities: entities, Clock: e.clk, Logger: quietLogger()})
	if err != nil {
		e.t.Fatalf("crawl: %v", err)
	}
	if res.Status != load.RunOK {
		e.t.Fatalf("crawl status %s: %v", res.Status, res.Err)
	}
	if _, err := FollowUp(context.Background(), e.store.DB()); err != nil {
		e.t.Fatalf("follow-up: %v", err)
	}
}

// act plans and executes a request for real and fails the test on a planning error.
func (e *env) act(req Request) (*Plan, *Report, error) {
	e.t.Helper()
	p, err := e.eng.Prepare(context.Background(), req)
	if err != nil {
		e.t.Fatalf("prepare: %v", err)
	}
	rep, err := e.eng.Execute(context.Background(), p, false, io.Discard)
	return p, rep, err
}

func (e *env) calls(endpoint string) int { return e.sim.Calls().ByEndpoint[endpoint] }

// mutatingCalls counts every call that changes something at Datorama.
func (e *env) mutatingCalls() int {
	n := 0
	for k, v := range e.sim.Calls().ByEndpoint {
		if !strings.HasPrefix(k, "GET ") && !strings.HasSuffix(k, "/stats") {
			n += v
		}
	}
	return n
}

const (
	epRerun       = "POST /v1/data-streams/api/{id}/rerun"
	epRerunAll    = "POST /v1/data-streams/api/{id}/rerun-all"
	epProcess     = "POST /v1/data-streams/{id}/process"
	epProcessMany = "POST /v1/data-streams/process"
	epPatch       = "PATCH /v1/data-streams/{id}"
	epPut         = "PUT /v1/data-streams/{id}"
	epMappingPut  = "PUT /v1/data-streams/api/{id}/mapping"
)

// truth decodes the simulator's ground truth with the client's own models.
type truth struct {
	streams map[int64]datorama.Stream
	jobs    map[int64]datorama.Job
	byStr   map[int64][]datorama.Job // ascending id
	maps    map[int64]json.RawMessage
	now     time.Time
}

func (e *env) truth() truth {
	e.t.Helper()
	tr := e.sim.Truth()
	out := truth{streams: map[int64]datorama.Stream{}, jobs: map[int64]datorama.Job{}, byStr: map[int64][]datorama.Job{}, maps: map[int64]json.RawMessage{}, now: tr.Now}
	for _, raw := range tr.Streams {
		var s datorama.Stream
		if err := json.Unmarshal(raw, &s); err != nil {
			e.t.Fatal(err)
		}
		out.streams[s.ID] = s
	}
	for _, raw := range tr.Jobs {
		var j datorama.Job
		if err := json.Unmarshal(raw, &j); err != nil {
			e.t.Fatal(err)
		}
		out.jobs[j.ID] = j
		sid := int64(j.DataStreamID)
		out.byStr[sid] = append(out.byStr[sid], j)
	}
	for k, v := range tr.Mappings {
		var id int64
		if err := json.Unmarshal([]byte(k), &id); err == nil {
			out.maps[id] = v
		}
	}
	return out
}

// byWorkspace groups the enabled streams by workspace.
func (tr truth) byWorkspace() map[int64][]int64 {
	out := map[int64][]int64{}
	for _, id := range tr.enabledStreams(0) {
		ws := int64(tr.streams[id].WorkspaceID)
		out[ws] = append(out[ws], id)
	}
	return out
}

// enabledStreams returns the ids of the live, enabled streams, ascending, optionally of
// one workspace (0: all).
func (tr truth) enabledStreams(ws int64) []int64 {
	var out []int64
	for id, s := range tr.streams {
		if s.Enabled && (ws == 0 || int64(s.WorkspaceID) == ws) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// query returns one column of a query as strings, for assertions.
func (e *env) query(q string, args ...any) [][]any {
	e.t.Helper()
	res, err := load.Query(context.Background(), e.store.DB(), q, args...)
	if err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return res.Rows
}

func (e *env) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.store.DB().QueryRow(q, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// recording makes the engine write back what its runs change, stamped with a new runs
// row, as the run layer does; it returns the row's id.
func (e *env) recording() int64 {
	e.t.Helper()
	id, err := e.store.StartRun(context.Background(), load.RunStart{Schedule: "test", Kind: "action", Started: e.clk.Now()})
	if err != nil {
		e.t.Fatal(err)
	}
	e.eng.Sink, e.eng.RunID = e.store, id
	return id
}

// canonicalJSON re-encodes JSON with sorted keys and exact numbers.
func canonicalJSON(t testing.TB, raw []byte) string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("canonical JSON of %.80s: %v", raw, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// assertEqualTruth compares the live rows of the store's streams, jobs, mappings,
// patterns and calculated measurements with the simulator's ground truth, record by
// record.
func (e *env) assertEqualTruth() {
	e.t.Helper()
	tr := e.sim.Truth()
	byID := func(list []json.RawMessage) map[string]string {
		out := map[string]string{}
		for _, raw := range list {
			var rec struct {
				ID int64 `json:"id"`
			}
			if err := json.Unmarshal(raw, &rec); err != nil {
				e.t.Fatal(err)
			}
			out[strconv.FormatInt(rec.ID, 10)] = canonicalJSON(e.t, raw)
		}
		return out
	}
	lists := func(m map[string]json.RawMessage) map[string]string {
		out := map[string]string{}
		for _, raw := range m {
			var list []json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil {
				e.t.Fatal(err)
			}
			maps.Copy(out, byID(list))
		}
		return out
	}
	mappings := map[string]string{}
	for id, raw := range tr.Mappings {
		mappings[id] = canonicalJSON(e.t, raw)
	}
	want := map[string]map[string]string{
		load.Streams: byID(tr.Streams), load.Jobs: byID(tr.Jobs), load.Mappings: mappings,
		load.Patterns: lists(tr.Patterns), load.CalculatedMeasurements: lists(tr.CalculatedMeasurements),
	}
	for _, table := range slices.Sorted(maps.Keys(want)) {
		key := "id"
		if table == load.Mappings {
			key = "stream_id"
		}
		got := map[string]string{}
		for _, r := range e.query(`SELECT CAST(` + key + ` AS VARCHAR), CAST(raw AS VARCHAR) FROM ` + table + ` WHERE NOT is_deleted`) {
			got[r[0].(string)] = canonicalJSON(e.t, []byte(r[1].(string)))
		}
		var diffs []string
		for k, v := range want[table] {
			if g, ok := got[k]; !ok {
				diffs = append(diffs, "missing "+k)
			} else if g != v {
				diffs = append(diffs, fmt.Sprintf("differs %s: store %.200s\n      truth %.200s", k, g, v))
			}
		}
		for k := range got {
			if _, ok := want[table][k]; !ok {
				diffs = append(diffs, "extra "+k)
			}
		}
		if len(diffs) > 0 {
			slices.Sort(diffs)
			e.t.Errorf("%s: the store differs from the truth in %d records:\n  %s", table, len(diffs), strings.Join(diffs[:min(5, len(diffs))], "\n  "))
		}
	}
}
