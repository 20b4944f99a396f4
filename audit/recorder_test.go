package audit

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

var t0 = time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

func TestAPICall(t *testing.T) {
	reset := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	r := datorama.CallRecord{Time: t0, Fingerprint: "tok_0123abcd", Method: "POST", PathTemplate: "/v1/data-streams/api/{id}/stats",
		Status: 429, Latency: time.Second, Attempt: 2, Err: "x", Ref: datorama.CallRef{ActionRunID: 4, ActionCallNo: 9},
		Rate: datorama.Rate{Platform: datorama.Window{Known: true, Remaining: 0}, DailyQuotaRest: reset}}
	got := APICall(r)
	want := load.APICall{Time: t0, Fingerprint: "tok_0123abcd", Method: "POST", PathTemplate: "/v1/data-streams/api/{id}/stats",
		Status: 429, Latency: time.Second, Attempt: 2, PlatformRemaining: 0, QueryRemaining: -1, DailyRemaining: -1,
		DailyReset: reset, Error: "x", ActionRunID: 4, ActionCallNo: 9}
	if got != want {
		t.Errorf("APICall = %+v\nwant %+v", got, want)
	}
}

// env is a simulator over real HTTP and a store in a temporary folder.
type env struct {
	t     *testing.T
	sim   *sim.Sim
	url   string
	clock *clock.Manual
	path  string // the store's file
	store *load.Store
}

func newEnv(t *testing.T) *env {
	t.Helper()
	mc := clock.NewManual(t0)
	s := sim.New(sim.Options{Seed: 3, Workspaces: 2, Streams: 4, JobsPerStream: 3, Clock: mc,
		PlatformLimit: 1 << 30, QueryLimit: 1 << 30, DailyQuota: 1 << 30})
	srv := httptest.NewServer(http.StripPrefix("/base", s))
	t.Cleanup(srv.Close)
	path := filepath.Join(t.TempDir(), load.LiveFile)
	st, err := load.Open(context.Background(), path, load.Options{Clock: mc, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return &env{t: t, sim: s, url: srv.URL + "/base", clock: mc, path: path, store: st}
}

func (e *env) client(rec *Recorder) *datorama.Client {
	e.t.Helper()
	c, err := datorama.New(e.url, e.sim.Tokens()[0], datorama.WithObserver(rec), datorama.WithClock(e.clock))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.store.DB().QueryRow(query, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// A Recorder journals every attempt, tagged with its run (set up front, or by the Sink
// when the crawl starts its run) and with the action call its context names; the store
// folds them into api_calls.
func TestRecorderJournalsEveryAttempt(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	journal := load.NewJournal(e.path)

	// A crawl's recorder learns its run from the Sink, which also makes the journal
	// durable before each write.
	crawl := New(journal, Options{})
	sink := Sink(e.store, crawl)
	c := e.client(crawl)
	if _, err := c.Workspaces.List(ctx); err != nil { // before the run: no run
		t.Fatal(err)
	}
	runID, err := sink.StartRun(ctx, load.RunStart{Schedule: "test", Kind: "extract", Started: t0})
	if err != nil {
		t.Fatal(err)
	}
	wss, err := c.Workspaces.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Write(ctx, runID, load.Batch{Entity: load.Workspaces, ObservedAt: t0,
		Workspaces: []load.WorkspaceRow{{ID: wss[0].ID, Name: wss[0].Name, Raw: wss[0].Raw}}}); err != nil {
		t.Fatal(err)
	}

	// An action's recorder knows its run from the start and syncs each record.
	act := New(journal, Options{RunID: 77, SyncEach: true})
	ac := e.client(act)
	if _, err := ac.Workspaces.List(datorama.WithCallRef(ctx, datorama.CallRef{ActionRunID: 5, ActionCallNo: 2})); err != nil {
		t.Fatal(err)
	}
	if crawl.Calls() != 2 || act.Calls() != 1 || crawl.Err() != nil || act.Err() != nil {
		t.Fatalf("recorders: crawl %d calls (%v), action %d (%v)", crawl.Calls(), crawl.Err(), act.Calls(), act.Err())
	}
	raw, err := os.ReadFile(load.JournalPath(e.path))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), e.sim.Tokens()[0]) {
		t.Fatal("the journal holds the token")
	}

	if _, err := e.store.FoldJournal(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.count(`SELECT count(*) FROM api_calls`); got != e.sim.Calls().Total || got != 3 {
		t.Errorf("api_calls has %d rows, the API saw %d calls", got, e.sim.Calls().Total)
	}
	for _, tc := range []struct {
		where string
		want  int
	}{
		{"run_id IS NULL AND action_run_id IS NULL", 1},
		{"run_id = " + strconv.FormatInt(runID, 10) + " AND action_run_id IS NULL", 1},
		{"run_id = 77 AND action_run_id = 5 AND action_call_no = 2", 1},
		{"status = 200 AND method = 'GET' AND path_template = '/v1/workspaces' AND latency_ms IS NOT NULL AND token_fingerprint = '" +
			datorama.Fingerprint(e.sim.Tokens()[0]) + "'", 3},
	} {
		if got := e.count(`SELECT count(*) FROM api_calls WHERE ` + tc.where); got != tc.want {
			t.Errorf("%d rows where %s, want %d", got, tc.where, tc.want)
		}
	}
}

// A journal that cannot be written makes the Recorder say so, and a crawl's Sink
// refuses to commit what calls it could not record read.
func TestRecorderReportsAJournalItCannotWrite(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// The journal's place is taken by a folder: no record can be appended.
	blocked := filepath.Join(t.TempDir(), "store.duckdb")
	if err := os.Mkdir(load.JournalPath(blocked), 0o755); err != nil {
		t.Fatal(err)
	}
	rec := New(load.NewJournal(blocked), Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	c := e.client(rec)
	if _, err := c.Workspaces.List(ctx); err != nil {
		t.Fatal(err) // the call itself is not failed by its audit
	}
	if err := rec.Err(); err == nil || !strings.Contains(err.Error(), "1 of 1 API calls") {
		t.Fatalf("Err() = %v, want the failed record counted", err)
	}
	sink := Sink(e.store, rec)
	page := load.Batch{Entity: load.Workspaces, ObservedAt: t0, Workspaces: []load.WorkspaceRow{{ID: 1, Name: "w", Raw: []byte(`{}`)}}}
	if err := sink.Write(ctx, 1, page); err == nil {
		t.Error("the Sink committed a page whose calls are not journaled")
	}
	if err := sink.WriteBatches(ctx, 1, []load.Batch{page}); err == nil {
		t.Error("the Sink committed a group of pages whose calls are not journaled")
	}
	if n := e.count(`SELECT count(*) FROM workspaces`); n != 0 {
		t.Errorf("%d workspaces stored", n)
	}
}
