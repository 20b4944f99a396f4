package extract

import (
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// Environment of the crawl child that TestKillAndResume and BenchmarkCrawl start.
const (
	childEnv         = "DREXTRACT_CRAWL_CHILD"
	childURLEnv      = "DREXTRACT_CRAWL_URL"
	childTokenEnv    = "DREXTRACT_CRAWL_TOKEN"
	childDBEnv       = "DREXTRACT_CRAWL_DB"
	childEntitiesEnv = "DREXTRACT_CRAWL_ENTITIES"
	// childDuckDBMemoryEnv, when set, caps DuckDB's buffer memory (SET memory_limit) in the
	// child, to tell the crawler's footprint from DuckDB's cache.
	childDuckDBMemoryEnv = "DREXTRACT_CRAWL_DUCKDB_MEMORY"
	// childNowEnv is the child's clock (RFC 3339; default testStart), so a child crawls at
	// the time the parent's simulator has reached.
	childNowEnv = "DREXTRACT_CRAWL_NOW"
	// childAnyStatusEnv, when set, makes a child whose crawl ends other than ok (the
	// quota, say) exit 0 all the same: a test that kills it takes whatever came first.
	childAnyStatusEnv = "DREXTRACT_CRAWL_ANY_STATUS"
)

// childCommand runs TestCrawlChild in a new process of the test binary, crawling the
// simulator at e.baseURL into e.dbPath.
func childCommand(e *env, entities string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrawlChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childEnv+"=1", childURLEnv+"="+e.baseURL,
		childTokenEnv+"="+e.sim.Tokens()[0], childDBEnv+"="+e.dbPath, childEntitiesEnv+"="+entities)
	return cmd
}

// TestCrawlChild is a crawl in a process of its own: the test binary runs it as a child,
// against the parent's simulator, on the parent's store file, to be killed or measured.
func TestCrawlChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("the child of TestKillAndResume and BenchmarkCrawl")
	}
	ctx := context.Background()
	start := testStart
	if v := os.Getenv(childNowEnv); v != "" {
		var err error
		if start, err = time.Parse(time.RFC3339Nano, v); err != nil {
			t.Fatalf("%s: %v", childNowEnv, err)
		}
	}
	clk := clock.NewManual(start)
	defer clk.AutoAdvance(2 * time.Millisecond)()
	st, err := load.Open(ctx, os.Getenv(childDBEnv), load.Options{Clock: clk, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Registered after the defers above so it reports once the store is closed.
	t.Cleanup(watchChildMemory(st.DB()))
	if v := os.Getenv(childDuckDBMemoryEnv); v != "" {
		if _, err := st.DB().Exec("SET memory_limit = '" + v + "'"); err != nil {
			t.Fatal(err)
		}
	}
	audit := NewAudit()
	c, err := datorama.New(os.Getenv(childURLEnv), os.Getenv(childTokenEnv),
		datorama.WithObserver(audit), datorama.WithClock(clk), datorama.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	cr := &Crawler{Client: c, Sink: st, Audit: audit}
	var ents []string
	if v := os.Getenv(childEntitiesEnv); v != "" {
		ents = []string{v}
	}
	res, err := cr.Run(ctx, Options{Clock: clk, Logger: quietLogger(), Entities: ents})
	if os.Getenv(childAnyStatusEnv) != "" && err == nil {
		t.Logf("crawl: %s %v", res.Status, res.Incomplete)
		return
	}
	if err != nil || res.Status != load.RunOK {
		t.Fatalf("crawl: %s %v %v", res.Status, res.Err, err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("go memory: sys %d MB, heap in use %d MB, total allocated %d MB", ms.Sys>>20, ms.HeapInuse>>20, ms.TotalAlloc>>20)
}

func TestKillAndResume(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sim.Options{Seed: 51, Workspaces: 3, Streams: 50, JobsPerStream: 30, MaxPageSize: 10})
	e.store.Close() // the children own the file until the last kill

	rng := rand.New(rand.NewPCG(51, 7))
	const kills = 3
	for k := range kills {
		// Kill after the n-th answered request, a few milliseconds later: sometimes while
		// the child writes, sometimes while it waits for the next answer.
		n := 5 + rng.IntN(60) // within what every child has left to do
		delay := time.Duration(rng.IntN(15)) * time.Millisecond
		cmd := childCommand(e, "")
		var once sync.Once
		var proc *os.Process // set under e.mu once the child started
		seen := 0
		e.mu.Lock()
		e.after = func() {
			e.mu.Lock()
			seen++
			hit, p := seen == n, proc
			e.mu.Unlock()
			if hit && p != nil {
				once.Do(func() {
					time.AfterFunc(delay, func() { _ = p.Signal(syscall.SIGKILL) })
				})
			}
		}
		e.mu.Unlock()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		e.mu.Lock()
		proc = cmd.Process
		e.mu.Unlock()
		err := cmd.Wait()
		e.mu.Lock()
		e.after = nil
		e.mu.Unlock()
		ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("kill %d (after request %d): the child was not killed: %v", k+1, n, err)
		}
		t.Logf("kill %d: after request %d + %v", k+1, n, delay)
	}

	e.openStore()
	res := e.crawl(Options{})
	if res.Status != load.RunOK {
		t.Fatalf("resumed crawl: %s %v %v", res.Status, res.Incomplete, res.Err)
	}
	e.assertEqualTruth()
	for _, table := range []string{"jobs", "streams", "workspaces"} {
		if got := e.queryInt("SELECT count(*) - count(DISTINCT id) FROM " + table); got != 0 {
			t.Errorf("%s: %d duplicate rows", table, got)
		}
	}
	if got := e.queryInt("SELECT count(*) - count(DISTINCT stream_id) FROM mappings"); got != 0 {
		t.Errorf("mappings: %d duplicate rows", got)
	}
	// Every page with jobs was served once, but for at most one page per kill.
	repeats := 0
	for key, n := range e.pagesServed() {
		if n > 1 {
			repeats += n - 1
			t.Logf("served %d times: %s", n, key)
		}
	}
	if repeats > kills {
		t.Errorf("%d stats pages were read again after %d kills; at most one per kill", repeats, kills)
	}
	if got := e.queryInt(`SELECT count(*) FROM runs WHERE status = 'failed' AND error LIKE 'abandoned%'`); got != kills {
		t.Errorf("%d runs marked abandoned, want %d", got, kills)
	}
}
