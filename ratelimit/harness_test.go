package ratelimit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/sim"
)

// simStart is on a minute boundary, so the first window is a whole one and calls per
// simulated minute are not flattered by a short first window.
var simStart = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// harness is a simulator served over HTTP under /base, with the clock the budgets and
// clients share with it.
//
// Tests build it with newHarness inside a synctest bubble: the simulator is an
// httptest.Server whose connections are in-memory pipes (a bubble's clock moves only when
// every goroutine in it waits, and a goroutine waiting on a socket does not count), and
// the clock is the bubble's, which moves only when every client, budget and handler
// waits. So a scenario's calls per simulated minute and its 429s do not depend on how
// fast or busy the machine is. Benchmarks, which cannot run in a bubble, use
// newBenchHarness: loopback TCP and a manual clock that auto-advances when idle.
type harness struct {
	sim *sim.Sim
	url string
	clk clock.Clock
	hc  *http.Client // nil: the client's default
}

// newHarness serves a simulator of o on an in-memory network, on a clock starting at
// simStart. It must be called inside synctest.Test.
func newHarness(t *testing.T, o sim.Options) *harness {
	t.Helper()
	clk := bubbleClock(simStart)
	if o.Clock == nil {
		o.Clock = clk
	}
	s := sim.New(defaultOptions(o))
	url, hc := servePipe(t, s)
	return &harness{sim: s, url: url, clk: clk, hc: hc}
}

// newBenchHarness serves a simulator of o on loopback TCP, on a manual clock that jumps
// to the next timer whenever it has been idle for 2ms of real time.
func newBenchHarness(b *testing.B, o sim.Options) *harness {
	b.Helper()
	mc := clock.NewManual(simStart)
	o.Clock = mc
	s := sim.New(defaultOptions(o))
	mux := http.NewServeMux()
	mux.Handle("/base/", http.StripPrefix("/base", s))
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	b.Cleanup(mc.AutoAdvance(2 * time.Millisecond))
	return &harness{sim: s, url: srv.URL + "/base", clk: mc}
}

func defaultOptions(o sim.Options) sim.Options {
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Streams == 0 {
		o.Streams = 20
	}
	if o.JobsPerStream == 0 {
		o.JobsPerStream = -1 // no job history: the scenarios only read workspaces
	}
	return o
}

// bubbleClock is the clock of a synctest bubble (which starts at 2000-01-01) shifted to
// read start now: real timers, so the bubble's clock drives it.
func bubbleClock(start time.Time) *clock.Offset {
	o := &clock.Offset{}
	o.Advance(time.Until(start))
	return o
}

// servePipe serves h under /base on an httptest.Server listening on in-memory pipes,
// and returns the base URL and a client that dials it. Both are closed at cleanup.
func servePipe(t *testing.T, h http.Handler) (string, *http.Client) {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/base/", http.StripPrefix("/base", h))
	ln := newPipeListener()
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: mux}}
	srv.Start()
	tr := &http.Transport{DialContext: ln.dial}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		srv.Close()
	})
	return srv.URL + "/base", &http.Client{Transport: tr}
}

// pipeListener is a net.Listener whose connections are net.Pipe pairs made by dial.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	server, client := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "sim.invalid:80" }

// client is a datorama client on the harness's clock; gate nil means none (the client
// then waits out 429s itself, like a program outside our budget).
func (h *harness) client(tb testing.TB, token string, gate datorama.Gate, obs datorama.Observer, extra ...datorama.Option) *datorama.Client {
	tb.Helper()
	opts := []datorama.Option{datorama.WithClock(h.clk), datorama.WithLogger(discard())}
	if h.hc != nil {
		opts = append(opts, datorama.WithHTTPClient(h.hc))
	}
	if gate != nil {
		opts = append(opts, datorama.WithGate(gate))
	}
	if obs != nil {
		opts = append(opts, datorama.WithObserver(obs))
	}
	c, err := datorama.New(h.url, token, append(opts, extra...)...)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// workspaceIDs lists the account's workspaces with the all-seeing first token.
func (h *harness) workspaceIDs(tb testing.TB) []int64 {
	tb.Helper()
	var ids []int64
	for _, raw := range h.sim.Truth().Workspaces {
		var ws datorama.Workspace
		if err := json.Unmarshal(raw, &ws); err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, ws.ID)
	}
	if len(ids) == 0 {
		tb.Fatal("the simulator has no workspaces")
	}
	return ids
}

// tally counts what our own clients' attempts got, and the successful calls the server
// counted in each of its windows per token.
type tally struct {
	mu        sync.Mutex
	attempts  int
	ok        int
	throttled int
	denied    int // 401/403/404: sent with a token that cannot see the workspace
	perWindow map[string]int
}

func newTally() *tally { return &tally{perWindow: map[string]int{}} }

func (t *tally) ObserveCall(r datorama.CallRecord) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.attempts++
	switch {
	case r.Status == 429:
		t.throttled++
	case r.Status == 401 || r.Status == 403 || r.Status == 404:
		t.denied++
	case r.Status >= 200 && r.Status < 300:
		t.ok++
		w := r.Rate.Bucket(r.Kind).Reset
		t.perWindow[fmt.Sprintf("%s %s", r.Fingerprint, w.Format(time.TimeOnly))]++
	}
}

func (t *tally) snapshot() (attempts, ok, throttled, denied, busiest int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, n := range t.perWindow {
		busiest = max(busiest, n)
	}
	return t.attempts, t.ok, t.throttled, t.denied, busiest
}

// result is one scenario's numbers: what the benchmarks report and the tests check.
type result struct {
	calls     int // successful calls made through the budget
	attempts  int
	throttled int // 429 answers to our attempts
	denied    int
	busiest   int // most successful calls of one token in one server window
	elapsed   time.Duration
	perMinute float64
	util      float64 // perMinute over the combined limit of the tokens used
}

func (h *harness) result(t *tally, start time.Time, limitPerMinute int) result {
	attempts, ok, throttled, denied, busiest := t.snapshot()
	r := result{calls: ok, attempts: attempts, throttled: throttled, denied: denied, busiest: busiest, elapsed: h.clk.Now().Sub(start)}
	// Every minute the run touched counts whole: a last window cut short must not
	// flatter the pace.
	if m := math.Ceil(r.elapsed.Minutes()); m > 0 {
		r.perMinute = float64(ok) / m
	}
	r.util = r.perMinute / float64(limitPerMinute)
	return r
}

func (r result) String() string {
	return fmt.Sprintf("%d calls (%d attempts, %d × 429, %d denied) in %v simulated: %.2f calls/min, %.1f%% of the limit, busiest window %d",
		r.calls, r.attempts, r.throttled, r.denied, r.elapsed.Round(time.Second), r.perMinute, 100*r.util, r.busiest)
}

// runCalls makes n calls over workers goroutines, each call for the next workspace in
// turn, and returns the first error.
func runCalls(ctx context.Context, c *datorama.Client, n, workers int, ws []int64) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if _, err := c.Workspaces.Get(ctx, ws[i%int64(len(ws))]); err != nil {
					errs[w] = fmt.Errorf("call %d: %w", i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Scenarios, shared by the tests (small sizes, in a bubble) and the benchmarks (full
// sizes, on TCP). Each takes a harness made with sim.Options{} unless it says otherwise.

// scenarioSequential: n sequential platform calls on one token.
func scenarioSequential(tb testing.TB, h *harness, n int) result {
	tok := h.sim.Tokens()[0]
	tl := newTally()
	c := h.client(tb, tok, NewBudget(tok, Config{Clock: h.clk, Logger: discard()}), tl)
	if err := runCalls(context.Background(), c, n, 1, h.workspaceIDs(tb)); err != nil {
		tb.Fatal(err)
	}
	return h.result(tl, simStart, 60)
}

// scenarioExternal: n sequential calls through the budget while a program outside it
// spends perMinute calls a minute, evenly, on the same token. It also returns how many
// calls that program made.
func scenarioExternal(tb testing.TB, h *harness, n, perMinute int) (result, int) {
	tok := h.sim.Tokens()[0]
	tl := newTally()
	c := h.client(tb, tok, NewBudget(tok, Config{Clock: h.clk, Logger: discard()}), tl)
	other := h.client(tb, tok, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var otherCalls atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		every := time.Minute / time.Duration(perMinute)
		for ctx.Err() == nil {
			if _, err := other.Workspaces.List(ctx); err == nil {
				otherCalls.Add(1)
			}
			if clock.Sleep(ctx, h.clk, every) != nil {
				return
			}
		}
	}()
	err := runCalls(context.Background(), c, n, 1, h.workspaceIDs(tb))
	cancel()
	<-done
	if err != nil {
		tb.Fatal(err)
	}
	return h.result(tl, simStart, 60), int(otherCalls.Load())
}

// scenarioPool: n calls over workers goroutines, for every workspace in turn, through a
// pool of the first tokens tokens of a simulator with 3 tokens of overlapping
// visibility (poolOptions), learned with one workspace listing per token.
func scenarioPool(tb testing.TB, h *harness, tokens, n, workers int) result {
	toks := h.sim.Tokens()[:tokens]
	pool := NewPool(toks, Config{Clock: h.clk, Logger: discard()})
	tl := newTally()
	c := h.client(tb, toks[0], pool, tl)
	err := pool.learn(context.Background(), func(ctx context.Context) ([]int64, error) {
		wss, err := c.Workspaces.List(ctx)
		ids := make([]int64, len(wss))
		for i, ws := range wss {
			ids[i] = ws.ID
		}
		return ids, err
	})
	if err != nil {
		tb.Fatal(err)
	}
	start := h.clk.Now()
	tl = newTally() // count the crawl, not the learning
	c = h.client(tb, toks[0], pool, tl)
	if err := runCalls(context.Background(), c, n, workers, h.workspaceIDs(tb)); err != nil {
		tb.Fatal(err)
	}
	return h.result(tl, start, 60*tokens)
}

// poolOptions is the simulator scenarioPool needs.
var poolOptions = sim.Options{Tokens: 3, Workspaces: 8}

// scenarioShared: two budgets of one token sharing a state directory, as two processes
// on one machine would, each with its own client making n calls.
func scenarioShared(tb testing.TB, h *harness, dir string, n int) result {
	tok := h.sim.Tokens()[0]
	tl := newTally()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		c := h.client(tb, tok, NewBudget(tok, Config{Clock: h.clk, StateDir: dir, Logger: discard()}), tl)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = runCalls(context.Background(), c, n, 1, h.workspaceIDs(tb))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}
	return h.result(tl, simStart, 60)
}
