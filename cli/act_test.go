package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// actEnv drives the action commands in-process against a simulator over HTTP, with a
// data directory and a configuration file naming a selections folder.
type actEnv struct {
	t       *testing.T
	sim     *sim.Sim
	base    string
	dir     string
	dataDir string
	config  string
	token   string
}

func newActEnv(t *testing.T, o sim.Options) *actEnv {
	t.Helper()
	clk := clock.NewManual(time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC))
	t.Cleanup(clk.AutoAdvance(2 * time.Millisecond))
	wireHooks.clock = clk
	t.Cleanup(func() { wireHooks.clock = nil })
	o.Clock, o.PlatformLimit, o.DailyQuota = clk, 1<<30, 1<<30
	s := sim.New(o)
	srv := httptest.NewServer(http.StripPrefix("/base", s))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	e := &actEnv{t: t, sim: s, base: srv.URL + "/base", dir: dir, dataDir: filepath.Join(dir, "data"),
		config: filepath.Join(dir, "schedules.yaml"), token: s.Tokens()[0]}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "selections"), 0o755))
	must(os.WriteFile(e.config, []byte(fmt.Sprintf("version: 1\napi:\n  base_url: %s\n  tokens:\n    - env: DATORAMA_TOKEN\nstore:\n  data_dir: %s\nselections_dir: %s\n",
		e.base, e.dataDir, filepath.Join(dir, "selections"))), 0o600))
	t.Setenv("DATORAMA_TOKEN", e.token)
	return e
}

func (e *actEnv) run(args ...string) (int, string, string) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	args = append([]string{"--config", e.config}, args...)
	code := DoContext(context.Background(), args, strings.NewReader(""), &out, &errOut)
	if strings.Contains(out.String()+errOut.String(), e.token) {
		e.t.Errorf("drextract %v printed the token", args)
	}
	return code, out.String(), errOut.String()
}

func (e *actEnv) mutating() int {
	n := 0
	for k, v := range e.sim.Calls().ByEndpoint {
		if !strings.HasPrefix(k, "GET ") && !strings.HasSuffix(k, "/stats") {
			n += v
		}
	}
	return n
}

func (e *actEnv) writeFile(name, text string) string {
	e.t.Helper()
	p := filepath.Join(e.dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *actEnv) truthStreams() map[int64]datorama.Stream {
	out := map[int64]datorama.Stream{}
	for _, raw := range e.sim.Truth().Streams {
		var s datorama.Stream
		if err := json.Unmarshal(raw, &s); err != nil {
			e.t.Fatal(err)
		}
		out[s.ID] = s
	}
	return out
}

// csvColumn returns the values of one column of CSV output with a header line.
func csvColumn(t *testing.T, out, col string) []string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("not CSV with a header (%v):\n%s", err, out)
	}
	i := slices.Index(recs[0], col)
	if i < 0 {
		t.Fatalf("no column %q in %v", col, recs[0])
	}
	var vals []string
	for _, r := range recs[1:] {
		vals = append(vals, r[i])
	}
	return vals
}

func TestActionCommands(t *testing.T) {
	e := newActEnv(t, sim.Options{Seed: 11, Workspaces: 2, Streams: 12, JobsPerStream: 6})
	var enabled []int64
	for id, s := range e.truthStreams() {
		if s.Enabled {
			enabled = append(enabled, id)
		}
	}
	if len(enabled) < 5 {
		t.Fatalf("%d enabled streams", len(enabled))
	}
	slices.Sort(enabled)
	failing := enabled[len(enabled)-2:]
	e.sim.Mutate(func(st *sim.State) {
		for _, id := range failing {
			st.SetStreamOutcome(id, "fail")
			st.RunNow(id)
		}
	})
	e.sim.Advance(4 * time.Hour)
	if code, out, errOut := e.run("extract", "--full"); code != ExitOK {
		t.Fatalf("extract: %d\n%s%s", code, out, errOut)
	}

	// select lists the selections, then shows rows.
	code, out, _ := e.run("select")
	for _, name := range []string{"failed-jobs-24h", "failed-streams", "stale-streams-7d", "names-not-matching"} {
		if code != ExitOK || !strings.Contains(out, name) {
			t.Errorf("select (list): exit %d, %q missing:\n%s", code, name, out)
		}
	}
	code, out, errOut := e.run("select", "failed-jobs-24h", "--format", "csv")
	if code != ExitOK || !slices.Contains(csvColumn(t, out, "stream_id"), fmt.Sprint(failing[0])) && !slices.Contains(csvColumn(t, out, "stream_id"), fmt.Sprint(failing[1])) {
		t.Fatalf("select failed-jobs-24h: exit %d, no failing stream in its stream_id column\n%s%s", code, out, errOut)
	}
	code, out, _ = e.run("select", "names-not-matching", "--param", "pattern=^NOMATCH$", "--format", "csv")
	if rows, err := csv.NewReader(strings.NewReader(out)).ReadAll(); code != ExitOK || err != nil || len(rows) != 13 {
		t.Errorf("select names-not-matching as CSV: exit %d, %d lines (%v)", code, len(rows), err)
	}
	if code, _, errOut = e.run("select", "names-not-matching"); code != ExitUsage || !strings.Contains(errOut, `needs parameter "pattern"`) {
		t.Errorf("missing parameter: exit %d %s", code, errOut)
	}
	e.writeFile("selections/wipe.sql", "-- action: rerun-all\nDELETE FROM streams")
	if code, _, errOut = e.run("select", "wipe"); code != ExitUsage || !strings.Contains(errOut, "DELETE") {
		t.Errorf("DELETE selection: exit %d %s", code, errOut)
	}
	os.Remove(filepath.Join(e.dir, "selections/wipe.sql"))

	// act without --yes: the plan, nothing sent.
	mut := e.mutating()
	code, out, errOut = e.run("act", "failed-jobs-24h")
	if code != ExitOK || !strings.Contains(out, "Plan: rerun, from selection failed-jobs-24h") || !strings.Contains(out, "Dry run: nothing was sent") {
		t.Fatalf("act dry run: exit %d\n%s%s", code, out, errOut)
	}
	if e.mutating() != mut {
		t.Fatal("the dry run sent calls")
	}
	code, out, errOut = e.run("act", "failed-jobs-24h", "--yes")
	if code != ExitOK || !strings.Contains(out, "Action run 1: ok") {
		t.Fatalf("act --yes: exit %d\n%s%s", code, out, errOut)
	}
	if got := e.sim.Calls().ByEndpoint["POST /v1/data-streams/api/{id}/rerun"]; got == 0 {
		t.Error("no rerun call reached the simulator")
	}
	code, out, _ = e.run("act", "failed-jobs-24h", "--yes")
	if code != ExitOK || !strings.Contains(out, "cooldown") {
		t.Errorf("second act within the cooldown: exit %d\n%s", code, out)
	}

	// CSV input: a bad line is refused naming it; a good file goes through.
	bad := e.writeFile("bad.csv", fmt.Sprintf("stream_id,name\n%d,Good Name\n%d,\n", enabled[1], enabled[2]))
	mut = e.mutating()
	if code, _, errOut = e.run("act", "--csv", bad, "--action", "rename", "--yes"); code != ExitUsage || !strings.Contains(errOut, bad+":3: name: empty name") {
		t.Errorf("bad CSV: exit %d %s", code, errOut)
	}
	unknown := e.writeFile("unknown.csv", "stream_id,name\n999,Nobody\n")
	if code, _, errOut = e.run("rename", "--csv", unknown, "--yes"); code != ExitUsage || !strings.Contains(errOut, unknown+":2: stream 999 is not in the store") {
		t.Errorf("unknown stream: exit %d %s", code, errOut)
	}
	if e.mutating() != mut {
		t.Fatal("a refused CSV sent calls")
	}
	good := e.writeFile("good.csv", fmt.Sprintf("stream_id,name\n%d,CLI Renamed A\n%d,CLI Renamed B\n", enabled[1], enabled[2]))
	if code, out, errOut = e.run("rename", "--csv", good, "--yes"); code != ExitOK {
		t.Fatalf("rename --csv: exit %d\n%s%s", code, out, errOut)
	}

	// The single-item commands, each through the planner: a dry run, then --yes.
	jobOf := func(sid int64) int64 {
		for _, raw := range e.sim.Truth().Jobs {
			var j datorama.Job
			json.Unmarshal(raw, &j)
			if int64(j.DataStreamID) == sid && j.Status == datorama.StatusSuccess {
				return j.ID
			}
		}
		t.Fatalf("no successful job on stream %d", sid)
		return 0
	}
	s3 := fmt.Sprint(enabled[3])
	j3 := fmt.Sprint(jobOf(enabled[3]))
	file := filepath.Join(e.dir, "raw.out")
	commands := [][]string{
		{"rerun", "--stream", s3, "--job", j3},
		{"rerun", "--stream", s3, "--all"},
		{"process", "--stream", s3, "--from", "2026-01-01", "--to", "2026-01-12"},
		{"patch", "--stream", s3, "--set", "customAttribute3=from-cli"},
		{"patch", "--stream", s3, "--set", "cliNote=1", "--mapping"},
		{"patch", "--stream", s3, "--set", "customAttribute3=put-cli", "--force-put"},
		{"disable", "--stream", s3},
		{"enable", "--stream", s3},
		{"download", "--stream", s3, "--job", j3, "--out", file},
	}
	for _, args := range commands {
		mut := e.mutating()
		code, out, errOut := e.run(args...)
		if code != ExitOK || !strings.Contains(out, "Dry run: nothing was sent") || e.mutating() != mut {
			t.Errorf("%v dry run: exit %d\n%s%s", args, code, out, errOut)
		}
		code, out, errOut = e.run(append(args, "--yes")...)
		if code != ExitOK || !strings.Contains(out, ": ok —") {
			t.Errorf("%v --yes: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	if b, err := os.ReadFile(file); err != nil || len(b) == 0 {
		t.Errorf("download wrote nothing: %v", err)
	}
	st := e.truthStreams()[enabled[3]]
	if !st.Enabled || !strings.Contains(string(st.Raw), `"customAttribute3":"put-cli"`) {
		t.Errorf("stream after the commands: %s", st.Raw)
	}
	if code, _, errOut = e.run("patch", "--stream", s3, "--set", "x"); code != ExitUsage || !strings.Contains(errOut, "FIELD=VALUE") {
		t.Errorf("bad --set: exit %d %s", code, errOut)
	}

	// The log, after a crawl filled in outcomes.
	if code, out, errOut = e.run("extract"); code != ExitOK {
		t.Fatalf("extract: %d %s%s", code, out, errOut)
	}
	if code, out, _ = e.run("actions", "follow-up"); code != ExitOK || !strings.Contains(out, "outcomes:") {
		t.Errorf("actions follow-up: exit %d %s", code, out)
	}
	code, out, _ = e.run("actions", "log", "--format", "csv")
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if code != ExitOK || err != nil || len(recs) < 10 || recs[0][0] != "run_id" {
		t.Fatalf("actions log csv: exit %d, %d records, %v\n%s", code, len(recs), err, out)
	}
	var renamed int
	for _, r := range recs[1:] {
		if r[3] == "rename" && r[20] == "succeeded" {
			renamed++
		}
	}
	if renamed != 2 {
		t.Errorf("%d renames with outcome succeeded in the log, want 2:\n%s", renamed, out)
	}
	code, out, _ = e.run("actions", "log", "--format", "json", "--run", "1")
	var items []map[string]any
	if err := json.Unmarshal([]byte(out), &items); code != ExitOK || err != nil || len(items) == 0 || items[0]["run_id"] != float64(1) {
		t.Errorf("actions log json: exit %d, %v, %.300s", code, err, out)
	}
	if code, out, _ = e.run("actions", "runs"); code != ExitOK || !strings.Contains(out, "failed-jobs-24h") {
		t.Errorf("actions runs: exit %d\n%s", code, out)
	}
	if code, out, _ = e.run("actions", "reconcile"); code != ExitOK || !strings.Contains(out, "nothing to reconcile") {
		t.Errorf("actions reconcile: exit %d\n%s", code, out)
	}
	srv, err := load.OpenReadOnly(context.Background(), filepath.Join(e.dataDir, load.ServingFile))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var n int
	if err := srv.DB().QueryRow(`SELECT count(*) FROM action_items`).Scan(&n); err != nil || n == 0 {
		t.Errorf("the serving copy has %d action items (%v)", n, err)
	}
}
