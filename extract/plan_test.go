package extract

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

func TestPlanMatchesTheNextRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sim.Options{Seed: 61, Workspaces: 3, Streams: 45, JobsPerStream: 25, MaxPageSize: 10})
	ctx := context.Background()

	p, err := e.crawler.Plan(ctx, Options{Clock: e.clk})
	if err != nil {
		t.Fatal(err)
	}
	if p.Crawled || p.Calls != 1 {
		t.Errorf("plan of an empty store: crawled %v, %d calls; want only the workspace list", p.Crawled, p.Calls)
	}
	if res := e.crawl(Options{}); res.Status != load.RunOK {
		t.Fatalf("full crawl: %s", res.Status)
	}

	steps := []struct {
		name    string
		advance time.Duration
	}{
		{"nothing changed", 0},
		{"three hours of runs", 3 * time.Hour},
		{"a day later: workspace lists due", 24 * time.Hour},
	}
	for _, st := range steps {
		e.sim.Advance(st.advance)
		before := e.sim.Calls().Total
		p, err := e.crawler.Plan(ctx, Options{Clock: e.clk})
		if err != nil {
			t.Fatal(err)
		}
		if got := e.sim.Calls().Total - before; got != 0 {
			t.Errorf("%s: Plan made %d API calls", st.name, got)
		}
		var out bytes.Buffer
		if err := p.Write(&out); err != nil {
			t.Fatal(err)
		}
		res := e.crawl(Options{})
		if res.Status != load.RunOK {
			t.Fatalf("%s: crawl %s %v", st.name, res.Status, res.Incomplete)
		}
		t.Logf("%s: plan %d..%d, run made %d\n%s", st.name, p.Calls, p.UpTo, res.Calls, out.String())
		if res.Calls < p.Calls || res.Calls > p.UpTo {
			t.Errorf("%s: the run made %d calls; the plan said %d, up to %d", st.name, res.Calls, p.Calls, p.UpTo)
		}
		if !strings.Contains(out.String(), "total") {
			t.Errorf("plan output lacks the total:\n%s", out.String())
		}
	}
}

func TestPlanComparesWithTheQuota(t *testing.T) {
	cases := []struct {
		quota QuotaStatus
		known bool
		want  string
	}{
		{QuotaStatus{}, false, "quota: unknown"},
		{QuotaStatus{Limit: 20000, Remaining: 19000}, true, "fits in today's remaining 19000 of 20000"},
		{QuotaStatus{Limit: 20000, Remaining: 150}, true, "the certain calls fit"},
		{QuotaStatus{Limit: 20000, Remaining: 50}, true, "needs more than today's remaining 50"},
	}
	for _, tc := range cases {
		p := Plan{Calls: 100, UpTo: 200, Quota: tc.quota, QuotaKnown: tc.known,
			Entities: []EntityPlan{{Entity: "jobs", Calls: 100, UpTo: 200}}}
		var out bytes.Buffer
		if err := p.Write(&out); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("quota %+v: output lacks %q:\n%s", tc.quota, tc.want, out.String())
		}
	}
}
