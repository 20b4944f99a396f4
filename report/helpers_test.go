package report

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// testStart is the virtual time every test account is generated at (a Monday).
var testStart = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// env is a simulator over real HTTP under /base, a real DuckDB store in a temporary
// directory, and a Runner wired to both.
type env struct {
	t       testing.TB
	clk     *clock.Manual
	sim     *sim.Sim
	baseURL string
	store   *load.Store
	client  *datorama.Client
	runner  *Runner
}

func quietLogger() *slog.Logger {
	if os.Getenv("DREXTRACT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newEnv(t testing.TB, o sim.Options, clientOpts ...datorama.Option) *env {
	t.Helper()
	clk := clock.NewManual(testStart)
	t.Cleanup(clk.AutoAdvance(2 * time.Millisecond))
	o.Clock = clk
	if o.Seed == 0 {
		o.Seed = 7
	}
	s := sim.New(o)
	srv := httptest.NewServer(http.StripPrefix("/base", s))
	t.Cleanup(srv.Close)
	e := &env{t: t, clk: clk, sim: s, baseURL: srv.URL + "/base"}
	st, err := load.Open(context.Background(), filepath.Join(t.TempDir(), load.LiveFile), load.Options{Clock: clk, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("opening the store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	e.store = st
	opts := append([]datorama.Option{datorama.WithClock(clk), datorama.WithLogger(quietLogger())}, clientOpts...)
	c, err := datorama.New(e.baseURL, s.Tokens()[0], opts...)
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	e.runner = &Runner{Client: c, Store: st, Clock: clk, Logger: quietLogger()}
	return e
}

// workspaces returns the simulator's workspace ids, ascending.
func (e *env) workspaces() []int64 {
	e.t.Helper()
	var ids []int64
	for _, raw := range e.sim.Truth().Workspaces {
		var w struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(raw, &w); err != nil {
			e.t.Fatal(err)
		}
		ids = append(ids, w.ID)
	}
	return ids
}

// truthRow is one expected answer row: the stream's name and the day, with its totals.
type truthRow struct {
	Stream, Date string
	Rows         int64
	CostCents    int64
}

// truthByStreamDay sums the simulator's ground truth by stream name and day, over
// [from, to] of one workspace, independently of the simulator's query engine.
func (e *env) truthByStreamDay(ws int64, from, to string) map[[2]string]truthRow {
	e.t.Helper()
	tr := e.sim.Truth()
	names := map[int64]string{}
	for _, raw := range tr.Streams {
		var s struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			e.t.Fatal(err)
		}
		names[s.ID] = s.Name
	}
	out := map[[2]string]truthRow{}
	for _, d := range tr.DailyRows {
		if d.WorkspaceID != ws || d.Date < from || d.Date > to {
			continue
		}
		k := [2]string{names[d.DataStreamID], d.Date}
		r := out[k]
		r.Stream, r.Date = k[0], k[1]
		r.Rows += d.Rows
		r.CostCents += d.CostCents
		out[k] = r
	}
	return out
}

// rowsPerStream is the definition of the acceptance test: rows per data stream per day,
// last 7 days.
func rowsPerStream(ws int64) config.Report {
	return config.Report{
		Name: "rows-per-stream", Workspace: ws, DateRange: config.DateRange{LastDays: 7}, Timezone: "UTC",
		Dimensions: []string{"Data Stream", "Date"}, Measurements: []string{"Data Stream Total Rows", "Cost"},
		Table: "report_rows_per_stream", Mode: config.ModeReplace,
	}
}

func count(t testing.TB, db *sql.DB, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// columnTypes returns a table's column → DuckDB type.
func columnTypes(t testing.TB, db *sql.DB, table string) map[string]string {
	t.Helper()
	rows, err := db.Query(`SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, ty string
		if err := rows.Scan(&n, &ty); err != nil {
			t.Fatal(err)
		}
		out[n] = ty
	}
	return out
}

func mustContain(t testing.TB, s string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(s, p) {
			t.Errorf("%q does not contain %q", s, p)
		}
	}
}
