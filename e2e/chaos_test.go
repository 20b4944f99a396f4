package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/extract"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// The slow fault holds an answer longer than the client waits for one attempt, so every
// slow answer trips the attempt timeout. The simulator stops waiting when the client
// hangs up, so a slow fault costs attemptTimeout of real time.
const (
	slowDelay      = time.Second
	attemptTimeout = 200 * time.Millisecond
)

// TestChaosCrawl is issue 7's chaos test. For each seed: a clean full crawl of a
// modest account; an hour passes; a full crawl with every fault kind at 2% (5xx, slow
// answers past the attempt timeout, resets mid-body, truncated and malformed JSON, HTML
// error pages, 429 storms, repeated and empty pages); then a clean incremental crawl.
//
// After the faulted crawl every row equals the truth, except rows under a parent the
// run reports incomplete (in its Result and in runs.incomplete) and rows that changed
// while the crawl ran (the account lives on the shared virtual clock, which 429 storms
// and backoffs move). Nothing is deleted, incomplete parent or not. After the clean
// incremental crawl the store equals the truth exactly.
func TestChaosCrawl(t *testing.T) {
	if testing.Short() {
		t.Skip("three crawls of 90 streams per seed")
	}
	injected := map[string]int{}
	partial := false
	for _, tt := range []struct {
		seed int64
		// retries, when positive, tightens the client's retry bound so that some
		// parents keep failing past it: the run must end partial and name them.
		retries int
	}{
		{seed: 701}, {seed: 702}, {seed: 703, retries: 1},
	} {
		t.Run(fmt.Sprintf("seed%d_retries%d", tt.seed, tt.retries), func(t *testing.T) {
			faults, status := chaosRun(t, tt.seed, tt.retries)
			for k, n := range faults {
				injected[k] += n
			}
			partial = partial || status == load.RunPartial
		})
	}
	if t.Failed() {
		return
	}
	// The test proves something about a fault kind only if it met it.
	for _, k := range sim.FaultKinds {
		if k != sim.FaultQueryError && injected[k] == 0 {
			t.Errorf("fault %s was never injected over all seeds; the chaos test does not exercise it", k)
		}
	}
	if !partial {
		t.Error("no seed ended partial; the test does not exercise a parent failing past the retry bound")
	}
	t.Logf("faults injected over all seeds: %v", injected)
}

// chaosRun runs one seed and returns the faults the simulator injected during the
// faulted crawl and that crawl's status.
func chaosRun(t *testing.T, seed int64, retries int) (map[string]int, string) {
	ctx := context.Background()
	a := newAccount(t, sim.Options{Seed: seed, Workspaces: 4, Streams: 90, MaxPageSize: 10})
	s, store, clk := a.sim, a.store, a.clk
	crawl := func(full bool) extract.Result {
		t.Helper()
		extra := []datorama.Option{datorama.WithTimeout(attemptTimeout)}
		if retries > 0 {
			extra = append(extra, datorama.WithRetries(retries))
		}
		began := time.Now()
		res := a.crawl(extract.Options{Full: full}, extra...)
		t.Logf("crawl (full %v): %s, %d attempts in %v", full, res.Status, res.Calls, time.Since(began).Round(time.Millisecond))
		return res
	}

	// A: the baseline, so that the faulted crawl has rows it could wrongly delete.
	if res := crawl(true); res.Status != load.RunOK {
		t.Fatalf("clean first crawl: %s %v %v", res.Status, res.Incomplete, res.Err)
	}
	before := truthSnapshot(t, s.Truth())
	assertEqual(t, "after the clean first crawl", storeSnapshot(t, store.DB()), before)
	if t.Failed() {
		t.FailNow()
	}

	// B: an hour later (jobs finished, scheduled runs started), a full crawl under faults.
	s.Advance(time.Hour)
	faults, err := sim.ParseFaults(fmt.Sprintf("all=0.02,slowdelay=%s", slowDelay))
	if err != nil {
		t.Fatal(err)
	}
	s.SetFaults(faults)
	s.ResetCalls()
	t0, start := truthSnapshot(t, s.Truth()), clk.Now()
	res := crawl(true)
	t1, elapsed := truthSnapshot(t, s.Truth()), clk.Now().Sub(start)
	stats := s.Calls()
	s.SetFaults(sim.Faults{})
	t.Logf("faulted crawl: %s, %d attempts, %v of virtual time, faults %v, incomplete %v",
		res.Status, res.Calls, elapsed, stats.Faults, res.Incomplete)

	switch res.Status {
	case load.RunOK:
		if len(res.Incomplete) != 0 {
			t.Errorf("status ok with incomplete parents %v", res.Incomplete)
		}
	case load.RunPartial:
		if len(res.Incomplete) == 0 {
			t.Error("status partial without an incomplete parent")
		}
		// A call fails past the default bound only after five transient faults in a row:
		// about 0.16^5 per call at these rates, a few in ten thousand calls. More than a
		// couple of incomplete parents means transient faults are not being retried.
		if retries == 0 && len(res.Incomplete) > 2 {
			t.Errorf("%d parents incomplete under the default retry bound, expected at most 2: %v", len(res.Incomplete), res.Incomplete)
		}
	default:
		t.Fatalf("faulted crawl: status %s (%v); want ok, or partial with the failing parents named", res.Status, res.Err)
	}
	var runStatus string
	var incompleteJSON []byte
	if err := store.DB().QueryRowContext(ctx, `SELECT status, CAST(coalesce(incomplete, '[]') AS VARCHAR) FROM runs WHERE id = $1`,
		res.RunID).Scan(&runStatus, &incompleteJSON); err != nil {
		t.Fatalf("reading run %d: %v", res.RunID, err)
	}
	var recorded []string
	if err := json.Unmarshal(incompleteJSON, &recorded); err != nil {
		t.Fatalf("runs.incomplete of run %d: %v", res.RunID, err)
	}
	if runStatus != res.Status || !sameSet(recorded, res.Incomplete) {
		t.Errorf("runs row %d says %s, incomplete %v; the crawl returned %s, incomplete %v",
			res.RunID, runStatus, recorded, res.Status, res.Incomplete)
	}

	compareFaulted(t, storeSnapshot(t, store.DB()), before, t0, t1, parseParents(t, res.Incomplete))

	// C: no faults, an incremental crawl: the parents left incomplete are read again and
	// the store equals the truth. The budget has seen the last storm's window end.
	s.Advance(2 * time.Minute)
	tc0, startC := truthSnapshot(t, s.Truth()), clk.Now()
	resC := crawl(false)
	if resC.Status != load.RunOK {
		t.Fatalf("clean incremental crawl: %s %v %v", resC.Status, resC.Incomplete, resC.Err)
	}
	tc1 := truthSnapshot(t, s.Truth())
	for _, table := range extract.Entities {
		n0, s0 := tc0.digest(table)
		if n1, s1 := tc1.digest(table); n0 != n1 || s0 != s1 {
			t.Fatalf("the account changed during the clean crawl (%v of virtual time passed): the comparison below would not be fair",
				clk.Now().Sub(startC))
		}
	}
	assertEqual(t, "after the clean incremental crawl", storeSnapshot(t, store.DB()), tc1)
	return stats.Faults, res.Status
}

// compareFaulted checks the store after the faulted crawl against three truths: before
// (what the clean crawl stored), t0 and t1 (the account as the faulted crawl began and
// ended). A row that is the same in t0 and t1 must be stored as it is, unless its parent
// is incomplete; a row under an incomplete parent may be stored in any version the
// account had, or be missing if it is new; a row that changed during the crawl may be in
// any state it passed through. No row the account still has may be marked deleted, and
// no row it never had may be stored.
func compareFaulted(t *testing.T, got, before, t0, t1 snapshot, parents parentFilter) {
	t.Helper()
	for _, table := range extract.Entities {
		for k := range t0[table] {
			if _, ok := t1[table][k]; !ok {
				t.Fatalf("%s %s vanished from the account during the crawl; the test assumes nothing is deleted", table, k)
			}
		}
	}
	var setAside, moving, checked int
	for _, table := range extract.Entities {
		var errs []string
		for k, w1 := range t1[table] {
			g, stored := got[table][k]
			w0, existed := t0[table][k]
			changed := !existed || w0.raw != w1.raw
			switch {
			case stored && g.deleted:
				errs = append(errs, "marked deleted but the account has it: "+k)
			case parents.excludes(table, w1):
				setAside++
				if stored && g.raw != w1.raw && g.raw != w0.raw && g.raw != before[table][k].raw && !changed {
					errs = append(errs, "under an incomplete parent, stored as no version the account had: "+k+": "+clip(g.raw))
				}
			case changed:
				moving++
				if existed && !stored {
					errs = append(errs, "missing (it existed when the crawl began): "+k)
				}
			case !stored:
				errs = append(errs, "missing "+k)
			case g.raw != w1.raw:
				errs = append(errs, "differs "+k+": store "+clip(g.raw)+" truth "+clip(w1.raw))
			default:
				checked++
			}
		}
		for k, g := range got[table] {
			if _, ok := t1[table][k]; !ok && !g.deleted {
				errs = append(errs, "stored but not in the account: "+k)
			}
		}
		if len(errs) > 0 {
			slices.Sort(errs)
			t.Errorf("after the faulted crawl, %s: %d wrong rows, the first:\n  %s", table, len(errs), joinFirst(errs, 5))
		}
	}
	if parents.all && setAside == 0 {
		t.Error("every row set aside as incomplete, none checked")
	}
	t.Logf("after the faulted crawl: %d rows equal the truth, %d changed during the crawl, %d set aside under incomplete parents",
		checked, moving, setAside)
	if moving > checked/5 {
		t.Errorf("%d rows changed during the crawl against %d that did not: the account moved too much for the comparison to mean much", moving, checked)
	}
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

func joinFirst(list []string, n int) string {
	out := ""
	for i, s := range list[:min(n, len(list))] {
		if i > 0 {
			out += "\n  "
		}
		out += s
	}
	return out
}
