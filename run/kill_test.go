package run

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
	"github.com/drextract/drextract/sim"
)

// Environment of the crawl child TestKillKeepsEveryAnsweredCall starts.
const (
	killChildEnv   = "DREXTRACT_RUN_KILL_CHILD"
	killURLEnv     = "DREXTRACT_RUN_KILL_URL"
	killTokenEnv   = "DREXTRACT_RUN_KILL_TOKEN"
	killDataDirEnv = "DREXTRACT_RUN_KILL_DATA_DIR"
	killWorkersEnv = "DREXTRACT_RUN_KILL_WORKERS"
	// killSeedEnv, when set, replaces the seed that picks where each kill falls.
	killSeedEnv = "DREXTRACT_KILL_SEED"
)

// unlimitedRunner is a Runner as the CLI builds it for a crawl, on a data directory and
// a base URL, with limits no crawl reaches.
func unlimitedRunner(baseURL, token, dataDir string) *Runner {
	const unlimited = 1_000_000
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Default()
	cfg.API.BaseURL, cfg.Store.DataDir = baseURL, dataDir
	mc := clock.NewManual(t0)
	pool := ratelimit.NewPool([]string{token}, ratelimit.Config{PlatformLimit: unlimited, QueryLimit: unlimited,
		DailyQuota: unlimited, Reserve: -1, Clock: mc, Logger: log})
	return &Runner{Config: cfg, Clock: mc, Log: log, Pool: pool, Schedule: "test"}
}

// TestKillChild is a crawl through the run layer in a process of its own, for
// TestKillKeepsEveryAnsweredCall to kill.
func TestKillChild(t *testing.T) {
	if os.Getenv(killChildEnv) == "" {
		t.Skip("the child of TestKillKeepsEveryAnsweredCall")
	}
	r := unlimitedRunner(os.Getenv(killURLEnv), os.Getenv(killTokenEnv), os.Getenv(killDataDirEnv))
	ctx := context.Background()
	st, err := load.Open(ctx, r.Config.Store.DuckDBPath(), load.Options{Clock: r.Clock, Logger: r.Log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	workers, err := strconv.Atoi(os.Getenv(killWorkersEnv))
	if err != nil {
		t.Fatal(err)
	}
	res := r.Extract(ctx, st, ExtractOptions{Workers: workers})
	t.Fatalf("the crawl ended without being killed: %s %v", res.Status, res.Err)
}

// TestKillKeepsEveryAnsweredCall: a crawl killed (SIGKILL) N times, each time around an
// answer of the API, loses at most the attempts in flight per kill from api_calls; the
// store's next open folds what each killed process journaled, once, and gives each
// abandoned run its calls. With one worker the one attempt in flight is known, so the
// count is exact; with the commands' default, up to one attempt per worker is in flight.
func TestKillKeepsEveryAnsweredCall(t *testing.T) {
	for _, workers := range []int{1, DefaultWorkers} {
		t.Run(strconv.Itoa(workers)+"-workers", func(t *testing.T) { killKeepsEveryAnsweredCall(t, workers) })
	}
}

func killKeepsEveryAnsweredCall(t *testing.T, workers int) {
	seed := uint64(12)
	if v := os.Getenv(killSeedEnv); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", killSeedEnv, v, err)
		}
		seed = s
	}
	t.Logf("seed %d (%s replays another)", seed, killSeedEnv)
	rng := rand.New(rand.NewPCG(seed, 7))
	s := sim.New(sim.Options{Seed: int64(seed), Workspaces: 3, Streams: 40, JobsPerStream: 30, MaxPageSize: 10,
		PlatformLimit: 1_000_000, QueryLimit: 1_000_000, DailyQuota: 1_000_000})

	// The child the handler kills, and when: before the n-th request reaches the API
	// (the attempt in flight is no call), or after the API answered it but before the
	// answer leaves (the attempt in flight is a call the child never saw).
	var mu sync.Mutex
	var (
		seen       int
		killAt     int
		afterReply bool
		child      *os.Process
		dead       chan struct{}
	)
	srv := httptest.NewServer(http.StripPrefix("/base", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen++
		hit, p, gone, after := seen == killAt, child, dead, afterReply
		mu.Unlock()
		if !hit || p == nil {
			s.ServeHTTP(w, r)
			return
		}
		if after {
			s.ServeHTTP(httptest.NewRecorder(), r)
		}
		_ = p.Signal(syscall.SIGKILL)
		<-gone // no answer reaches the child before it is dead
	})))
	defer srv.Close()
	dataDir := t.TempDir()
	r := unlimitedRunner(srv.URL+"/base", s.Tokens()[0], dataDir)

	const kills = 4
	inFlight := 0 // attempts the API answered that no child saw
	for k := range kills {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKillChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), killChildEnv+"=1", killURLEnv+"="+srv.URL+"/base",
			killTokenEnv+"="+s.Tokens()[0], killDataDirEnv+"="+dataDir, killWorkersEnv+"="+strconv.Itoa(workers))
		out, err := os.Create(filepath.Join(t.TempDir(), "child.log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = out, out
		mu.Lock()
		seen, killAt, afterReply, dead = 0, 5+rng.IntN(40), rng.IntN(2) == 1, make(chan struct{})
		n, after := killAt, afterReply
		mu.Unlock()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		child = cmd.Process
		mu.Unlock()
		err = cmd.Wait()
		mu.Lock()
		child = nil
		close(dead)
		mu.Unlock()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			log, _ := os.ReadFile(out.Name())
			t.Fatalf("kill %d (at request %d): the child was not killed: %v\n%s", k+1, n, err, log)
		}
		if after {
			inFlight++
		}
		t.Logf("kill %d: at request %d, after the API answered it: %v", k+1, n, after)
	}

	ctx := context.Background()
	st, err := load.Open(ctx, r.Config.Store.DuckDBPath(), load.Options{Clock: r.Clock, Logger: r.Log})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e := &env{t: t, store: st}
	calls := s.Calls().Total
	rows, attempts := e.count(`SELECT count(*) FROM api_calls`), e.count(`SELECT count(DISTINCT attempt_id) FROM api_calls`)
	// The bound the issue asks for is calls − (attempts in flight per kill) × kills; with
	// one worker and the kill placed, it is exact.
	exact := workers == 1
	if rows > calls || rows < calls-workers*kills || (exact && rows != calls-inFlight) || attempts != rows {
		t.Errorf("after %d kills with %d workers: api_calls has %d rows (%d distinct attempts); the API saw %d calls, %d of them answered to a dead child",
			kills, workers, rows, attempts, calls, inFlight)
	}
	abandoned, err := st.DB().Query(`SELECT r.id, r.calls, (SELECT count(*) FROM api_calls a WHERE a.run_id = r.id)
		FROM runs r WHERE r.status = 'failed' AND r.error LIKE 'abandoned%' ORDER BY r.id`)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for abandoned.Next() {
		var id int64
		var recorded *int64
		var stored int64
		if err := abandoned.Scan(&id, &recorded, &stored); err != nil {
			t.Fatal(err)
		}
		n++
		if recorded == nil || *recorded != stored || stored == 0 {
			t.Errorf("abandoned run %d: runs.calls %v, api_calls rows %d", id, recorded, stored)
		}
	}
	abandoned.Close()
	if n != kills {
		t.Errorf("%d abandoned runs, want %d", n, kills)
	}

	// The crawl resumes to the end; every call of it lands too.
	before := s.Calls().Total
	res := r.Extract(ctx, st, ExtractOptions{Workers: workers})
	if res.Status != load.RunOK {
		t.Fatalf("resumed crawl: %s %v", res.Status, res.Err)
	}
	e.checkRunCalls("resumed crawl", res, s.Calls().Total-before)
	if got, want := e.count(`SELECT count(*) FROM api_calls`), rows+s.Calls().Total-before; got != want {
		t.Errorf("api_calls has %d rows after the resumed crawl, want %d (%d before it, and its %d calls)", got, want, rows, s.Calls().Total-before)
	}
}
