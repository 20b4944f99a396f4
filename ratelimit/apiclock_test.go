package ratelimit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/sim"
)

// TestQuotaStopIsLiftedByTheAPIsReset is issue 14's reproduction: a run spends the day's
// quota; the simulator is advanced 24 h (POST /_sim/advance); the next run, a new process
// on the same data directory, must get through, although on the host's clock the reset
// the shared state names is still hours away. The host clock does not move at all here.
func TestQuotaStopIsLiftedByTheAPIsReset(t *testing.T) {
	for _, gate := range []string{"budget", "pool"} {
		t.Run(gate, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { testQuotaStopIsLifted(t, gate) })
		})
	}
}

func testQuotaStopIsLifted(t *testing.T, gate string) {
	host := bubbleClock(simStart)
	h := newHarness(t, sim.Options{DailyQuota: 5, Clock: bubbleClock(simStart)})
	tok := h.sim.Tokens()[0]
	ws := h.workspaceIDs(t)
	dir := t.TempDir()
	ctx := context.Background()

	// run is one drextract process: its own estimate of the API's clock over the host's,
	// a budget on the shared state directory, and a client feeding the estimate.
	type run struct {
		api    *clock.Remote
		client *datorama.Client
	}
	newRun := func(api *clock.Remote) run {
		cfg := Config{Clock: host, StateDir: dir, Reserve: -1, Logger: discard()}
		if api != nil {
			cfg.Clock = api
		}
		var g datorama.Gate = NewBudget(tok, cfg)
		clientToken := tok // a Budget's permits leave the token to the client
		if gate == "pool" {
			g, clientToken = NewPool([]string{tok}, cfg), ""
		}
		opts := []datorama.Option{datorama.WithClock(host)}
		if api != nil {
			opts = append(opts, datorama.WithAPIClock(api))
		}
		return run{api: api, client: h.client(t, clientToken, g, nil, opts...)}
	}
	newAPIClock := func() *clock.Remote { return clock.NewRemote(host, discard()) }
	calls := func() int { return h.sim.Calls().Total }

	first := newRun(newAPIClock())
	if n, err := callUntilError(ctx, first.client, ws, 10); n != 5 || !errors.Is(err, datorama.ErrQuotaExhausted) {
		t.Fatalf("the first run made %d calls, then %v; want 5, then the quota error", n, err)
	}
	if got := calls(); got != 5 {
		t.Fatalf("the simulator saw %d calls, want 5 (the budget stops before a 429)", got)
	}

	h.sim.Advance(24 * time.Hour)

	// On the host's clock (what drextract did before), the next run stops without a call.
	before := calls()
	hostOnly := newRun(nil)
	if _, err := hostOnly.client.Workspaces.Get(ctx, ws[0]); !errors.Is(err, datorama.ErrQuotaExhausted) {
		t.Fatalf("a run on the host's clock: %v; the control expects the stale quota stop", err)
	}
	if calls() != before {
		t.Fatal("a run on the host's clock sent a call")
	}

	// On the API's clock the next run sends its first call (it has not seen the API's
	// clock yet), learns the new day from the answer, and goes on.
	second := newRun(newAPIClock())
	if n, err := callUntilError(ctx, second.client, ws, 10); n != 5 || !errors.Is(err, datorama.ErrQuotaExhausted) {
		t.Fatalf("the run after the advance made %d calls, then %v; want the new day's 5", n, err)
	}
	if got := h.sim.Calls().ByStatus["429"]; got != 0 {
		t.Errorf("the simulator answered %d × 429", got)
	}
	if d := second.api.Now().Sub(h.sim.Now()).Abs(); d > time.Second {
		t.Errorf("the second run's API clock is %v off the simulator's", d)
	}

	// A later process starts on the saved estimate: even without a call, it reads the
	// state on the API's clock.
	later := newAPIClock()
	st, found, err := ReadStatus(dir, datorama.Fingerprint(tok), Config{Clock: later, DailyQuota: 5})
	if err != nil || !found {
		t.Fatalf("ReadStatus: %v, found %v", err, found)
	}
	wantReset := time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC) // the simulator's next midnight
	if d := later.Now().Sub(h.sim.Now()).Abs(); d > time.Second || !st.Daily.Reset.Equal(wantReset) || st.Daily.Remaining != 0 {
		t.Errorf("restored clock %v off the simulator's; daily %+v, want reset %v and nothing left", d, st.Daily, wantReset)
	}

	// When the quota really is gone on the API's clock, a new process spends exactly one
	// call (a 429) to learn that, and then stops without calling.
	before = calls()
	third := newRun(newAPIClock())
	for range 3 {
		if _, err := third.client.Workspaces.Get(ctx, ws[0]); !errors.Is(err, datorama.ErrQuotaExhausted) {
			t.Fatalf("a run with the day really spent: %v, want the quota error", err)
		}
	}
	if got := calls() - before; got != 1 {
		t.Errorf("a run with the day really spent sent %d calls, want the one that learns the clock", got)
	}
}

// TestAPIClockFile: the estimate is saved next to the token states, a corrupt file is
// reported and ignored, and a restored estimate never overrides what a process observed.
func TestAPIClockFile(t *testing.T) {
	dir := t.TempDir()
	m := clock.NewManual(t0)
	api := clock.NewRemote(m, discard())
	if err := RestoreAPIClock(dir, api); err != nil {
		t.Fatalf("restoring from an empty directory: %v", err)
	}
	if _, ok := api.Skew(); ok {
		t.Fatal("an estimate restored from nothing")
	}
	api.Observe(t0, t0, t0.Add(3*time.Hour), clock.DateResolution)
	if err := saverFor(dir).save(api); err != nil {
		t.Fatal(err)
	}
	fresh := clock.NewRemote(m, discard())
	if err := RestoreAPIClock(dir, fresh); err != nil {
		t.Fatal(err)
	}
	if got := fresh.Now(); !got.Equal(t0.Add(3 * time.Hour)) {
		t.Errorf("restored clock reads %v, want %v", got, t0.Add(3*time.Hour))
	}
	fps, err := Fingerprints(dir)
	if err != nil || len(fps) != 0 {
		t.Errorf("Fingerprints lists %v (%v): the clock file is not a token", fps, err)
	}

	for name, content := range map[string]string{
		"not json":     "{{{",
		"a future one": `{"version":9,"skew":{"min":0,"max":0,"at":"2026-03-02T10:00:00Z"}}`,
		"inverted":     `{"version":1,"skew":{"min":5,"max":1,"at":"2026-03-02T10:00:00Z"}}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, apiClockFile), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		r := clock.NewRemote(m, discard())
		if err := RestoreAPIClock(dir, r); !errors.Is(err, errCorrupt) {
			t.Errorf("%s: RestoreAPIClock = %v, want errCorrupt", name, err)
		}
		if !r.Now().Equal(t0) {
			t.Errorf("%s: a corrupt file moved the clock to %v", name, r.Now())
		}
		// A budget made on it warns and goes on with the host clock.
		b := NewBudget("token-a", Config{Clock: r, StateDir: dir, Logger: discard()})
		if st := b.Status(); !st.At.Equal(t0) {
			t.Errorf("%s: budget at %v", name, st.At)
		}
	}
}
