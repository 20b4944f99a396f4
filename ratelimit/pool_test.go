package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
)

func wsCall(ws int64) datorama.Call {
	return datorama.Call{Kind: datorama.Platform, Method: "GET", PathTemplate: "/v1/workspaces/{wsId}/data-streams", WorkspaceID: ws, Attempt: 1}
}

// newTestPool is a pool of tokens tok-a, tok-b, tok-c where a sees 1,2,3, b sees 2,3 and
// c sees 3, and every token's window is confirmed with the given calls left.
func newTestPool(t *testing.T, mc *clock.Manual, left ...int) *Pool {
	t.Helper()
	p := NewPool([]string{"tok-a", "tok-b", "", "tok-c", "tok-a"}, Config{Clock: mc, Safety: Safety{Spread: -1}})
	if got := len(p.Fingerprints()); got != 3 {
		t.Fatalf("pool of %d tokens, want 3 (empty and repeated dropped)", got)
	}
	for i, ws := range [][]int64{{1, 2, 3}, {2, 3}, {3}} {
		if err := p.SetVisibility(p.Fingerprints()[i], ws); err != nil {
			t.Fatal(err)
		}
	}
	for i, fp := range p.Fingerprints() {
		perm := mustAcquire(t, p, WithToken(context.Background(), fp), wsCall(0))
		perm.Done(200, rate(platform(60, left[i], t0.Add(time.Minute))...), 0)
	}
	return p
}

func TestPoolRoutesToATokenThatSeesTheWorkspace(t *testing.T) {
	mc := clock.NewManual(t0)
	p := newTestPool(t, mc, 59, 59, 59)
	fps := p.Fingerprints()
	tokens := map[string]string{fps[0]: "tok-a", fps[1]: "tok-b", fps[2]: "tok-c"}
	tests := []struct {
		ws      int64
		allowed []string
	}{
		{1, []string{"tok-a"}},
		{2, []string{"tok-a", "tok-b"}},
		{3, []string{"tok-a", "tok-b", "tok-c"}},
		{0, []string{"tok-a", "tok-b", "tok-c"}},
		{99, []string{"tok-a"}}, // nobody is known to see it: the first token
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("workspace ", tt.ws), func(t *testing.T) {
			used := map[string]int{}
			for range 30 {
				perm := mustAcquire(t, p, context.Background(), wsCall(tt.ws))
				if tokens[perm.Fingerprint()] != perm.Token() {
					t.Fatalf("permit token and fingerprint disagree")
				}
				used[perm.Token()]++
				perm.Done(200, rate(), 0)
			}
			for tok := range used {
				if !slices.Contains(tt.allowed, tok) {
					t.Errorf("a call for workspace %d went with %s, which cannot see it", tt.ws, tok)
				}
			}
			if len(used) != len(tt.allowed) {
				t.Errorf("calls spread over %v, want all of %v (most left first)", used, tt.allowed)
			}
		})
		mc.Advance(time.Minute + time.Second) // fresh windows for the next case
	}
}

func TestPoolPrefersTheTokenWithTheMostLeft(t *testing.T) {
	mc := clock.NewManual(t0)
	p := newTestPool(t, mc, 5, 50, 30)
	perm := mustAcquire(t, p, context.Background(), wsCall(3))
	defer perm.Done(200, rate(), 0)
	if perm.Token() != "tok-b" {
		t.Errorf("went with %s, want tok-b (50 left)", perm.Token())
	}
}

func TestPoolUnlearnedTokensAreCandidates(t *testing.T) {
	mc := clock.NewManual(t0)
	p := NewPool([]string{"tok-a", "tok-b"}, Config{Clock: mc})
	if err := p.SetVisibility(datorama.Fingerprint("tok-a"), []int64{1}); err != nil {
		t.Fatal(err)
	}
	// tok-b's visibility is unknown: a call for workspace 7 may only try it.
	perm := mustAcquire(t, p, context.Background(), wsCall(7))
	perm.Done(200, rate(), 0)
	if perm.Token() != "tok-b" {
		t.Errorf("went with %s, want the unlearned tok-b", perm.Token())
	}
	if err := p.SetVisibility("tok_nothere", nil); err == nil {
		t.Errorf("SetVisibility of an unknown fingerprint succeeded")
	}
	if _, err := p.Acquire(WithToken(context.Background(), "tok_nothere"), wsCall(1)); err == nil {
		t.Errorf("Acquire forced to an unknown token succeeded")
	}
}

func TestPoolWaitsForTheFirstTokenToReopen(t *testing.T) {
	synctest.Test(t, testPoolWaitsForTheFirstTokenToReopen)
}

func testPoolWaitsForTheFirstTokenToReopen(t *testing.T) {
	mc := bubbleClock(t0.Add(30 * time.Second))
	p := NewPool([]string{"tok-a", "tok-b"}, Config{Clock: mc})
	reopen := map[string]time.Time{"tok-a": t0.Add(50 * time.Second), "tok-b": t0.Add(40 * time.Second)}
	for _, tok := range []string{"tok-a", "tok-b"} {
		perm := mustAcquire(t, p, WithToken(context.Background(), datorama.Fingerprint(tok)), wsCall(0))
		perm.Done(429, rate(datorama.HeaderRateLimitReset, ms(reopen[tok])), 0)
	}
	perm := mustAcquire(t, p, context.Background(), wsCall(0))
	defer perm.Done(200, rate(), 0)
	if perm.Token() != "tok-b" || !mc.Now().Equal(reopen["tok-b"].Add(grace)) {
		t.Errorf("went with %s at %v, want tok-b at %v", perm.Token(), mc.Now(), reopen["tok-b"].Add(grace))
	}
}

func TestPoolQuotaErrorWhenEveryTokenIsSpent(t *testing.T) {
	synctest.Test(t, testPoolQuotaErrorWhenEveryTokenIsSpent)
}

func testPoolQuotaErrorWhenEveryTokenIsSpent(t *testing.T) {
	midnight := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	mc := clock.NewManual(t0)
	p := NewPool([]string{"tok-a", "tok-b"}, Config{Clock: mc, DailyQuota: 100})
	left := map[string]string{"tok-a": "0", "tok-b": "5"} // b has only its reserve (10) left
	for tok, n := range left {
		perm := mustAcquire(t, p, WithToken(WithPriority(context.Background(), Interactive), datorama.Fingerprint(tok)), wsCall(0))
		perm.Done(200, rate(datorama.HeaderDailyLimit, "100", datorama.HeaderDailyRemaining, n, datorama.HeaderDailyReset, ms(midnight)), 0)
	}
	_, err := acquireNow(p, wsCall(0))
	var qe *datorama.QuotaError
	if !errors.As(err, &qe) || !qe.Reserved || !qe.Reset.Equal(midnight) {
		t.Fatalf("scheduled call: %v, want a reserved QuotaError resetting at %v", err, midnight)
	}
	perm, err := acquireNow(p, func() datorama.Call { return wsCall(0) }())
	if err == nil {
		perm.Done(200, rate(), 0)
		t.Fatalf("second scheduled call granted")
	}
	perm, err = p.Acquire(WithPriority(context.Background(), Interactive), wsCall(0))
	if err != nil {
		t.Fatalf("interactive call refused: %v", err)
	}
	if perm.Token() != "tok-b" {
		t.Errorf("interactive call went with %s, want tok-b (a has nothing left)", perm.Token())
	}
	perm.Done(200, rate(), 0)
}

func TestPoolLearnAsksEveryToken(t *testing.T) {
	mc := clock.NewManual(t0)
	p := NewPool([]string{"tok-a", "tok-b"}, Config{Clock: mc})
	seen := map[string][]int64{
		datorama.Fingerprint("tok-a"): {1, 2},
		datorama.Fingerprint("tok-b"): {2},
	}
	var asked []string
	err := p.learn(context.Background(), func(ctx context.Context) ([]int64, error) {
		// The way a client with the pool as its gate would send it.
		perm, err := p.Acquire(ctx, wsCall(0))
		if err != nil {
			return nil, err
		}
		defer perm.Done(200, rate(), 0)
		asked = append(asked, perm.Fingerprint())
		return seen[perm.Fingerprint()], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(asked, p.Fingerprints()) {
		t.Errorf("asked %v, want each token once in order %v", asked, p.Fingerprints())
	}
	for fp, want := range seen {
		if got, ok := p.Visible(fp); !ok || !slices.Equal(got, want) {
			t.Errorf("Visible(%s) = %v, %v; want %v", fp, got, ok, want)
		}
	}
	failing := errors.New("boom " + strconv.Itoa(1))
	if err := p.learn(context.Background(), func(context.Context) ([]int64, error) { return nil, failing }); !errors.Is(err, failing) {
		t.Errorf("Learn error = %v, want it wrapped", err)
	}
}

// TestPoolWithoutReserve: Reserve < 0 means none in a Pool as in a Budget (the config's
// "reserve: 0"); the pool once applied the defaults twice and kept 10% back anyway.
func TestPoolWithoutReserve(t *testing.T) {
	midnight := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	mc := clock.NewManual(t0)
	p := NewPool([]string{"tok-a"}, Config{Clock: mc, DailyQuota: 100, Reserve: -1})
	perm := mustAcquire(t, p, context.Background(), wsCall(0))
	perm.Done(200, rate(datorama.HeaderDailyLimit, "100", datorama.HeaderDailyRemaining, "1", datorama.HeaderDailyReset, ms(midnight)), 0)
	if st := p.Status()[0]; st.Daily.Reserve != 0 || st.Daily.ScheduledLeft != 1 {
		t.Errorf("daily status %+v, want no reserve and 1 left for scheduled calls", st.Daily)
	}
	perm = mustAcquire(t, p, context.Background(), wsCall(0)) // the last call of the day
	perm.Done(200, rate(), 0)
}
