package extract

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// testStart is the virtual time every test account is generated at.
var testStart = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// env is one simulator served over real HTTP under /base, a real DuckDB store in a
// temporary directory and a crawler wired like the CLI wires it.
type env struct {
	t       testing.TB
	clk     *clock.Manual
	sim     *sim.Sim
	srv     *httptest.Server
	baseURL string
	store   *load.Store
	dbPath  string
	audit   *Audit
	client  *datorama.Client
	crawler *Crawler

	mu    sync.Mutex
	fail  func(r *http.Request, body []byte) bool // requests it matches answer 500
	pages map[string]int                          // stats requests answered 200 with jobs: "path body" → count
	after func()                                  // called after every answered API request
}

// serve passes requests to the simulator, except those e.fail matches, which answer
// 500 before the simulator sees them: a listing that keeps failing for one parent.
func (e *env) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	fail := e.fail
	e.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if fail != nil && fail(r, body) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"errors":["injected by the test"]}`)
		return
	}
	sw := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	e.sim.ServeHTTP(sw, r)
	// Empty answers are left out: confirming an empty page asks for it again by design.
	e.mu.Lock()
	if strings.HasSuffix(r.URL.Path, "/stats") && sw.status == http.StatusOK && sw.written > 2 {
		if e.pages == nil {
			e.pages = map[string]int{}
		}
		e.pages[r.URL.Path+" "+string(body)]++
	}
	after := e.after
	e.mu.Unlock()
	if after != nil {
		after()
	}
}

type statusRecorder struct {
	http.ResponseWriter
	status  int
	written int
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	n, err := s.ResponseWriter.Write(b)
	s.written += n
	return n, err
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// pagesServed returns the stats requests answered 200 with jobs so far, keyed "path body".
func (e *env) pagesServed() map[string]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return maps.Clone(e.pages)
}

func (e *env) setFail(f func(r *http.Request, body []byte) bool) {
	e.mu.Lock()
	e.fail = f
	e.mu.Unlock()
}

// quietLogger discards everything unless DREXTRACT_TEST_LOG is set.
func quietLogger() *slog.Logger {
	if os.Getenv("DREXTRACT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// highLimits lifts the simulator's rate limits so a test crawl is not paced.
func highLimits(o sim.Options) sim.Options {
	if o.PlatformLimit == 0 {
		o.PlatformLimit = 1 << 30
	}
	if o.DailyQuota == 0 {
		o.DailyQuota = 1 << 30
	}
	return o
}

func newEnv(t testing.TB, o sim.Options) *env { return newEnvAt(t, testStart, o) }

func newEnvAt(t testing.TB, start time.Time, o sim.Options) *env {
	t.Helper()
	clk := clock.NewManual(start)
	t.Cleanup(clk.AutoAdvance(2 * time.Millisecond))
	o = highLimits(o)
	o.Clock = clk
	s := sim.New(o)
	e := &env{t: t, clk: clk, sim: s}
	e.srv = httptest.NewServer(http.StripPrefix("/base", http.HandlerFunc(e.serve)))
	t.Cleanup(e.srv.Close)
	e.baseURL = e.srv.URL + "/base"
	e.dbPath = filepath.Join(t.TempDir(), load.LiveFile)
	e.openStore()
	e.newClient()
	return e
}

func (e *env) openStore() {
	e.t.Helper()
	st, err := load.Open(context.Background(), e.dbPath, load.Options{Clock: e.clk, Logger: quietLogger()})
	if err != nil {
		e.t.Fatalf("opening the store: %v", err)
	}
	e.store = st
	e.t.Cleanup(func() { _ = st.Close() })
	if e.client != nil {
		e.crawler.Sink = st
	}
}

func (e *env) newClient(opts ...datorama.Option) {
	e.t.Helper()
	e.audit = NewAudit()
	opts = append([]datorama.Option{datorama.WithObserver(e.audit), datorama.WithClock(e.clk), datorama.WithLogger(quietLogger())}, opts...)
	c, err := datorama.New(e.baseURL, e.sim.Tokens()[0], opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.client = c
	e.crawler = &Crawler{Client: c, Sink: e.store, Audit: e.audit}
}

// crawl runs one crawl and fails the test on an error from Run.
func (e *env) crawl(o Options) Result {
	e.t.Helper()
	if o.Clock == nil {
		o.Clock = e.clk
	}
	if o.Logger == nil {
		o.Logger = quietLogger()
	}
	res, err := e.crawler.Run(context.Background(), o)
	if err != nil {
		e.t.Fatalf("crawl: %v", err)
	}
	return res
}

// statsCalls is how many stats pages the simulator served.
func (e *env) statsCalls() int {
	return e.sim.Calls().ByEndpoint["POST /v1/data-streams/api/{id}/stats"]
}

// tableDigest is the row count and a checksum of one table's live rows: each row's key
// and its raw record in canonical JSON, sorted.
type tableDigest struct {
	Rows int
	Sum  string
	keys map[string]string // key → canonical record, for reporting differences
}

func digest(rows map[string]string) tableDigest {
	keys := make([]string, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s\t%s\n", k, rows[k])
	}
	return tableDigest{Rows: len(rows), Sum: hex.EncodeToString(h.Sum(nil))[:16], keys: rows}
}

// canonical re-encodes JSON with sorted keys and exact numbers.
func canonical(t testing.TB, raw []byte) string {
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

// truthDigests computes every table's digest from the simulator's ground truth.
func truthDigests(t testing.TB, tr sim.Truth) map[string]tableDigest {
	t.Helper()
	byID := func(list []json.RawMessage) map[string]string {
		out := make(map[string]string, len(list))
		for _, raw := range list {
			var rec struct {
				ID int64 `json:"id"`
			}
			if err := json.Unmarshal(raw, &rec); err != nil {
				t.Fatal(err)
			}
			out[strconv.FormatInt(rec.ID, 10)] = canonical(t, raw)
		}
		return out
	}
	fields := func(m map[string]json.RawMessage) map[string]string {
		out := map[string]string{}
		for ws, raw := range m {
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(raw, &obj); err != nil {
				t.Fatalf("fields of workspace %s: %v", ws, err)
			}
			for name, f := range obj {
				out[ws+"/"+name] = canonical(t, f)
			}
		}
		return out
	}
	lists := func(m map[string]json.RawMessage) map[string]string {
		out := map[string]string{}
		for _, raw := range m {
			var list []json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil {
				t.Fatal(err)
			}
			for k, v := range byID(list) {
				out[k] = v
			}
		}
		return out
	}
	mappings := map[string]string{}
	for id, raw := range tr.Mappings {
		mappings[id] = canonical(t, raw)
	}
	return map[string]tableDigest{
		load.Workspaces:             digest(byID(tr.Workspaces)),
		load.Streams:                digest(byID(tr.Streams)),
		load.Jobs:                   digest(byID(tr.Jobs)),
		load.Mappings:               digest(mappings),
		load.Dimensions:             digest(fields(tr.Dimensions)),
		load.Measurements:           digest(fields(tr.Measurements)),
		load.HarmonizedDimensions:   digest(lists(tr.HarmonizedDimensions)),
		load.Patterns:               digest(lists(tr.Patterns)),
		load.CalculatedMeasurements: digest(lists(tr.CalculatedMeasurements)),
	}
}

// storeDigests computes the same digests from the store's live rows.
func storeDigests(t testing.TB, st *load.Store) map[string]tableDigest {
	t.Helper()
	keyOf := map[string]string{
		load.Workspaces: "CAST(id AS VARCHAR)", load.Streams: "CAST(id AS VARCHAR)", load.Jobs: "CAST(id AS VARCHAR)",
		load.Mappings:   "CAST(stream_id AS VARCHAR)",
		load.Dimensions: "CAST(workspace_id AS VARCHAR) || '/' || system_name", load.Measurements: "CAST(workspace_id AS VARCHAR) || '/' || system_name",
		load.HarmonizedDimensions: "CAST(id AS VARCHAR)", load.Patterns: "CAST(id AS VARCHAR)", load.CalculatedMeasurements: "CAST(id AS VARCHAR)",
	}
	out := map[string]tableDigest{}
	for table, key := range keyOf {
		rows, err := st.DB().QueryContext(context.Background(),
			"SELECT "+key+", CAST(raw AS VARCHAR) FROM "+table+" WHERE NOT is_deleted")
		if err != nil {
			t.Fatalf("reading %s: %v", table, err)
		}
		m := map[string]string{}
		for rows.Next() {
			var k, raw string
			if err := rows.Scan(&k, &raw); err != nil {
				t.Fatal(err)
			}
			if _, dup := m[k]; dup {
				t.Errorf("%s: key %s stored twice", table, k)
			}
			m[k] = canonical(t, []byte(raw))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		out[table] = digest(m)
	}
	return out
}

// assertEqualTruth compares the tables of the store (all, or those named) with the
// simulator's ground truth.
func (e *env) assertEqualTruth(tables ...string) {
	e.t.Helper()
	if len(tables) == 0 {
		tables = Entities
	}
	want := truthDigests(e.t, e.sim.Truth())
	got := storeDigests(e.t, e.store)
	for _, table := range tables {
		w, g := want[table], got[table]
		if w.Rows == g.Rows && w.Sum == g.Sum {
			continue
		}
		var diffs []string
		for k, v := range w.keys {
			if gv, ok := g.keys[k]; !ok {
				diffs = append(diffs, "missing "+k)
			} else if gv != v {
				diffs = append(diffs, "differs "+k+": store "+clip(gv)+" truth "+clip(v))
			}
		}
		for k := range g.keys {
			if _, ok := w.keys[k]; !ok {
				diffs = append(diffs, "extra "+k)
			}
		}
		slices.Sort(diffs)
		e.t.Errorf("%s: store has %d rows (sum %s), truth %d (sum %s); first differences:\n  %s",
			table, g.Rows, g.Sum, w.Rows, w.Sum, strings.Join(diffs[:min(5, len(diffs))], "\n  "))
	}
}

func clip(s string) string {
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}

// query runs a one-value query against the store.
func (e *env) queryInt(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.store.DB().QueryRowContext(context.Background(), q, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// truthJobCounts are the jobs per live stream in the truth, and the stream ids.
func truthJobCounts(t testing.TB, tr sim.Truth) (counts map[int64]int, streams []int64) {
	t.Helper()
	counts = map[int64]int{}
	for _, raw := range tr.Streams {
		var s struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		counts[s.ID] = 0
		streams = append(streams, s.ID)
	}
	for _, raw := range tr.Jobs {
		var j struct {
			DataStreamID int64 `json:"dataStreamId"`
		}
		if err := json.Unmarshal(raw, &j); err != nil {
			t.Fatal(err)
		}
		counts[j.DataStreamID]++
	}
	slices.Sort(streams)
	return counts, streams
}
