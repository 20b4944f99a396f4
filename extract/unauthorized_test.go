package extract

import (
	"context"
	"strings"
	"testing"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// A token the API refuses stops the whole crawl as failed, naming the 401, and leaves
// what is stored untouched: a refused listing proves nothing about what exists.
func TestRefusedTokenFailsTheCrawl(t *testing.T) {
	e := newEnv(t, sim.Options{Seed: 5, Workspaces: 2, Streams: 8, JobsPerStream: 5})
	e.crawl(Options{Full: true})
	before := e.queryInt(`SELECT count(*) FROM streams WHERE NOT is_deleted`)
	if before == 0 {
		t.Fatal("the first crawl stored no streams")
	}

	c, err := datorama.New(e.baseURL, "dato-api-not-a-token-of-this-account",
		datorama.WithClock(e.clk), datorama.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	cr := &Crawler{Client: c, Sink: e.store, Audit: NewAudit()}
	res, err := cr.Run(context.Background(), Options{Full: true, Clock: e.clk, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	err = res.Err
	if err == nil || res.Status != load.RunFailed {
		t.Fatalf("crawl with a refused token: status %q, err %v; want failed with an error", res.Status, err)
	}
	if !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "refused the token") {
		t.Errorf("error %q does not say the token was refused (401)", err)
	}
	if strings.Contains(err.Error(), "not-a-token") {
		t.Errorf("error %q contains the token", err)
	}
	if after := e.queryInt(`SELECT count(*) FROM streams WHERE NOT is_deleted`); after != before {
		t.Errorf("live streams went from %d to %d after a refused crawl", before, after)
	}
}
