package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to read PostgreSQL like the store

	"github.com/drextract/drextract/extract"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/postgres"
	"github.com/drextract/drextract/postgres/pgtest"
	"github.com/drextract/drextract/sim"
)

// TestPostgresEqualsTruth is issue 13's acceptance test: a full crawl of a simulated
// account, published into a PostgreSQL schema; an hour of simulated time; an incremental
// crawl, published. After each publish, PostgreSQL's current-state tables equal the
// simulator's truth, and every published table and view equals the store. The hourly
// publish sends only the rows its run wrote.
func TestPostgresEqualsTruth(t *testing.T) {
	ctx := context.Background()
	a := newAccount(t, sim.Options{Seed: 1301, Workspaces: 3, Streams: 60, MaxPageSize: 10})
	s, store, clk := a.sim, a.store, a.clk

	pg := pgtest.Start(t)
	db := pg.Database(t)
	target := postgres.Target{DSN: pg.KeyValueDSN(db), Schema: "datorama"}
	conn, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// The same snapshot reader as the store's, over database/sql, in the published schema.
	pgDB, err := sql.Open("pgx", pg.DSN(db)+"&search_path=datorama")
	if err != nil {
		t.Fatal(err)
	}
	defer pgDB.Close()

	crawl := func(full bool) extract.Result {
		t.Helper()
		res := a.crawl(extract.Options{Full: full})
		if res.Status != load.RunOK {
			t.Fatalf("crawl (full %v): %s %v %v", full, res.Status, res.Incomplete, res.Err)
		}
		return res
	}
	publish := func(run int64) postgres.Stats {
		t.Helper()
		st, err := postgres.Publish(ctx, store, target, postgres.Options{Run: run, Logger: a.log})
		if err != nil {
			t.Fatalf("publish after run %d: %v", run, err)
		}
		return st
	}
	check := func(when string) {
		t.Helper()
		assertEqual(t, "PostgreSQL "+when, storeSnapshot(t, pgDB), truthSnapshot(t, s.Truth()))
		diffs, err := pgtest.Diff(ctx, store, conn, "datorama")
		if err != nil {
			t.Fatal(err)
		}
		if len(diffs) > 0 {
			t.Errorf("PostgreSQL %s differs from the store:\n  %s", when, strings.Join(diffs, "\n  "))
		}
	}

	first := crawl(true)
	st := publish(first.RunID)
	if !st.Full {
		t.Error("the first publish was not a full one")
	}
	check("after the full crawl")
	if t.Failed() {
		t.FailNow()
	}

	// An hour passes: jobs run and finish, streams change. The hourly crawl and publish.
	clk.Advance(time.Hour)
	s.Advance(time.Hour)
	second := crawl(false)
	st = publish(second.RunID)
	if st.Full {
		t.Error("the hourly publish was a full one")
	}
	check("after the incremental crawl")

	// It sent exactly the rows the run wrote: for every stamped table the rows stamped
	// with the run, which is fewer than the table holds.
	var total int64
	for _, table := range extract.Entities {
		var written, all int64
		if err := store.DB().QueryRow(fmt.Sprintf(`SELECT count(*) FILTER (WHERE run_id = $1), count(*) FROM %s`, table), second.RunID).
			Scan(&written, &all); err != nil {
			t.Fatal(err)
		}
		ts := st.Table(table)
		if ts.Sent != written {
			t.Errorf("%s: the hourly publish sent %d rows, the run wrote %d", table, ts.Sent, written)
		}
		if table == load.Jobs && written >= all {
			t.Errorf("jobs: the hourly run wrote all %d jobs; the test shows nothing about incremental publishing", all)
		}
		total += all
		t.Logf("%-24s sent %6d, written by the run %6d (runs.rows %6d), in the table %6d", table, ts.Sent, written, ts.Written, all)
	}
	var pgSerial int64
	if err := conn.QueryRow(ctx, `SELECT serial FROM datorama.drextract_publish`).Scan(&pgSerial); err != nil || pgSerial != 2 {
		t.Errorf("PostgreSQL's publish serial %d (%v), want 2", pgSerial, err)
	}
	var status string
	if err := conn.QueryRow(ctx, `SELECT publish_status FROM datorama.runs WHERE id = $1`, second.RunID).Scan(&status); err != nil || status != load.PublishOK {
		t.Errorf("PostgreSQL says run %d's publish is %q (%v)", second.RunID, status, err)
	}
	if st.Sent() >= total {
		t.Errorf("the hourly publish sent %d rows, as many as the store holds (%d)", st.Sent(), total)
	}
}
