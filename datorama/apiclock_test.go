package datorama

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/sim"
)

// skewedSim is a simulator whose clock is ahead of the client's host clock by skew; it
// answers from /base over real HTTP.
func skewedSim(t *testing.T, o sim.Options, skew time.Duration) (*sim.Sim, *clock.Manual, string) {
	t.Helper()
	simClock := clock.NewManual(testStart.Add(skew))
	o.Clock = simClock
	if o.Seed == 0 {
		o.Seed = 3
	}
	o.Streams, o.JobsPerStream = 5, -1
	s := sim.New(o)
	return s, simClock, serve(t, s)
}

// TestClientLearnsTheAPIClock: the client's API clock follows the simulator's Date
// header — at once from the first answer, and after the simulator is advanced, from the
// second answer that agrees — while its host clock stays where it is.
func TestClientLearnsTheAPIClock(t *testing.T) {
	const skew = 3*time.Hour + 1500*time.Millisecond
	s, _, base := skewedSim(t, sim.Options{}, skew)
	env := newEnv(t, base, withoutAutoAdvance(), withToken(s.Tokens()[0]))
	api := clock.NewRemote(env.clk, slog.New(slog.DiscardHandler))
	c, err := New(base, s.Tokens()[0], WithClock(env.clk), WithAPIClock(api), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if c.APIClock() != api {
		t.Fatal("APIClock is not the Remote given with WithAPIClock")
	}
	if env.c.APIClock() == nil {
		t.Fatal("a client without WithAPIClock has no API clock")
	}
	if got := c.APIClock().Now(); !got.Equal(testStart) {
		t.Errorf("before any answer the API clock reads %v, want the host's %v", got, testStart)
	}
	ctx := context.Background()
	if _, err := c.Workspaces.List(ctx); err != nil {
		t.Fatal(err)
	}
	near := func(what string, want time.Time) {
		t.Helper()
		if got := c.APIClock().Now(); got.Sub(want).Abs() > time.Second {
			t.Errorf("%s: API clock %v, want within a second of %v", what, got, want)
		}
	}
	near("after one answer", s.Now())
	if !api.Observed() || !env.clk.Now().Equal(testStart) {
		t.Errorf("observed %v, host clock %v: want observed and the host clock untouched", api.Observed(), env.clk.Now())
	}

	s.Advance(24 * time.Hour)
	for range 2 {
		if _, err := c.Workspaces.List(ctx); err != nil {
			t.Fatal(err)
		}
	}
	near("after the simulator advanced a day", s.Now())
}

// TestRateLimitWaitUsesTheAPIClock: a client without a gate waits out a 429 until the
// reset the headers name, on the API's clock. Read on the host clock, an hour behind,
// the reset would look an hour away and the wait would be capped at two minutes.
func TestRateLimitWaitUsesTheAPIClock(t *testing.T) {
	s, simClock, base := skewedSim(t, sim.Options{PlatformLimit: 1}, time.Hour)
	env := newEnv(t, base, withoutAutoAdvance(), withToken(s.Tokens()[0]))
	ctx := context.Background()
	if _, err := env.c.Workspaces.List(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := env.c.Workspaces.List(ctx)
		done <- err
	}()
	waitFor(t, "the client to wait out the 429", func() bool { return env.clk.Pending() == 1 })
	// The simulator's window reopens at its next minute; move both clocks just past it.
	reopen := simClock.Now().Truncate(time.Minute).Add(time.Minute)
	d := reopen.Sub(simClock.Now()) + time.Second
	simClock.Advance(d)
	env.clk.Advance(d)
	waitFor(t, "the call to end once the window reopened", func() bool { return len(done) == 1 })
	if err := <-done; err != nil {
		t.Fatalf("the call after the window reopened: %v", err)
	}
	if got := env.rec.statuses(); len(got) != 3 || got[1] != 429 || got[2] != 200 {
		t.Errorf("statuses %v, want 200, 429, 200", got)
	}
}

// TestUnreadableDateHeader: an answer whose Date cannot be parsed feeds nothing and is
// logged once, without its value.
func TestUnreadableDateHeader(t *testing.T) {
	const bad = "Tuesday, sometime " + testToken
	srv := newScript(answerWith(200, map[string]string{"Date": bad}, `[]`))
	env := newEnv(t, serve(t, srv), withoutAutoAdvance())
	for range 3 {
		if _, err := env.c.Workspaces.List(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	logs := env.logs.String()
	if n := strings.Count(logs, "unreadable Date header"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs)
	}
	if strings.Contains(logs, "sometime") {
		t.Errorf("the header's value was logged:\n%s", logs)
	}
	if env.c.APIClock().Observed() {
		t.Error("an unreadable Date header was taken as an observation")
	}
	// A missing Date is not worth a word: net/http always sends one, so suppress it.
	quiet := newScript(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Date"] = nil
		answer(200, `[]`)(w, r)
	})
	env = newEnv(t, serve(t, quiet), withoutAutoAdvance())
	if _, err := env.c.Workspaces.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(env.logs.String(), "Date") || env.c.APIClock().Observed() {
		t.Errorf("an answer without Date: observed %v, logs:\n%s", env.c.APIClock().Observed(), env.logs.String())
	}
}

// waitFor polls cond until it holds; the deadline only bounds a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after 30 s", what)
		}
	}
}
