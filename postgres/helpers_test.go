package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/postgres"
	"github.com/drextract/drextract/postgres/pgtest"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// logBuffer collects log output, so a test can search it for secrets.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// fixture is a store in a temporary folder, a PostgreSQL cluster with a fresh database,
// and the virtual clock the store writes with.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	clk   *clock.Manual
	store *load.Store
	pg    *pgtest.Server
	db    string
	log   *logBuffer
	conn  *pgx.Conn
}

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.StopShared()
	os.Exit(code)
}

// newFixture uses a fresh database of the package's shared cluster.
func newFixture(t *testing.T) *fixture { return fixtureOn(t, pgtest.Shared(t)) }

// newOwnFixture starts a cluster of its own, for a test that stops it.
func newOwnFixture(t *testing.T) *fixture { return fixtureOn(t, pgtest.Start(t)) }

func fixtureOn(t *testing.T, pg *pgtest.Server) *fixture {
	t.Helper()
	f := &fixture{t: t, ctx: context.Background(), clk: clock.NewManual(t0), log: &logBuffer{}}
	f.pg = pg
	f.db = f.pg.Database(t)
	f.store = f.openStore(filepath.Join(t.TempDir(), load.LiveFile))
	return f
}

func (f *fixture) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (f *fixture) openStore(path string) *load.Store {
	f.t.Helper()
	s, err := load.Open(f.ctx, path, load.Options{Clock: f.clk, Logger: f.logger()})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = s.Close() })
	return s
}

func (f *fixture) target(schema string) postgres.Target {
	return postgres.Target{DSN: f.pg.DSN(f.db), Schema: schema}
}

// pgConn is a connection to the fixture's database, for reading what was published.
func (f *fixture) pgConn() *pgx.Conn {
	f.t.Helper()
	if f.conn != nil {
		return f.conn
	}
	c, err := pgx.Connect(f.ctx, f.pg.DSN(f.db))
	if err != nil {
		f.t.Fatalf("connecting: %v\n%s", err, f.pg.Log())
	}
	f.t.Cleanup(func() { _ = c.Close(context.Background()) })
	f.conn = c
	return c
}

func (f *fixture) publish(store *load.Store, schema string, opts postgres.Options) postgres.Stats {
	f.t.Helper()
	opts.Logger = f.logger()
	st, err := postgres.Publish(f.ctx, store, f.target(schema), opts)
	if err != nil {
		f.t.Fatalf("publish: %v", err)
	}
	return st
}

// assertMirrors fails unless every published table and view in schema equals the store.
func (f *fixture) assertMirrors(store *load.Store, schema, when string) {
	f.t.Helper()
	diffs, err := pgtest.Diff(f.ctx, store, f.pgConn(), schema)
	if err != nil {
		f.t.Fatal(err)
	}
	if len(diffs) > 0 {
		f.t.Fatalf("%s: PostgreSQL differs from the store:\n  %s", when, strings.Join(diffs, "\n  "))
	}
}

func (f *fixture) pgInt(query string, args ...any) int64 {
	f.t.Helper()
	var n int64
	if err := f.pgConn().QueryRow(f.ctx, query, args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", query, err)
	}
	return n
}

func (f *fixture) exec(store *load.Store, query string, args ...any) {
	f.t.Helper()
	if _, err := store.DB().ExecContext(f.ctx, query, args...); err != nil {
		f.t.Fatalf("%s: %v", query, err)
	}
}

// account is a small account the fixture's runs write: workspaces, streams with their
// jobs and mappings, fields.
type account struct {
	workspaces []int64
	streams    map[int64][]int64 // workspace → streams
	names      map[int64]string  // stream → name
	enabled    map[int64]bool
	jobs       map[int64][]load.JobRow // stream → jobs
	nextJob    int64
}

func newAccount() *account {
	a := &account{streams: map[int64][]int64{}, names: map[int64]string{}, enabled: map[int64]bool{},
		jobs: map[int64][]load.JobRow{}, nextJob: 5000}
	for w := int64(1); w <= 2; w++ {
		a.workspaces = append(a.workspaces, w)
		for s := int64(0); s < 3; s++ {
			id := w*100 + s
			a.streams[w] = append(a.streams[w], id)
			a.names[id] = fmt.Sprintf("stream %d", id)
			a.enabled[id] = true
			for range 4 {
				a.addJob(id, "SUCCESS")
			}
		}
	}
	return a
}

func (a *account) addJob(stream int64, status string) {
	a.nextJob++
	id := a.nextJob
	start := t0.Add(-time.Duration(id%50) * time.Hour)
	log := fmt.Sprintf("[%s] Job started\n", start.Format(time.DateTime))
	if status == "SUCCESS" {
		log += fmt.Sprintf("[%s] Retrieved %d rows\n[%s] Job finished successfully\n", start.Add(time.Minute).Format(time.DateTime), id%7*100, start.Add(time.Minute).Format(time.DateTime))
	}
	raw, _ := json.Marshal(map[string]any{"id": id, "dataStreamId": stream, "status": status,
		"dataStartDate": start.Format(time.DateOnly), "dataEndDate": start.Format(time.DateOnly),
		"startExecutionTime": start.UnixMilli(), "endExecutionTime": start.Add(time.Minute).UnixMilli(), "processLog": log})
	a.jobs[stream] = append(a.jobs[stream], load.JobRow{ID: id, StreamID: stream, WorkspaceID: stream / 100, Status: status,
		DataStartDate: start, DataEndDate: start, StartExecutionTime: start, EndExecutionTime: start.Add(time.Minute),
		UserID: 7, Raw: raw})
}

func (a *account) setStatus(stream int64, i int, status string) {
	j := &a.jobs[stream][i]
	var m map[string]any
	_ = json.Unmarshal(j.Raw, &m)
	m["status"] = status
	j.Status = status
	j.Raw, _ = json.Marshal(m)
}

// crawl writes the whole account as one run would, and returns the run's id.
func (f *fixture) crawl(store *load.Store, a *account) int64 {
	f.t.Helper()
	ctx := f.ctx
	f.clk.Advance(time.Hour)
	obs := f.clk.Now()
	run, err := store.StartRun(ctx, load.RunStart{Schedule: "test", Kind: "extract"})
	if err != nil {
		f.t.Fatal(err)
	}
	rows := map[string]int{}
	write := func(b load.Batch) {
		f.t.Helper()
		b.ObservedAt = obs
		if err := store.Write(ctx, run, b); err != nil {
			f.t.Fatal(err)
		}
		rows[b.Entity] += b.Rows()
	}
	var ws []load.WorkspaceRow
	for _, w := range a.workspaces {
		ws = append(ws, load.WorkspaceRow{ID: w, Name: fmt.Sprintf("workspace %d", w), AccountID: 9,
			Raw: json.RawMessage(fmt.Sprintf(`{"id":%d,"name":"workspace %d"}`, w, w))})
	}
	write(load.Batch{Entity: load.Workspaces, Complete: true, Workspaces: ws})
	for _, w := range a.workspaces {
		var ss []load.StreamRow
		for _, s := range a.streams[w] {
			raw, _ := json.Marshal(map[string]any{"id": s, "name": a.names[s], "workspaceId": w, "enabled": a.enabled[s],
				"dataSourceName": "Facebook-Ads", "sourceDisplayName": "Facebook Ads"})
			ss = append(ss, load.StreamRow{ID: s, WorkspaceID: w, Name: a.names[s], DataSourceName: "Facebook-Ads",
				Enabled: a.enabled[s], LastUpdate: obs, Raw: raw})
		}
		write(load.Batch{Entity: load.Streams, ParentID: w, Complete: true, Streams: ss})
		write(load.Batch{Entity: load.Dimensions, ParentID: w, Complete: true, Fields: []load.FieldRow{
			{WorkspaceID: w, SystemName: "dim_a", DisplayName: "Dim A", Raw: json.RawMessage(`{"systemName":"dim_a"}`)}}})
		for _, s := range a.streams[w] {
			write(load.Batch{Entity: load.Jobs, ParentID: s, Complete: true, Jobs: a.jobs[s]})
			write(load.Batch{Entity: load.Mappings, ParentID: s, Complete: true, Mappings: []load.MappingRow{
				{StreamID: s, WorkspaceID: w, Raw: json.RawMessage(fmt.Sprintf(`{"fields":["%s"]}`, a.names[s]))}}})
		}
	}
	calls := []load.APICall{{Time: obs, Fingerprint: "tok_0123abcd", Method: "GET", PathTemplate: "/v1/workspaces",
		Status: 200, Latency: 20 * time.Millisecond, Attempt: 1, PlatformRemaining: 59, QueryRemaining: -1, DailyRemaining: 19999}}
	if err := store.RecordCalls(ctx, run, calls); err != nil {
		f.t.Fatal(err)
	}
	if err := store.FinishRun(ctx, run, load.RunEnd{Status: load.RunOK, Calls: 1, Rows: rows}); err != nil {
		f.t.Fatal(err)
	}
	return run
}
