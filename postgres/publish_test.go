package postgres_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/postgres"
)

// A first publish copies everything; later ones send only what changed, deletions
// included, and after each PostgreSQL equals the store table by table and view by view.
func TestPublishMirrorsTheStore(t *testing.T) {
	f := newFixture(t)
	a := newAccount()
	run1 := f.crawl(f.store, a)

	st := f.publish(f.store, "datorama", postgres.Options{Run: run1})
	if !st.Full || st.Serial != 1 {
		t.Fatalf("first publish: full %v serial %d, want a full publish, serial 1", st.Full, st.Serial)
	}
	if got := st.Table("jobs").Sent; got != 24 {
		t.Errorf("first publish sent %d jobs, want 24", got)
	}
	f.assertMirrors(f.store, "datorama", "after the first publish")
	if s := f.pgInt(`SELECT count(*) FROM datorama.runs WHERE id = $1 AND publish_status = 'ok'`, run1); s != 1 {
		t.Errorf("run %d's publish_status in PostgreSQL is not ok", run1)
	}

	// A second run: one job finished as a failure, two new jobs, a renamed stream (a new
	// history version), a stream gone from its workspace's listing (marked deleted).
	a.setStatus(101, 0, "FAILURE")
	a.addJob(102, "IN_PROGRESS")
	a.addJob(201, "PENDING")
	a.names[200] = "renamed"
	a.streams[2] = a.streams[2][1:]
	a.streams[2] = append(a.streams[2], 200) // still there, renamed
	a.streams[1] = a.streams[1][:2]          // stream 102 disappears
	run2 := f.crawl(f.store, a)
	// Actions and reports are written outside the crawl's stamps.
	f.exec(f.store, `INSERT INTO action_runs (selection, source, operation, started, status) VALUES ('s', 'selection', 'rerun', $1, 'running')`, f.clk.Now())
	f.exec(f.store, `INSERT INTO action_items (action_run_id, operation, stream_id, status) VALUES (1, 'rerun', 101, 'sent'), (1, 'rerun', 200, 'sent')`)
	f.exec(f.store, `CREATE TABLE report_daily (report_run_id BIGINT NOT NULL, date_from DATE NOT NULL, date_to DATE NOT NULL,
		loaded_at TIMESTAMPTZ NOT NULL, date DATE, rows BIGINT)`)
	f.exec(f.store, `INSERT INTO report_runs (report, table_name, workspace, date_from, date_to, mode, started, status)
		VALUES ('daily', 'report_daily', 1, DATE '2026-03-01', DATE '2026-03-02', 'replace', now(), 'ok')`)
	f.exec(f.store, `INSERT INTO report_daily VALUES (1, DATE '2026-03-01', DATE '2026-03-02', now(), DATE '2026-03-01', 10),
		(1, DATE '2026-03-01', DATE '2026-03-02', now(), DATE '2026-03-02', 20)`)

	st = f.publish(f.store, "datorama", postgres.Options{Run: run2})
	if st.Full || st.Serial != 2 {
		t.Fatalf("second publish: full %v serial %d, want an incremental one, serial 2", st.Full, st.Serial)
	}
	// The crawl read the jobs of 5 streams (stream 102 was not listed): 4 each and a new
	// one of stream 201. All are stamped with run 2, changed or not, and only they are sent.
	if got, want := st.Table("jobs").Sent, int64(21); got != want {
		t.Errorf("second publish sent %d jobs, want %d", got, want)
	}
	if got := st.Table("jobs").Written; got != 21 {
		t.Errorf("runs.rows says run %d wrote %d jobs, want 21", run2, got)
	}
	if got := st.Table("action_items").Sent; got != 2 {
		t.Errorf("sent %d action items, want 2", got)
	}
	f.assertMirrors(f.store, "datorama", "after the second publish")

	// No run, but rows change: an action's outcome, a report replacing a day (a
	// deletion), a run row rewritten.
	f.exec(f.store, `UPDATE action_items SET outcome = 'succeeded' WHERE id = 1`)
	f.exec(f.store, `UPDATE action_runs SET status = 'ok'`)
	f.exec(f.store, `DELETE FROM report_daily WHERE date = DATE '2026-03-02'`)
	f.exec(f.store, `INSERT INTO report_runs (report, table_name, workspace, date_from, date_to, mode, started, status)
		VALUES ('daily', 'report_daily', 1, DATE '2026-03-02', DATE '2026-03-02', 'replace', now(), 'ok')`)
	f.exec(f.store, `INSERT INTO report_daily VALUES (2, DATE '2026-03-02', DATE '2026-03-02', now(), DATE '2026-03-02', 25)`)
	f.exec(f.store, `DELETE FROM action_items WHERE id = 2`)
	if err := f.store.RecordPublish(f.ctx, run1, load.PublishFailed, "serving copy: disk full"); err != nil {
		t.Fatal(err)
	}
	st = f.publish(f.store, "datorama", postgres.Options{})
	for table, want := range map[string]int64{"action_items": 1, "action_runs": 1, "report_daily": 2, "report_runs": 1, "runs": 1, "jobs": 0, "streams": 0} {
		if got := st.Table(table).Sent; got != want {
			t.Errorf("third publish sent %d rows of %s, want %d", got, table, want)
		}
	}
	if got := st.Table("action_items").Deleted; got != 1 {
		t.Errorf("third publish deleted %d action items, want 1", got)
	}
	f.assertMirrors(f.store, "datorama", "after the third publish")

	// Nothing changed: nothing is sent.
	st = f.publish(f.store, "datorama", postgres.Options{})
	if st.Sent() != 0 || st.Full {
		t.Errorf("a publish with nothing new sent %d rows (full %v): %+v", st.Sent(), st.Full, st.Tables)
	}
	// --full rewrites everything and comes to the same.
	st = f.publish(f.store, "datorama", postgres.Options{Full: true})
	if !st.Full || st.Table("jobs").Sent != 25 {
		t.Errorf("--full: full %v, %d jobs sent", st.Full, st.Table("jobs").Sent)
	}
	f.assertMirrors(f.store, "datorama", "after a full publish")
}

// The history's incremental rule, a version closed by a later run replacing the one
// PostgreSQL holds as current, holds over many runs and changes back and forth.
func TestPublishHistoryOverManyRuns(t *testing.T) {
	f := newFixture(t)
	a := newAccount()
	for i := range 6 {
		a.names[100] = fmt.Sprintf("name %d", i%2) // back and forth
		a.enabled[201] = i%3 != 0
		if i == 3 {
			a.streams[1] = a.streams[1][:2]
		}
		if i == 5 {
			a.streams[1] = append(a.streams[1], 102) // back again
		}
		run := f.crawl(f.store, a)
		f.publish(f.store, "datorama", postgres.Options{Run: run})
		f.assertMirrors(f.store, "datorama", fmt.Sprintf("after run %d", run))
	}
	if n := f.pgInt(`SELECT count(*) FROM datorama.streams_history WHERE id = 100`); n < 6 {
		t.Errorf("stream 100 has %d history versions in PostgreSQL, want one per change (6)", n)
	}
}

// Two stores publish side by side into two schemas of one database; a store may not
// publish into the other's schema.
func TestTwoStoresTwoSchemas(t *testing.T) {
	f := newFixture(t)
	other := f.openStore(t.TempDir() + "/other.duckdb")
	a, b := newAccount(), newAccount()
	b.names[100] = "only in b"
	f.publish(f.store, "account_a", postgres.Options{Run: f.crawl(f.store, a)})
	f.publish(other, "account_b", postgres.Options{Run: f.crawl(other, b)})
	f.assertMirrors(f.store, "account_a", "store a")
	f.assertMirrors(other, "account_b", "store b")
	if n := f.pgInt(`SELECT count(*) FROM account_b.streams WHERE name = 'only in b'`); n != 1 {
		t.Errorf("schema account_b has %d streams named 'only in b', want 1", n)
	}
	_, err := postgres.Publish(f.ctx, other, f.target("account_a"), postgres.Options{})
	if !errors.Is(err, postgres.ErrOtherStore) {
		t.Fatalf("publishing store b into store a's schema: %v, want ErrOtherStore", err)
	}
	f.assertMirrors(f.store, "account_a", "store a after store b was refused")
}

// A schema written by a newer drextract is refused with a message saying so.
func TestNewerSchemaRefused(t *testing.T) {
	for _, tc := range []struct{ name, set string }{
		{"layout", "layout = layout + 1"},
		{"store schema", "store_schema = store_schema + 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.publish(f.store, "datorama", postgres.Options{Run: f.crawl(f.store, newAccount())})
			if _, err := f.pgConn().Exec(f.ctx, "UPDATE datorama.drextract_publish SET "+tc.set); err != nil {
				t.Fatal(err)
			}
			_, err := postgres.Publish(f.ctx, f.store, f.target("datorama"), postgres.Options{})
			if !errors.Is(err, postgres.ErrSchemaTooNew) || !strings.Contains(err.Error(), "upgrade drextract") {
				t.Fatalf("publishing into a newer schema: %v, want ErrSchemaTooNew saying to upgrade", err)
			}
		})
	}
}

// A table dropped at the target comes back whole with the next incremental publish, and
// only it is sent whole: api_calls, whose rows are otherwise sent once, as appended.
func TestDroppedTableComesBackWhole(t *testing.T) {
	f := newFixture(t)
	a := newAccount()
	f.publish(f.store, "datorama", postgres.Options{Run: f.crawl(f.store, a)})
	if _, err := f.pgConn().Exec(f.ctx, `DROP TABLE datorama.api_calls`); err != nil {
		t.Fatal(err)
	}
	a.names[100] = "after the drop"
	run := f.crawl(f.store, a)
	f.clk.Advance(1)
	st := f.publish(f.store, "datorama", postgres.Options{Run: run})
	if st.Full {
		t.Error("the publish after the drop was a full one; only jobs needed sending whole")
	}
	if got := st.Table("api_calls").Sent; got != 2 {
		t.Errorf("sent %d API calls, want both runs' (2)", got)
	}
	f.assertMirrors(f.store, "datorama", "after the dropped table came back")
}
