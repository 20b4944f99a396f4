package extract

import (
	"testing"
	"time"

	"github.com/drextract/drextract/extract/extracttest"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// TestHourlyCrawlsNearTheMinimum holds hourly incremental crawls within 1.10 × the
// minimum (extracttest.Incremental), three hours in a row after a full crawl and after a
// 24 h gap, with the store equal to the API after each. The account has the budget
// benchmark's workspaces of 600 streams, four of them rather than ten, and a few jobs
// per stream (each list fits one page either way, so no call changes). The simulator
// runs each stream daily at its own hour; about one job in a hundred gets stuck for
// hours, and the account starts with one stream in eight reprocessing: the streams
// queued behind a stuck chunk are the whole excess (see the README's budget arithmetic).
func TestHourlyCrawlsNearTheMinimum(t *testing.T) {
	if testing.Short() || raceDetector {
		// It counts calls over thousands of page writes: the plain run has it, and the
		// race run covers the same code in the other tests.
		t.Skip("call counts over 2,400 streams: not under -short or -race")
	}
	t.Parallel()
	e := newEnv(t, sim.Options{Seed: 1515, Workspaces: 4, Streams: 2400, JobsPerStream: 5})
	only := Options{Entities: []string{load.Workspaces, load.Streams, load.Jobs}}
	if res := e.crawl(only); res.Status != load.RunOK {
		t.Fatalf("full crawl: %s %v", res.Status, res.Incomplete)
	}
	for i, gap := range []time.Duration{time.Hour, time.Hour, time.Hour, 24 * time.Hour} {
		before := e.sim.Truth()
		e.sim.Advance(gap)
		after := e.sim.Truth()
		m, err := extracttest.Incremental(before, after, extracttest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		m.Mappings = 0 // not crawled here
		e.sim.ResetCalls()
		res := e.crawl(only)
		if res.Status != load.RunOK {
			t.Fatalf("crawl %d: %s %v", i+1, res.Status, res.Incomplete)
		}
		e.assertEqualTruth(only.Entities...)
		calls := e.sim.Calls()
		ratio := float64(calls.Total) / float64(m.Calls())
		t.Logf("crawl %d (+%v): %d calls %v; minimum %v; %.3f×", i+1, gap, calls.Total, calls.ByEndpoint, m, ratio)
		if ratio > 1.10 {
			t.Errorf("crawl %d (+%v): %d calls, %.3f × the minimum of %d", i+1, gap, calls.Total, ratio, m.Calls())
		}
		if calls.Total != res.Calls {
			t.Errorf("crawl %d: the simulator answered %d calls, the run counted %d", i+1, calls.Total, res.Calls)
		}
	}
}
