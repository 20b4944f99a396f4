package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// checkCallsLanded opens the store of dataDir, which folds what commands that could not
// hold it journaled, and checks that api_calls holds every call the simulator saw, each
// once; that each run's calls are its rows and runs.calls; and that every action call
// that was sent joins to the attempts that carried it out. It returns the rows of no run
// and the action calls sent.
func checkCallsLanded(t *testing.T, dataDir string, s *sim.Sim) (noRun, actionCalls int) {
	t.Helper()
	ctx := context.Background()
	st, err := load.Open(ctx, filepath.Join(dataDir, load.LiveFile), load.Options{Clock: clock.Real{}, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	q := func(query string) int {
		t.Helper()
		var n int
		if err := st.DB().QueryRow(query).Scan(&n); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return n
	}
	calls := s.Calls().Total
	rows, attempts, ids := q(`SELECT count(*) FROM api_calls`), q(`SELECT count(DISTINCT attempt_id) FROM api_calls`),
		q(`SELECT count(DISTINCT id) FROM api_calls`)
	if rows != calls || attempts != calls || ids != calls {
		t.Errorf("api_calls: %d rows, %d distinct attempts, %d distinct ids; the API saw %d calls", rows, attempts, ids, calls)
	}
	if n := q(`SELECT count(*) FROM runs r WHERE r.calls IS DISTINCT FROM (SELECT count(*) FROM api_calls a WHERE a.run_id = r.id)`); n != 0 {
		t.Errorf("%d runs whose runs.calls is not their api_calls rows", n)
	}
	if n := q(`SELECT count(*) FROM action_calls c WHERE c.status = 'sent' AND NOT EXISTS (
			SELECT 1 FROM api_calls a WHERE a.action_run_id = c.action_run_id AND a.action_call_no = c.call_no
			AND a.status BETWEEN 200 AND 299 AND a.latency_ms IS NOT NULL AND a.platform_remaining IS NOT NULL)`); n != 0 {
		t.Errorf("%d sent action calls join no answered attempt with its latency and rate headers", n)
	}
	return q(`SELECT count(*) FROM api_calls WHERE run_id IS NULL`), q(`SELECT count(*) FROM action_calls WHERE status = 'sent'`)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestEveryCommandsCallsLand: extract (its page-size probes included), plan --probe,
// the single-item actions, act --csv, report and status --probe each leave one api_calls row
// per call the API saw, status --probe's (which holds no store) once the next process
// opens it. The reproduction: disable --stream X --yes, then one more extract.
func TestEveryCommandsCallsLand(t *testing.T) {
	e := newExtractEnv(t, sim.Options{Seed: 5, Workspaces: 1, Streams: 6, JobsPerStream: 10, MaxPageSize: 4})
	var ws struct{ ID int64 }
	if err := json.Unmarshal(e.sim.Truth().Workspaces[0], &ws); err != nil {
		t.Fatal(err)
	}
	cfg := writeReportConfig(t, ws.ID)
	run := func(args ...string) {
		t.Helper()
		if code, stdout, stderr := e.run(append([]string{"--config", cfg}, args...)...); code != ExitOK {
			t.Fatalf("drextract %v: exit %d\n%s\n%s", args, code, stdout, stderr)
		}
	}
	run("extract")
	var streams []int64
	for _, raw := range e.sim.Truth().Streams {
		var s struct {
			ID      int64
			Enabled bool
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		if s.Enabled {
			streams = append(streams, s.ID)
		}
	}
	if len(streams) < 2 {
		t.Fatalf("the account has %d enabled streams; the test needs 2", len(streams))
	}
	run("plan", "--probe")
	run("disable", "--stream", fmt.Sprint(streams[0]), "--yes")
	run("rerun", "--stream", fmt.Sprint(streams[1]), "--all", "--yes")
	csv := filepath.Join(t.TempDir(), "enable.csv")
	if err := os.WriteFile(csv, []byte(fmt.Sprintf("stream_id\n%d\n", streams[0])), 0o644); err != nil {
		t.Fatal(err)
	}
	run("act", "--csv", csv, "--action", "enable", "--yes")
	run("extract")
	run("report", "rows-per-stream")
	before := e.sim.Calls().Total
	run("status", "--probe")
	probes := e.sim.Calls().Total - before
	noRun, sent := checkCallsLanded(t, e.dataDir, e.sim)
	if noRun != probes || probes == 0 {
		t.Errorf("%d api_calls rows of no run; status --probe made %d calls", noRun, probes)
	}
	if sent != 3 {
		t.Errorf("%d action calls sent, want the disable, the rerun and the enable", sent)
	}
}
