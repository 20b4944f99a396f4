package extract

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// gatedSink is the real store with a gate: the first write of the stream items stage
// (jobs or mappings) waits until every other worker has queued a batch behind it, so the
// next write holds one page of each. It records the batches of every write and can fail
// the write that follows the gated one.
type gatedSink struct {
	load.Sink
	workers  int
	failNext bool

	mu     sync.Mutex
	queued int           // batches waiting for the next commit, as the crawler says
	need   int           // while the gated write waits: the batches that must queue
	open   chan struct{} // closed when they have
	gated  int           // index in calls of the gated write; -1 until it happened
	calls  [][]load.Batch
	failed []load.Batch
}

var errInjected = errors.New("injected store failure")

// gate wires a gatedSink into e's crawler.
func gate(e *env, workers int, failNext bool) *gatedSink {
	g := &gatedSink{Sink: e.store, workers: workers, failNext: failNext, gated: -1}
	e.crawler.Sink = g
	e.crawler.queued = g.noteQueue
	return g
}

func (g *gatedSink) noteQueue(n int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.queued = n
	if g.need > 0 && n >= g.need {
		close(g.open)
		g.need = 0
	}
}

func (g *gatedSink) WriteBatches(ctx context.Context, run int64, bs []load.Batch) error {
	g.mu.Lock()
	g.calls = append(g.calls, slices.Clone(bs))
	i := len(g.calls) - 1
	var wait chan struct{}
	if g.gated < 0 && slices.ContainsFunc(bs, func(b load.Batch) bool {
		return b.Entity == load.Jobs || b.Entity == load.Mappings
	}) {
		g.gated = i
		if need := g.workers - len(bs); g.queued < need {
			g.need, g.open = need, make(chan struct{})
			wait = g.open
		}
	}
	fail := g.failNext && g.gated >= 0 && i == g.gated+1
	if fail {
		g.failed = slices.Clone(bs)
	}
	g.mu.Unlock()
	if wait != nil {
		<-wait
	}
	if fail {
		return errInjected
	}
	return g.Sink.WriteBatches(ctx, run, bs)
}

func (g *gatedSink) Write(ctx context.Context, run int64, b load.Batch) error {
	return g.WriteBatches(ctx, run, []load.Batch{b})
}

func TestWorkersCommitTogether(t *testing.T) {
	t.Parallel()
	const workers = 4
	e := newEnv(t, sim.Options{Seed: 61, Workspaces: 2, Streams: 40, JobsPerStream: 30, MaxPageSize: 10})
	g := gate(e, workers, false)
	res := e.crawl(Options{Workers: workers})
	if res.Status != load.RunOK {
		t.Fatalf("crawl: %s %v %v", res.Status, res.Incomplete, res.Err)
	}
	e.assertEqualTruth()

	// The first page of the stage was committed alone (its worker led); the pages the
	// other workers read while it waited went into the next transaction together, each
	// with its checkpoint. No transaction holds more than one batch per worker.
	g.mu.Lock()
	defer g.mu.Unlock()
	if n := len(g.calls[g.gated]); n != 1 {
		t.Fatalf("the first write of the stream items holds %d batches, want 1", n)
	}
	next := g.calls[g.gated+1]
	if len(next) != workers-1 {
		t.Errorf("the write after the gated one holds %d batches, want %d (one per waiting worker)", len(next), workers-1)
	}
	for _, b := range next {
		if b.Checkpoint == nil {
			t.Errorf("%s batch of parent %d committed without its checkpoint", b.Entity, b.ParentID)
		}
	}
	rows := 0
	for _, c := range g.calls {
		if len(c) > workers {
			t.Errorf("a write of %d batches from %d workers", len(c), workers)
		}
		for _, b := range c {
			if b.Entity == load.Jobs {
				rows += len(b.Jobs)
			}
		}
	}
	if res.Rows[load.Jobs] != rows {
		t.Errorf("the run counts %d job rows written, the store was given %d", res.Rows[load.Jobs], rows)
	}
}

func TestFailedGroupCommitStoresNothingOfIt(t *testing.T) {
	t.Parallel()
	const workers = 4
	e := newEnv(t, sim.Options{Seed: 62, Workspaces: 2, Streams: 40, JobsPerStream: 30, MaxPageSize: 10})
	g := gate(e, workers, true)
	res := e.crawl(Options{Workers: workers})
	if res.Status != load.RunFailed || !errors.Is(res.Err, errInjected) {
		t.Fatalf("crawl whose store failed: %s %v, want failed with the store's error", res.Status, res.Err)
	}
	// Nothing of the failed group is stored: none of its checkpoints.
	g.mu.Lock()
	failed := g.failed
	g.mu.Unlock()
	if len(failed) != workers-1 {
		t.Fatalf("the failed write held %d batches, want %d", len(failed), workers-1)
	}
	for _, b := range failed {
		cps, err := e.store.Checkpoints(context.Background(), b.Checkpoint.Kind)
		if err != nil {
			t.Fatal(err)
		}
		if cp, ok := cps[b.Checkpoint.ParentID]; ok && string(cp.State) == string(b.Checkpoint.State) {
			t.Errorf("checkpoint %s of %d from the failed write was stored", b.Checkpoint.Kind, b.Checkpoint.ParentID)
		}
	}
	// The next crawl, on a store that works, reads what was lost and ends equal to the API.
	e.crawler.Sink, e.crawler.queued = e.store, nil
	if res := e.crawl(Options{Workers: workers}); res.Status != load.RunOK {
		t.Fatalf("crawl after the failure: %s %v %v", res.Status, res.Incomplete, res.Err)
	}
	e.assertEqualTruth()
}
