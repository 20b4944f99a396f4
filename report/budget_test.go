package report

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/ratelimit"
	"github.com/drextract/drextract/sim"
)

// Acceptance: under a query limit of 10/min, on a virtual clock, 50 definitions run with
// zero 429s while a platform crawl runs at the same time within its own bucket, and both
// together stay within the daily quota with the reserve respected.
func TestFiftyReportsUnderQueryLimitBesidePlatformCalls(t *testing.T) {
	const (
		queryLimit    = 10
		platformLimit = 60
		quota         = 200
		reserve       = 0.25
		scheduledCap  = 150 // quota × (1 − reserve): what Scheduled calls may spend
		platformCalls = 60
	)
	// The simulator lets failed calls count too, the stricter of the two unknowns.
	o := sim.Options{Workspaces: 3, Streams: 9, JobsPerStream: 8, QueryLimit: queryLimit, PlatformLimit: platformLimit,
		DailyQuota: quota, CountFailedCalls: true}
	e := newEnv(t, o)
	budget := ratelimit.NewBudget(e.sim.Tokens()[0], ratelimit.Config{
		QueryLimit: queryLimit, PlatformLimit: platformLimit, DailyQuota: quota, Reserve: reserve,
		Clock: e.clk, Logger: quietLogger(),
	})
	c, err := datorama.New(e.baseURL, e.sim.Tokens()[0], datorama.WithGate(budget), datorama.WithClock(e.clk), datorama.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Client: c, Store: e.store, Clock: e.clk, Logger: quietLogger(), MaxBatch: 1, Parallel: 4}
	ws := e.workspaces()
	var defs []config.Report
	for i := range 50 {
		d := rowsPerStream(ws[i%len(ws)])
		d.Name, d.Table = fmt.Sprintf("r%02d", i), fmt.Sprintf("report_r%02d", i)
		if i%2 == 1 {
			d.Dimensions = []string{"Data Source"}
		}
		defs = append(defs, d)
	}
	ctx := ratelimit.WithPriority(context.Background(), ratelimit.Scheduled)
	start := e.clk.Now()

	var wg sync.WaitGroup
	var platformErr error
	var platformDone time.Time
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range platformCalls {
			if _, err := c.Workspaces.List(ctx); err != nil {
				platformErr = err
				return
			}
		}
		platformDone = e.clk.Now()
	}()
	res, err := r.Run(ctx, defs, Options{})
	reportsDone := e.clk.Now()
	wg.Wait()
	if err != nil {
		t.Fatalf("reports: %v", err)
	}
	if platformErr != nil {
		t.Fatalf("platform calls: %v", platformErr)
	}
	for _, x := range res {
		if x.Rows == 0 {
			t.Errorf("%s landed no rows", x.Report)
		}
	}
	calls := e.sim.Calls()
	if n := calls.ByStatus["429"]; n != 0 {
		t.Errorf("%d answers were 429", n)
	}
	if n := calls.ByEndpoint[queryEndpoint]; n != 50 {
		t.Errorf("%d query calls, want 50", n)
	}
	// 50 queries at 10 a minute take more than 4 minutes; the 60 platform calls, in their
	// own bucket, are not held behind them.
	if d := reportsDone.Sub(start); d < 4*time.Minute {
		t.Errorf("50 queries took %v of virtual time; the query limit was not honoured", d)
	}
	if d := platformDone.Sub(start); d > 2*time.Minute {
		t.Errorf("60 platform calls took %v; they waited on the query bucket", d)
	}

	// Now spend the rest as scheduled work: it must stop at the reserve, cleanly, and
	// leave the reserve to interactive calls.
	var quotaErr error
	for range quota {
		if _, quotaErr = c.Workspaces.List(ctx); quotaErr != nil {
			break
		}
	}
	if !errors.Is(quotaErr, datorama.ErrQuotaExhausted) {
		t.Fatalf("scheduled calls past the reserve: %v, want ErrQuotaExhausted", quotaErr)
	}
	calls = e.sim.Calls()
	if calls.Total > scheduledCap || calls.Total < scheduledCap-2 {
		t.Errorf("scheduled work made %d calls, want it to stop at the reserve (%d)", calls.Total, scheduledCap)
	}
	if _, err := c.Workspaces.List(ratelimit.WithPriority(context.Background(), ratelimit.Interactive)); err != nil {
		t.Errorf("an interactive call after scheduled work stopped: %v", err)
	}
	if n := e.sim.Calls().ByStatus["429"]; n != 0 {
		t.Errorf("%d answers were 429", n)
	}
	if n := e.sim.Calls().Total; n > quota {
		t.Errorf("%d calls, over the daily quota %d", n, quota)
	}
}
