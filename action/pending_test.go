package action

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/sim"
)

// Acceptance: 500 reruns on one workspace with a cap of 15: the simulator never holds
// more than 15 unfinished jobs of ours in that workspace. The check runs at every send,
// against the simulator's ground truth, before and after the request.
func TestPendingCapHolds(t *testing.T) {
	e := newEnv(t, sim.Options{Workspaces: 1, Streams: 40, JobsPerStream: 25})
	e.crawl(true)
	tr := e.truth()
	var rows []Row
	for _, sid := range tr.enabledStreams(0) {
		n := 0
		for _, j := range tr.byStr[sid] {
			if datorama.IsFinal(j.Status) && n < 20 && len(rows) < 500 {
				rows = append(rows, Row{Line: len(rows) + 2, StreamID: sid, JobID: j.ID})
				n++
			}
		}
	}
	if len(rows) != 500 {
		t.Fatalf("only %d final jobs to rerun", len(rows))
	}
	const limit = 15
	var (
		mu      sync.Mutex
		ours    []int64
		maxSeen int
		sends   int
	)
	pendingOurs := func() int {
		n := 0
		e.sim.Mutate(func(st *sim.State) {
			for _, id := range ours {
				if status, ok := st.JobStatus(id); ok && !datorama.IsFinal(status) {
					n++
				}
			}
		})
		return n
	}
	e.eng.MaxWait = 48 * time.Hour // a stuck job (1% of them) runs up to 30 h
	e.eng.WrapSender = func(next Sender) Sender {
		return EachCall(func(ctx context.Context, c *Call) (*Answer, error) {
			mu.Lock()
			defer mu.Unlock()
			if n := pendingOurs(); n+c.ExpectedJobs > limit && n > 0 {
				t.Errorf("call %d would put %d+%d of our jobs in flight", c.No, n, c.ExpectedJobs)
			}
			ans, err := sendOne(ctx, next, c)
			if ans != nil {
				for _, j := range ans.Jobs {
					ours = append(ours, j.ID)
				}
			}
			sends++
			maxSeen = max(maxSeen, pendingOurs())
			return ans, err
		})
	}
	p, rep, err := e.act(Request{Op: OpRerun, Rows: rows, Source: Source{Kind: "csv", Name: "big.csv"},
		Options: Options{QueueMax: limit}})
	if err != nil || rep.Status != RunOK || rep.Sent != 500 {
		t.Fatalf("execute: %v %+v", err, rep)
	}
	if maxSeen > limit {
		t.Fatalf("the simulator saw %d of our jobs pending at once; cap %d", maxSeen, limit)
	}
	if maxSeen < limit-2 {
		t.Errorf("at most %d of our jobs were pending: the cap was not used", maxSeen)
	}
	if sends != len(p.Calls) || len(ours) != 500 {
		t.Errorf("%d sends for %d planned calls, %d jobs created", sends, len(p.Calls), len(ours))
	}
	slices.Sort(ours)
	if len(slices.Compact(ours)) != 500 {
		t.Error("a job was created twice")
	}
	t.Logf("%d calls, %d jobs, max %d pending, simulated %s, %d status checks", len(p.Calls), len(ours), maxSeen,
		e.clk.Now().Sub(testStart).Round(time.Minute), e.calls("GET /v1/data-stream-stat/{statId}"))
}
