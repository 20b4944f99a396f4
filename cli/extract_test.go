package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/action"
	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// extractEnv is a simulator over HTTP under /base and a data directory, with the token
// in DATORAMA_TOKEN, for driving the real commands in-process.
type extractEnv struct {
	t       *testing.T
	sim     *sim.Sim
	base    string
	dataDir string
	token   string
	fail    func(r *http.Request) bool
}

func newExtractEnv(t *testing.T, o sim.Options) *extractEnv {
	t.Helper()
	clk := clock.NewManual(time.Date(2026, 3, 2, 23, 50, 0, 0, time.UTC))
	t.Cleanup(clk.AutoAdvance(2 * time.Millisecond))
	wireHooks.clock = clk
	t.Cleanup(func() { wireHooks.clock = nil })
	o.Clock = clk
	if o.PlatformLimit == 0 {
		o.PlatformLimit = 1 << 30
	}
	if o.DailyQuota == 0 {
		o.DailyQuota = 1 << 30
	}
	e := &extractEnv{t: t, sim: sim.New(o), dataDir: filepath.Join(t.TempDir(), "data")}
	srv := httptest.NewServer(http.StripPrefix("/base", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e.fail != nil && e.fail(r) {
			http.Error(w, `{"errors":["injected"]}`, http.StatusInternalServerError)
			return
		}
		e.sim.ServeHTTP(w, r)
	})))
	t.Cleanup(srv.Close)
	e.base = srv.URL + "/base"
	e.token = e.sim.Tokens()[0]
	t.Setenv("DATORAMA_TOKEN", e.token)
	t.Setenv("DATORAMA_TOKEN_2", "")
	t.Setenv("DATORAMA_BASE_URL", "")
	return e
}

// run runs drextract with the env's base URL and data directory.
func (e *extractEnv) run(args ...string) (code int, stdout, stderr string) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	// No --config: ./schedules.yaml does not exist here, so the defaults (the
	// environment) apply.
	args = append([]string{"--base-url", e.base, "--data-dir", e.dataDir}, args...)
	code = DoContext(context.Background(), args, strings.NewReader(""), &out, &errOut)
	if strings.Contains(out.String()+errOut.String(), e.token) {
		e.t.Errorf("drextract %v printed the token", args)
	}
	return code, out.String(), errOut.String()
}

func TestExtractAndPlanCommands(t *testing.T) {
	e := newExtractEnv(t, sim.Options{Seed: 3, Workspaces: 2, Streams: 20, JobsPerStream: 15})

	code, stdout, stderr := e.run("plan")
	if code != ExitOK || !strings.Contains(stdout, "nothing crawled yet") {
		t.Errorf("plan before any crawl: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = e.run("extract", "--log-level", "debug")
	if code != ExitOK || !strings.Contains(stdout, "run 1: ok") {
		t.Fatalf("extract: exit %d\nstdout: %s\nstderr: %.2000s", code, stdout, stderr)
	}
	// The serving copy was published and answers queries.
	srv, err := load.OpenReadOnly(context.Background(), filepath.Join(e.dataDir, load.ServingFile))
	if err != nil {
		t.Fatalf("serving copy: %v", err)
	}
	var jobs int
	if err := srv.DB().QueryRow("SELECT count(*) FROM jobs").Scan(&jobs); err != nil || jobs == 0 {
		t.Errorf("serving copy has %d jobs (%v)", jobs, err)
	}
	srv.Close()

	before := e.sim.Calls().Total
	code, plan, stderr := e.run("plan")
	if code != ExitOK || !strings.Contains(plan, "total") || !strings.Contains(plan, "quota: fits") {
		t.Errorf("plan: exit %d\n%s%s", code, plan, stderr)
	}
	code, dry, _ := e.run("extract", "--dry-run")
	if code != ExitOK || dry != plan {
		t.Errorf("extract --dry-run (exit %d) differs from plan:\n%s\nvs\n%s", code, dry, plan)
	}
	if got := e.sim.Calls().Total - before; got != 0 {
		t.Errorf("plan and --dry-run made %d API calls", got)
	}

	code, _, stderr = e.run("extract", "--entities", "jobs,bogus")
	if code != ExitUsage || !strings.Contains(stderr, `unknown entity "bogus"`) {
		t.Errorf("bad --entities: exit %d, stderr %s", code, stderr)
	}
	t.Setenv("DATORAMA_TOKEN", "")
	code, _, stderr = e.run("extract")
	if code != ExitUsage || !strings.Contains(stderr, "no API token") && !strings.Contains(stderr, "DATORAMA_TOKEN") {
		t.Errorf("no token: exit %d, stderr %s", code, stderr)
	}
}

func TestExtractExitCodes(t *testing.T) {
	t.Run("partial", func(t *testing.T) {
		e := newExtractEnv(t, sim.Options{Seed: 4, Workspaces: 2, Streams: 10, JobsPerStream: 5})
		var ws int64
		e.sim.Mutate(func(st *sim.State) { ws = st.WorkspaceIDs()[1] })
		path := "/v1/workspaces/" + strconv.FormatInt(ws, 10) + "/data-streams"
		e.fail = func(r *http.Request) bool { return r.URL.Path == path }
		code, stdout, stderr := e.run("extract")
		want := "streams of workspace " + strconv.FormatInt(ws, 10)
		if code != ExitPartial || !strings.Contains(stderr, want) || !strings.Contains(stdout, "incomplete: "+want) {
			t.Errorf("exit %d, want %d naming %q\nstdout: %s\nstderr: %.1500s", code, ExitPartial, want, stdout, stderr)
		}
	})
	t.Run("quota exhausted", func(t *testing.T) {
		e := newExtractEnv(t, sim.Options{Seed: 5, Workspaces: 2, Streams: 30, JobsPerStream: 5, DailyQuota: 40})
		code, _, stderr := e.run("extract")
		want := "quota exhausted, resets at 2026-03-03T00:00:00Z"
		if code != ExitQuotaExhausted || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, want %d with %q; stderr:\n%.1500s", code, ExitQuotaExhausted, want, stderr)
		}
	})
}

// TestPlanProbe: before the first crawl, plan --probe reads the workspace list and each
// workspace's stream list (1 + W calls, nothing else), so the plan counts the streams.
func TestPlanProbe(t *testing.T) {
	e := newExtractEnv(t, sim.Options{Seed: 4, Workspaces: 3, Streams: 18, JobsPerStream: 4})
	code, stdout, stderr := e.run("plan", "--probe")
	if code != ExitOK {
		t.Fatalf("plan --probe: exit %d\n%s%s", code, stdout, stderr)
	}
	calls := e.sim.Calls()
	if calls.Total != 1+3 {
		t.Errorf("the probe made %d API calls (%v), want 1 + W = 4", calls.Total, calls.ByEndpoint)
	}
	if !strings.Contains(stdout, "probe: 4 API calls") || !strings.Contains(stdout, "3 workspaces, 18 streams") ||
		strings.Contains(stdout, "nothing crawled yet") {
		t.Errorf("plan --probe output:\n%s", stdout)
	}
}

// TestSelectionsUseTheAPIsClock is issue 14's reproduction: the host's clock is months
// ahead of the API's, and the API's time moves a day between two crawls; failed-jobs-24h
// returns the failures of the API's last 24 hours, learned from the Date header of the
// crawl's answers, not of the host's.
func TestSelectionsUseTheAPIsClock(t *testing.T) {
	e := newExtractEnv(t, sim.Options{Seed: 8, Workspaces: 2, Streams: 40, JobsPerStream: 12})
	wireHooks.clock = clock.NewManual(time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)) // the host
	for _, step := range []string{"first crawl", "a day later"} {
		if step == "a day later" {
			e.sim.Advance(24 * time.Hour)
		}
		if code, stdout, stderr := e.run("extract"); code != ExitOK {
			t.Fatalf("%s: exit %d\n%s%s", step, code, stdout, stderr)
		}
	}
	code, stdout, stderr := e.run("select", "failed-jobs-24h", "--format", "csv")
	if code != ExitOK {
		t.Fatalf("select: exit %d\n%s%s", code, stdout, stderr)
	}
	got := strings.Count(strings.TrimSpace(stdout), "\n") // rows, the header aside

	// The oracle: the selection evaluated by the engine at the API's time and at the
	// host's, on the store the crawls wrote.
	cat, err := action.LoadCatalog("")
	if err != nil {
		t.Fatal(err)
	}
	sel, err := cat.Get("failed-jobs-24h")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := load.OpenSandbox(context.Background(), filepath.Join(e.dataDir, load.ServingFile), load.SandboxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	at := func(now time.Time) int {
		res, err := sel.Run(context.Background(), sb, nil, now, 10000)
		if err != nil {
			t.Fatal(err)
		}
		return len(res.Rows)
	}
	api, host := at(e.sim.Now()), at(wireHooks.clock.Now())
	if api == 0 || host != 0 {
		t.Fatalf("the test needs failures in the API's last day and none in the host's: %d and %d", api, host)
	}
	if got != api {
		t.Errorf("select failed-jobs-24h returned %d rows, want the %d failures of the API's last 24 hours\n%s", got, api, stdout)
	}
}

// TestQuotaStopLiftsAtTheAPIsReset is issue 14's second reproduction: a crawl stops at the
// daily quota (exit 4); once the API's day turns (the simulator advanced 24 hours), the
// next extract goes on by itself, although the host's clock says the reset is far away.
// A small quota takes several days to finish the crawl; each day's run spends calls.
func TestQuotaStopLiftsAtTheAPIsReset(t *testing.T) {
	e := newExtractEnv(t, sim.Options{Seed: 3, Workspaces: 2, Streams: 12, JobsPerStream: 10, DailyQuota: 30})
	// The host's clock is behind the API's, so on the host's clock the reset looks weeks away.
	wireHooks.clock = clock.NewManual(time.Date(2026, 1, 10, 9, 0, 0, 0, time.UTC))
	code, stdout, stderr := e.run("extract")
	if code != ExitQuotaExhausted || !strings.Contains(stderr, "quota exhausted, resets at") {
		t.Fatalf("first extract: exit %d, want %d\n%s%s", code, ExitQuotaExhausted, stdout, stderr)
	}
	for day := 1; code != ExitOK; day++ {
		if day > 5 {
			t.Fatalf("the crawl did not finish in 5 days of quota")
		}
		e.sim.Advance(24 * time.Hour)
		before := e.sim.Calls().Total
		code, stdout, stderr = e.run("extract")
		if code != ExitOK && code != ExitQuotaExhausted {
			t.Fatalf("extract on day %d: exit %d\n%s%s", day, code, stdout, stderr)
		}
		// One call would be the budget learning the API's clock; a lifted stop spends more.
		if calls := e.sim.Calls().Total - before; calls <= 1 {
			t.Fatalf("the extract of day %d made %d calls: the stop was not lifted\n%s%s", day, calls, stdout, stderr)
		}
	}
}

// TestTargetedExtract: extract --stream reads one stream (its record, its job pages and
// its mapping) and marks nothing outside it deleted; a bad id is a usage error.
func TestTargetedExtract(t *testing.T) {
	e := newExtractEnv(t, sim.Options{Seed: 6, Workspaces: 2, Streams: 10, JobsPerStream: 5})
	if code, stdout, stderr := e.run("extract"); code != ExitOK {
		t.Fatalf("extract: exit %d\n%s%s", code, stdout, stderr)
	}
	var stream struct{ ID int64 }
	if err := json.Unmarshal(e.sim.Truth().Streams[3], &stream); err != nil {
		t.Fatal(err)
	}
	before := e.sim.Calls().Total
	code, stdout, stderr := e.run("extract", "--stream", strconv.FormatInt(stream.ID, 10))
	if code != ExitOK {
		t.Fatalf("extract --stream: exit %d\n%s%s", code, stdout, stderr)
	}
	if calls := e.sim.Calls().Total - before; calls < 2 || calls > 4 {
		t.Errorf("extract --stream made %d calls, want its lookup, its job page(s) and its mapping", calls)
	}
	st, err := load.OpenReadOnly(context.Background(), filepath.Join(e.dataDir, load.ServingFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var deleted int
	if err := st.DB().QueryRow(`SELECT count(*) FROM streams WHERE is_deleted`).Scan(&deleted); err != nil || deleted != 0 {
		t.Errorf("%d streams marked deleted by a targeted crawl (%v)", deleted, err)
	}
	if code, _, stderr := e.run("extract", "--stream", "-3"); code != ExitUsage || !strings.Contains(stderr, "--stream -3") {
		t.Errorf("extract --stream -3: exit %d, want %d\n%s", code, ExitUsage, stderr)
	}
}

// TestQuotaMessageSaysWhatStopped: a crawl stopped by drextract's reserve and one stopped
// by the API's quota say which, on stderr and in runs.error.
func TestQuotaMessageSaysWhatStopped(t *testing.T) {
	for _, tc := range []struct {
		name, reserve, want string
	}{
		{"the reserve", "0.5", "drextract's reserve"},
		{"the API's quota", "0", "the API's daily quota is used up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newExtractEnv(t, sim.Options{Seed: 3, Workspaces: 2, Streams: 12, JobsPerStream: 10, DailyQuota: 30})
			cfg := filepath.Join(t.TempDir(), "schedules.yaml")
			doc := "version: 1\nbudget:\n  reserve: " + tc.reserve + "\n  daily_quota: 30\n"
			if err := os.WriteFile(cfg, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := e.run("--config", cfg, "extract")
			if code != ExitQuotaExhausted || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, want %d with %q\n%s%s", code, ExitQuotaExhausted, tc.want, stdout, stderr)
			}
			st, err := load.OpenReadOnly(context.Background(), filepath.Join(e.dataDir, load.ServingFile))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var errText string
			if err := st.DB().QueryRow(`SELECT coalesce(error, '') FROM runs WHERE status = 'quota_exhausted'`).Scan(&errText); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(errText, tc.want) {
				t.Errorf("runs.error = %q, want it to say %q", errText, tc.want)
			}
		})
	}
}
