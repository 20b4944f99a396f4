package e2e

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/extract"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
	"github.com/drextract/drextract/sim"
)

// testStart is the virtual time every test account is generated at.
var testStart = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// unlimited lifts the simulator's and the budget's rate limits, so only injected 429
// storms make anyone wait.
const unlimited = 1 << 30

// quietLogger discards everything unless DREXTRACT_TEST_LOG is set.
func quietLogger() *slog.Logger {
	if os.Getenv("DREXTRACT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// account is a simulated account served over real HTTP and a store on disk, wired as the
// CLI wires a crawl: one pool for the account's first token, whose state lives in the
// data directory, and for each crawl a client behind it reporting every attempt to the
// crawl's audit. Its clock advances by itself whenever everything waits on it.
type account struct {
	t     *testing.T
	sim   *sim.Sim
	store *load.Store
	clk   *clock.Manual
	pool  *ratelimit.Pool
	base  string
	log   *slog.Logger
}

// newAccount starts the simulator of o without rate limits, on the test's virtual clock,
// and opens a fresh store for it; the test's cleanup stops both.
func newAccount(t *testing.T, o sim.Options) *account {
	t.Helper()
	a := &account{t: t, clk: clock.NewManual(testStart), log: quietLogger()}
	t.Cleanup(a.clk.AutoAdvance(2 * time.Millisecond))
	o.PlatformLimit, o.QueryLimit, o.DailyQuota, o.Clock = unlimited, unlimited, unlimited, a.clk
	a.sim = sim.New(o)
	srv := httptest.NewServer(http.StripPrefix("/base", a.sim))
	t.Cleanup(srv.Close)
	a.base = srv.URL + "/base"
	dataDir := t.TempDir()
	store, err := load.Open(context.Background(), filepath.Join(dataDir, load.LiveFile), load.Options{Clock: a.clk, Logger: a.log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	a.store = store
	a.pool = ratelimit.NewPool(a.sim.Tokens()[:1], ratelimit.Config{
		PlatformLimit: unlimited, QueryLimit: unlimited, DailyQuota: unlimited, Reserve: -1,
		Clock: a.clk, StateDir: ratelimit.StateDirIn(dataDir), Logger: a.log,
	})
	return a
}

// crawl runs one crawl of the account with o (its clock and logger filled in) through a
// client made with the extra options; a crawl that cannot start fails the test.
func (a *account) crawl(o extract.Options, extra ...datorama.Option) extract.Result {
	a.t.Helper()
	audit := extract.NewAudit()
	opts := append([]datorama.Option{datorama.WithGate(a.pool), datorama.WithClock(a.clk),
		datorama.WithObserver(audit), datorama.WithLogger(a.log)}, extra...)
	c, err := datorama.New(a.base, "", opts...)
	if err != nil {
		a.t.Fatal(err)
	}
	o.Clock, o.Logger = a.clk, a.log
	res, err := (&extract.Crawler{Client: c, Sink: a.store, Audit: audit, Pool: a.pool}).Run(context.Background(), o)
	if err != nil {
		a.t.Fatalf("crawl: %v", err)
	}
	return res
}
