package ratelimit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/sim"
)

// The acceptance scenarios of issue 3, at sizes that keep the test run short, each in a
// synctest bubble (see harness): simulated time moves only when every goroutine waits,
// so the pace in calls per simulated minute is the budget's, not the machine's, and is
// asserted here as exactly as the 429s and the window limits. The benchmarks run the same
// scenarios at full size on TCP and report the figures. Under the race detector, which
// makes each call several times slower, the heaviest scenarios are smaller (sized).

// sized is n, or under the race detector about a third of it, in whole windows (30 calls
// per budget: scenarioShared runs two).
func sized(n int) int {
	if raceDetector {
		return n / 3 / 30 * 30
	}
	return n
}

func TestScenarioSequentialCallsUseTheWholeWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := scenarioSequential(t, newHarness(t, sim.Options{}), 900)
		t.Log(r)
		if r.throttled != 0 {
			t.Errorf("%d calls answered 429, want none", r.throttled)
		}
		if r.calls != 900 {
			t.Errorf("%d calls succeeded, want 900", r.calls)
		}
		if r.perMinute < 59 {
			t.Errorf("%.2f calls per simulated minute, want at least 59", r.perMinute)
		}
		if r.busiest > 60 {
			t.Errorf("%d calls in one server window, limit 60", r.busiest)
		}
	})
}

func TestScenarioAnotherProgramSpendsTheSameToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, other := scenarioExternal(t, newHarness(t, sim.Options{}), 900, 20)
		t.Log(r, "; the other program made", other, "calls")
		if r.calls != 900 {
			t.Errorf("%d calls succeeded, want all 900 (none lost)", r.calls)
		}
		if limit := r.attempts / 100; r.throttled > limit {
			t.Errorf("%d of %d attempts answered 429, want at most 1%%", r.throttled, r.attempts)
		}
		if r.attempts != r.calls+r.throttled {
			t.Errorf("%d attempts for %d calls and %d 429s: something else failed", r.attempts, r.calls, r.throttled)
		}
		// The other program got its share: about 20 a minute over the run.
		if want := int(r.elapsed.Minutes()*20) * 9 / 10; other < want {
			t.Errorf("the other program made %d calls in %v, want at least %d", other, r.elapsed, want)
		}
	})
}

func TestScenarioThreeTokensTripleTheThroughput(t *testing.T) {
	var one, three result
	synctest.Test(t, func(t *testing.T) { one = scenarioPool(t, newHarness(t, poolOptions), 1, sized(300), 9) })
	synctest.Test(t, func(t *testing.T) { three = scenarioPool(t, newHarness(t, poolOptions), 3, sized(900), 9) })
	t.Log("one token:   ", one)
	t.Log("three tokens:", three)
	for _, r := range []result{one, three} {
		if r.denied != 0 {
			t.Errorf("%d calls sent with a token that cannot see the workspace", r.denied)
		}
		if r.throttled != 0 {
			t.Errorf("%d calls answered 429", r.throttled)
		}
	}
	if ratio := three.perMinute / one.perMinute; ratio < 2.8 {
		t.Errorf("three tokens make %.2f× the calls per minute of one, want at least 2.8×", ratio)
	}
}

func TestScenarioTwoBudgetsShareOneTokenThroughTheStateFile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := scenarioShared(t, newHarness(t, sim.Options{}), t.TempDir(), sized(390)) // 13 whole windows together (4 under -race)
		t.Log(r)
		if r.throttled != 0 {
			t.Errorf("%d calls answered 429, want none", r.throttled)
		}
		if r.busiest > 60 {
			t.Errorf("%d calls in one server window, limit 60", r.busiest)
		}
		if r.perMinute < 59 {
			t.Errorf("%.2f calls per simulated minute together, want at least 59", r.perMinute)
		}
	})
}

// callUntilError makes calls for each workspace in turn until one fails, and returns
// how many succeeded and the error.
func callUntilError(ctx context.Context, c *datorama.Client, ws []int64, max int) (int, error) {
	for i := range max {
		if _, err := c.Workspaces.Get(ctx, ws[i%len(ws)]); err != nil {
			return i, err
		}
	}
	return max, nil
}

func TestScenarioDailyQuotaRunsOut(t *testing.T) {
	synctest.Test(t, testDailyQuotaRunsOut)
}

func testDailyQuotaRunsOut(t *testing.T) {
	h := newHarness(t, sim.Options{DailyQuota: 300})
	tok := h.sim.Tokens()[0]
	tl := newTally()
	c := h.client(t, tok, NewBudget(tok, Config{Clock: h.clk, Logger: discard()}), tl)
	ws := h.workspaceIDs(t)
	midnight := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	tests := []struct {
		name     string
		ctx      context.Context
		want     int
		reserved bool
	}{
		{"a scheduled crawl stops at 90%", ctx, 270, true},
		{"backfill gets nothing more", WithPriority(ctx, Backfill), 0, true},
		{"interactive calls spend the reserve, then stop", WithPriority(ctx, Interactive), 30, false},
	}
	// One after the other on one budget: no subtests, which a bubble does not allow.
	for _, tt := range tests {
		n, err := callUntilError(tt.ctx, c, ws, 1000)
		if n != tt.want {
			t.Errorf("%s: %d calls succeeded, want %d", tt.name, n, tt.want)
		}
		var qe *datorama.QuotaError
		if !errors.As(err, &qe) || !errors.Is(err, datorama.ErrQuotaExhausted) {
			t.Fatalf("%s: stopped with %v, want a QuotaError", tt.name, err)
		}
		if qe.Reserved != tt.reserved || !qe.Reset.Equal(midnight) {
			t.Errorf("%s: QuotaError %+v, want Reserved=%v and the reset %v", tt.name, qe, tt.reserved, midnight)
		}
		if want := "resets at 2026-03-03T00:00:00Z"; !strings.Contains(err.Error(), want) {
			t.Errorf("%s: message %q lacks %q", tt.name, err, want)
		}
	}
	if n := h.sim.Calls().ByStatus["429"]; n != 0 {
		t.Errorf("the simulator answered %d × 429: the budget let calls past the quota", n)
	}
	// After the reset the crawl goes on.
	time.Sleep(midnight.Add(time.Second).Sub(h.clk.Now()))
	if n, err := callUntilError(ctx, c, ws, 10); n != 10 {
		t.Errorf("after the reset: %d calls, then %v", n, err)
	}
}

// TestScenarioDailyQuotaSpentBehindOurBack: another program spent the day; the budget
// learns it from the first answer and fails fast from then on, without waiting for the
// reset and without another round trip.
func TestScenarioDailyQuotaSpentBehindOurBack(t *testing.T) {
	synctest.Test(t, testDailyQuotaSpentBehindOurBack)
}

func testDailyQuotaSpentBehindOurBack(t *testing.T) {
	h := newHarness(t, sim.Options{DailyQuota: 100})
	tok := h.sim.Tokens()[0]
	ws := h.workspaceIDs(t)
	other := h.client(t, tok, nil, nil)
	if n, err := callUntilError(context.Background(), other, ws, 100); n != 100 {
		t.Fatalf("the other program made %d calls: %v", n, err)
	}
	start := h.clk.Now()
	b := NewBudget(tok, Config{Clock: h.clk, Logger: discard()})
	c := h.client(t, tok, b, nil)
	ctx := WithPriority(context.Background(), Interactive)
	for i := range 3 {
		before := h.sim.Calls().Total
		_, err := c.Workspaces.Get(ctx, ws[0])
		if !errors.Is(err, datorama.ErrQuotaExhausted) {
			t.Fatalf("call %d: %v, want a QuotaError", i, err)
		}
		sent := h.sim.Calls().Total - before
		if want := map[bool]int{true: 1, false: 0}[i == 0]; sent != want {
			t.Errorf("call %d sent %d requests, want %d", i, sent, want)
		}
	}
	if waited := h.clk.Now().Sub(start); waited > time.Minute {
		t.Errorf("waited %v for a quota that resets at midnight", waited)
	}
}
