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

// gatedSink is the real store with a gate: the first write of jobs or mappings waits
// until the test opens it, so the other workers' pages queue up behind it. It records
// the batches of every write and can fail the write that follows the gated one.
type gatedSink struct {
	load.Sink
	release  chan struct{}
	failNext bool

	mu     sync.Mutex
	gated  int // index in calls of the gated write; -1 until it happened
	calls  [][]load.Batch
	failed []load.Batch
}

var errInjected = errors.New("injected store failure")

func (g *gatedSink) WriteBatches(ctx context.Context, run int64, bs []load.Batch) error {
	g.mu.Lock()
	g.calls = append(g.calls, slices.Clone(bs))
	i := len(g.calls) - 1
	gate := g.gated < 0 && slices.ContainsFunc(bs, func(b load.Batch) bool {
		return b.Entity == load.Jobs && len(b.Jobs) > 0 || b.Entity == load.Mappings
	})
	if gate {
		g.gated = i
	}
	fail := g.failNext && g.gated >= 0 && i == g.gated+1
	if fail {
		g.failed = slices.Clone(bs)
	}
	g.mu.Unlock()
	if gate {
		<-g.release
	}
	if fail {
		return errInjected
	}
	return g.Sink.WriteBatches(ctx, run, bs)
}

func (g *gatedSink) Write(ctx context.Context, run int64, b load.Batch) error {
	return g.WriteBatches(ctx, run, []load.Batch{b})
}

// gate wires a gatedSink into e's crawler: the gate opens once workers-1 writers wait
// behind the gated write, which is then every other worker.
func gate(e *env, workers int, failNext bool) *gatedSink {
	g := &gatedSink{Sink: e.store, release: make(chan struct{}), gated: -1, failNext: failNext}
	var once sync.Once
	e.crawler.Sink = g
	e.crawler.queued = func(n int) {
		if n >= workers-1 {
			once.Do(func() { close(g.release) })
		}
	}
	return g
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

	// The pages the other workers read while the gated write waited went into the next
	// transaction together, each with its checkpoint; no transaction holds more than one
	// batch per worker.
	g.mu.Lock()
	defer g.mu.Unlock()
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
