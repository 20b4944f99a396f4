package extract

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// TestStopsAndResumesEqualTruth is the property behind every way a crawl stops: whatever
// sequence of quota stops, kills and targeted crawls it meets, at whatever call, with the
// account moving on in between (jobs appear, run and finish; streams are renamed,
// remapped, added and deleted), the first run after them that ends ok leaves every
// table equal to the API.
func TestStopsAndResumesEqualTruth(t *testing.T) {
	t.Parallel()
	seeds := 12
	if testing.Short() || raceDetector {
		seeds = 3
	}
	for i := range seeds {
		seed := uint64(1200 + i)
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) { stopsAndResumes(t, seed) })
	}
}

// stopQuota is the simulator's daily quota in TestStopsAndResumesEqualTruth: room for a
// day's crawls; a quota stop burns it down first (leaveQuota).
const stopQuota = 3000

func stopsAndResumes(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 12))
	o := sim.Options{Seed: int64(seed), Workspaces: 2, Streams: 10 + rng.IntN(14), JobsPerStream: 5 + rng.IntN(20),
		MaxPageSize: []int{4, 10, 1000}[rng.IntN(3)], StatsOrder: []string{"asc", "desc"}[rng.IntN(2)], DailyQuota: stopQuota}
	e := newEnv(t, o)
	t.Logf("account: %d streams, ~%d jobs each, page cap %d, %s", o.Streams, o.JobsPerStream, o.MaxPageSize, o.StatsOrder)

	for k := range 3 + rng.IntN(4) {
		n := 1 + rng.IntN(e.nextCrawlCalls())
		if rng.IntN(2) == 0 {
			// Within the first pages, past the lists: where first pages wait for the
			// cap probe and streams are read part-way.
			n = 1 + 6*o.Workspaces + rng.IntN(o.Streams)
		}
		switch rng.IntN(5) {
		case 0:
			// A targeted crawl in between: its checkpoints must serve the whole runs.
			o := e.randomTarget(rng)
			res := e.crawl(o)
			t.Logf("step %d: targeted crawl of workspaces %v, streams %v: %s, %d calls", k+1, o.Workspaces, o.Streams, res.Status, res.Calls)
		case 1, 2:
			e.leaveQuota(n)
			res := e.crawl(Options{})
			t.Logf("step %d: quota after %d calls: %s, %d calls", k+1, n, res.Status, res.Calls)
			if res.Status != load.RunQuotaExhausted && res.Status != load.RunOK {
				t.Fatalf("stop %d: status %s %v %v", k+1, res.Status, res.Incomplete, res.Err)
			}
			// The quota reopens with the next UTC day.
			e.clk.Set(nextDay(e.clk.Now()).Add(time.Duration(rng.IntN(600)) * time.Minute))
		default:
			delay := time.Duration(rng.IntN(15)) * time.Millisecond
			killed := e.killAfter(n, delay)
			t.Logf("step %d: kill after request %d + %v (killed: %v)", k+1, n, delay, killed)
		}
		e.moveOn(rng)
	}

	for try := 1; ; try++ {
		res := e.crawl(Options{})
		t.Logf("resume %d: %s, %d calls", try, res.Status, res.Calls)
		if res.Status == load.RunOK {
			break
		}
		if res.Status != load.RunQuotaExhausted || try == 5 {
			t.Fatalf("resume %d: %s %v %v", try, res.Status, res.Incomplete, res.Err)
		}
		e.clk.Set(nextDay(e.clk.Now()).Add(time.Minute))
	}
	e.assertEqualTruth()
}

// randomTarget is a targeted crawl of a workspace, or of one or two streams, of the
// truth.
func (e *env) randomTarget(rng *rand.Rand) Options {
	tr := e.sim.Truth()
	_, streams := truthJobCounts(e.t, tr)
	if rng.IntN(2) == 0 || len(streams) == 0 {
		byWS := truthStreamsByWorkspace(e.t, tr)
		var wss []int64
		for _, ws := range byWS {
			wss = append(wss, ws)
		}
		slices.Sort(wss)
		wss = slices.Compact(wss)
		return Options{Workspaces: wss[rng.IntN(len(wss)):][:1]}
	}
	return Options{Streams: []int64{streams[rng.IntN(len(streams))], streams[rng.IntN(len(streams))]}}
}

// nextCrawlCalls is about what the next crawl costs, to stop it somewhere inside: the
// plan's upper bound, or before the first crawl what a full crawl of the truth costs.
func (e *env) nextCrawlCalls() int {
	e.t.Helper()
	p, err := e.crawler.Plan(context.Background(), Options{Clock: e.clk})
	if err != nil {
		e.t.Fatal(err)
	}
	if p.Crawled {
		return max(p.UpTo, 2)
	}
	tr := e.sim.Truth()
	counts, _ := truthJobCounts(e.t, tr)
	n := 1 + 6*len(tr.Workspaces)
	for _, jobs := range counts {
		n += 2 + jobs/4
	}
	return n
}

func nextDay(t time.Time) time.Time { return t.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour) }

// leaveQuota spends today's quota down to n calls, so the next crawl stops at its
// (n+1)-th call. It does nothing when less than n is left.
func (e *env) leaveQuota(n int) {
	e.t.Helper()
	call := func() int {
		req, err := http.NewRequest(http.MethodGet, e.baseURL+"/v1/workspaces", nil)
		if err != nil {
			e.t.Fatal(err)
		}
		req.Header.Set("Authorization", e.sim.Tokens()[0])
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			e.t.Fatal(err)
		}
		resp.Body.Close()
		left, err := strconv.Atoi(resp.Header.Get(datorama.HeaderDailyRemaining))
		if err != nil {
			e.t.Fatalf("burning quota: %s: %v", datorama.HeaderDailyRemaining, err)
		}
		return left
	}
	for left := call(); left > n; left-- {
		call()
	}
}

// killAfter runs a crawl in a child process on e's store and SIGKILLs it delay after the
// n-th answered request; it reports whether the kill came before the crawl ended.
func (e *env) killAfter(n int, delay time.Duration) bool {
	e.t.Helper()
	e.store.Close() // the child owns the file
	cmd := childCommand(e, "")
	cmd.Env = append(cmd.Env, childNowEnv+"="+e.clk.Now().Format(time.RFC3339Nano), childAnyStatusEnv+"=1")
	var once sync.Once
	var proc *os.Process
	seen := 0
	e.mu.Lock()
	e.after = func() {
		e.mu.Lock()
		seen++
		hit, p := seen == n, proc
		e.mu.Unlock()
		if hit && p != nil {
			once.Do(func() { time.AfterFunc(delay, func() { _ = p.Signal(syscall.SIGKILL) }) })
		}
	}
	e.mu.Unlock()
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.mu.Lock()
	proc = cmd.Process
	e.mu.Unlock()
	out := []byte(nil)
	err := cmd.Wait()
	e.mu.Lock()
	e.after = nil
	e.mu.Unlock()
	e.openStore()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	killed := ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
	if !killed && err != nil {
		e.t.Fatalf("crawl child: %v %s", err, out)
	}
	return killed
}

// moveOn lets the account live on: time passes (daily runs fire, jobs start and end),
// some streams run now and are caught in flight, and now and then a stream is renamed,
// remapped, deleted or added.
func (e *env) moveOn(rng *rand.Rand) {
	e.t.Helper()
	e.sim.Advance(time.Duration(1+rng.IntN(20*60)) * time.Minute)
	tr := e.sim.Truth()
	_, streams := truthJobCounts(e.t, tr)
	var run []int64
	for _, id := range streams {
		if rng.IntN(3) == 0 {
			run = append(run, id)
		}
	}
	e.sim.RunStreams(run)
	e.sim.Mutate(func(st *sim.State) {
		if len(streams) == 0 {
			return
		}
		id := streams[rng.IntN(len(streams))]
		var err error
		switch rng.IntN(6) {
		case 0:
			err = st.RenameStream(id, fmt.Sprintf("renamed %d", rng.IntN(1000)))
		case 1:
			err = st.SetStreamConfig(id, "mapping", fmt.Appendf(nil, `{"dataStreamId":%d,"fields":[{"sourceField":"a%d","targetField":"b","type":"DIMENSION"}]}`, id, rng.IntN(1000)))
		case 2:
			err = st.DeleteStream(id)
		case 3:
			ws := st.WorkspaceIDs()
			_, err = st.AddStream(ws[rng.IntN(len(ws))], "Facebook-Ads", "added by the test")
		}
		if err != nil {
			e.t.Fatal(err)
		}
	})
	e.sim.Advance(time.Duration(rng.IntN(10)) * time.Minute)
}

// TestResumeRereadsOpenPagesBeforeTheStop: an oldest-first read stopped in the middle of
// a stream's new jobs is finished by a later run, hours on, which must read again the
// pages before the stop whose jobs were not final then.
func TestResumeRereadsOpenPagesBeforeTheStop(t *testing.T) {
	t.Parallel()
	const size = 4
	e := newEnv(t, sim.Options{Seed: 161, Workspaces: 1, Streams: 6, JobsPerStream: 15, MaxPageSize: size})
	if res := e.crawl(Options{}); res.Status != load.RunOK {
		t.Fatalf("first crawl: %s %v", res.Status, res.Incomplete)
	}
	counts, streams := truthJobCounts(t, e.sim.Truth())
	stream := streams[0]
	var created []int64
	e.sim.Mutate(func(st *sim.State) {
		now := st.Now()
		var err error
		// Sixty days: six jobs of ten days, queued one behind the other.
		if created, err = st.Process(stream, now.AddDate(0, 0, -61), now.AddDate(0, 0, -2)); err != nil {
			t.Fatal(err)
		}
	})
	if len(created) < 2*size-2 {
		t.Fatalf("the process made %d jobs; the test needs them over two pages at least", len(created))
	}
	e.sim.Advance(2 * time.Minute)
	// The read stops at the last page holding new jobs: the pages before it are stored
	// with jobs not final.
	n := counts[stream] + len(created)
	stop := pageOf(n-1, size)
	if stop == pageOf(counts[stream], size) {
		t.Fatalf("the new jobs fit one page")
	}
	path := fmt.Sprintf("/v1/data-streams/api/%d/stats", stream)
	e.setFail(func(r *http.Request, body []byte) bool {
		return r.URL.Path == path && strings.Contains(string(body), fmt.Sprintf(`"pageNumber":%d,`, stop))
	})
	if res := e.crawl(Options{}); res.Status != load.RunPartial {
		t.Fatalf("crawl with page %d failing: %s %v, want partial", stop, res.Status, res.Incomplete)
	}
	if got := e.queryInt(`SELECT count(*) FROM jobs WHERE stream_id = $1 AND status IN ('PENDING', 'IN_PROGRESS')`, stream); got == 0 {
		t.Fatalf("no job of stream %d stored unfinished; the test needs some", stream)
	}
	e.setFail(nil)
	e.sim.Advance(4 * time.Hour) // the queue runs through
	if res := e.crawl(Options{}); res.Status != load.RunOK {
		t.Fatalf("resumed crawl: %s %v", res.Status, res.Incomplete)
	}
	e.assertEqualTruth()
}

// TestStreamLeavingTheListIsRetiredAfterAStop: a run stopped after the list that dropped
// a stream was stored, but before the stream's jobs and mapping were retired, leaves
// that to the next run.
func TestStreamLeavingTheListIsRetiredAfterAStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sim.Options{Seed: 162, Workspaces: 2, Streams: 8, JobsPerStream: 5})
	if res := e.crawl(Options{}); res.Status != load.RunOK {
		t.Fatalf("first crawl: %s %v", res.Status, res.Incomplete)
	}
	var gone int64
	e.sim.Mutate(func(st *sim.State) {
		gone = st.StreamIDs(st.WorkspaceIDs()[0])[0]
		if err := st.DeleteStream(gone); err != nil {
			t.Fatal(err)
		}
	})
	// The workspace list and the first workspace's streams: the stop comes before the
	// second list, so before anything is retired.
	if res := e.crawl(Options{MaxCalls: 2}); res.Status != load.RunPartial {
		t.Fatalf("capped crawl: %s %v", res.Status, res.Incomplete)
	}
	if got := e.queryInt(`SELECT count(*) FROM streams WHERE id = $1 AND is_deleted`, gone); got != 1 {
		t.Fatalf("stream %d not marked deleted by the list that dropped it", gone)
	}
	if got := e.queryInt(`SELECT count(*) FROM jobs WHERE stream_id = $1 AND NOT is_deleted`, gone); got == 0 {
		t.Fatalf("stream %d's jobs were retired before the stop; the test needs the stop first", gone)
	}
	if res := e.crawl(Options{}); res.Status != load.RunOK {
		t.Fatalf("next crawl: %s %v", res.Status, res.Incomplete)
	}
	e.assertEqualTruth()
	if got := e.queryInt(`SELECT count(*) FROM jobs WHERE stream_id = $1 AND NOT is_deleted`, gone); got != 0 {
		t.Errorf("stream %d left its list; %d of its jobs are still live", gone, got)
	}
	cps, err := e.store.Checkpoints(context.Background(), kindStreams)
	if err != nil {
		t.Fatal(err)
	}
	for ws, cp := range cps {
		if st, _ := decodeState[listState](nil, cp); len(st.Gone) > 0 {
			t.Errorf("workspace %d's list checkpoint still holds streams to retire: %v", ws, st.Gone)
		}
	}
}

// The call cap holds with workers calling at once: a crawl capped at n makes exactly n
// API calls (no faults, so no retries), whatever the number of workers, and ends partial.
func TestCallCapHoldsWithWorkers(t *testing.T) {
	for _, tt := range []struct{ workers, cap int }{{1, 5}, {8, 5}, {8, 13}, {16, 40}} {
		t.Run(fmt.Sprintf("%d-workers-cap-%d", tt.workers, tt.cap), func(t *testing.T) {
			e := newEnv(t, sim.Options{Seed: 77, Workspaces: 3, Streams: 30, JobsPerStream: 5})
			res := e.crawl(Options{Full: true, Workers: tt.workers, MaxCalls: tt.cap})
			if res.Status != load.RunPartial {
				t.Fatalf("capped crawl: %s %v", res.Status, res.Incomplete)
			}
			if got := e.sim.Calls().Total; got != tt.cap || res.Calls != tt.cap {
				t.Errorf("cap %d with %d workers: the API saw %d calls, the run counted %d", tt.cap, tt.workers, got, res.Calls)
			}
		})
	}
}
