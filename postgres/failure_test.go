package postgres_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/postgres"
	"github.com/drextract/drextract/postgres/pgtest"
)

// The server is down when a run ends: the publish fails with an error that says so, the
// store keeps the crawl and records the failure on the run, and once the server is back
// the next publish catches up.
func TestPublishFailsWhileServerDownThenCatchesUp(t *testing.T) {
	f := newOwnFixture(t)
	a := newAccount()
	f.publish(f.store, "datorama", postgres.Options{Run: f.crawl(f.store, a)})

	a.addJob(100, "FAILURE")
	a.names[101] = "renamed while down"
	run2 := f.crawl(f.store, a)
	if err := f.pg.Stop(); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.Publish(f.ctx, f.store, f.target("datorama"), postgres.Options{Run: run2, Logger: f.logger()})
	var perr *postgres.Error
	if !errors.As(err, &perr) || perr.Step != "connecting" {
		t.Fatalf("publishing to a stopped server: %v, want a *postgres.Error at step connecting", err)
	}
	if err := f.store.RecordPublish(f.ctx, run2, load.PublishFailed, err.Error()); err != nil {
		t.Fatal(err)
	}
	var jobs int
	var status, pubStatus string
	if err := f.store.DB().QueryRow(`SELECT (SELECT count(*) FROM jobs), status, publish_status FROM runs WHERE id = $1`, run2).
		Scan(&jobs, &status, &pubStatus); err != nil {
		t.Fatal(err)
	}
	if jobs != 25 || status != load.RunOK || pubStatus != load.PublishFailed {
		t.Fatalf("after the failed publish the store has %d jobs, run %d %s, publish %s; want 25, ok, failed", jobs, run2, status, pubStatus)
	}

	if err := f.pg.Restart(); err != nil {
		t.Fatal(err)
	}
	st := f.publish(f.store, "datorama", postgres.Options{})
	if st.Full {
		t.Error("the catch-up publish was a full one; the serial had not moved, it should be incremental")
	}
	if got := st.Table("jobs").Sent; got != 25 {
		t.Errorf("the catch-up publish sent %d jobs, want the 25 run %d wrote", got, run2)
	}
	f.assertMirrors(f.store, "datorama", "after catching up")
	var pgStatus string
	if err := f.pgConn().QueryRow(f.ctx, `SELECT publish_status FROM datorama.runs WHERE id = $1`, run2).Scan(&pgStatus); err != nil || pgStatus != load.PublishFailed {
		t.Errorf("PostgreSQL says run %d's publish was %q (%v), want failed as recorded", run2, pgStatus, err)
	}
}

// A publish that fails halfway (a row PostgreSQL refuses) leaves PostgreSQL exactly as it
// was: one transaction. The next publish, once the obstacle is gone, sends it all.
func TestFailedPublishChangesNothing(t *testing.T) {
	f := newFixture(t)
	a := newAccount()
	f.publish(f.store, "datorama", postgres.Options{Run: f.crawl(f.store, a)})
	before := f.pgInt(`SELECT count(*) FROM datorama.jobs`)

	// Someone added a rule at the target that the new rows break.
	if _, err := f.pgConn().Exec(f.ctx, `ALTER TABLE datorama.jobs ADD CONSTRAINT no_failures CHECK (status <> 'FAILURE')`); err != nil {
		t.Fatal(err)
	}
	a.addJob(100, "FAILURE")
	a.names[100] = "renamed"
	run2 := f.crawl(f.store, a)
	_, err := postgres.Publish(f.ctx, f.store, f.target("datorama"), postgres.Options{Run: run2})
	var perr *postgres.Error
	if !errors.As(err, &perr) || !strings.Contains(perr.Step, "jobs") || !strings.Contains(err.Error(), "no_failures") {
		t.Fatalf("publish against the constraint: %v; want an error naming the table and the constraint", err)
	}
	if n := f.pgInt(`SELECT count(*) FROM datorama.jobs`); n != before {
		t.Errorf("PostgreSQL has %d jobs after the failed publish, had %d", n, before)
	}
	if n := f.pgInt(`SELECT count(*) FROM datorama.streams WHERE name = 'renamed'`); n != 0 {
		t.Error("the rename (a table published before jobs) reached PostgreSQL although the publish failed")
	}
	if n := f.pgInt(`SELECT serial FROM datorama.drextract_publish`); n != 1 {
		t.Errorf("PostgreSQL's publish serial is %d after the failed publish, want 1", n)
	}
	if _, err := f.pgConn().Exec(f.ctx, `ALTER TABLE datorama.jobs DROP CONSTRAINT no_failures`); err != nil {
		t.Fatal(err)
	}
	f.publish(f.store, "datorama", postgres.Options{})
	f.assertMirrors(f.store, "datorama", "after the obstacle was removed")
}

// The DSN's password never shows: not in errors (wrong password, server down, a DSN that
// does not parse, a failure inside the transaction), not in logs, not in the store.
func TestPasswordNeverShows(t *testing.T) {
	f := newOwnFixture(t)
	run := f.crawl(f.store, newAccount())
	const canary = "Canary-Pw-7f3a91"
	// A role whose password is the canary, so a right DSN holds it too.
	if _, err := f.pgConn().Exec(f.ctx, fmt.Sprintf(`CREATE ROLE publisher LOGIN PASSWORD '%s'; GRANT ALL ON DATABASE %s TO publisher`, canary, f.db)); err != nil {
		t.Fatal(err)
	}
	right := fmt.Sprintf("postgres://publisher:%s@127.0.0.1:%d/%s?sslmode=disable", canary, f.pg.Port, f.db)
	var outputs []string
	try := func(name, dsn string, wantErr bool) {
		t.Helper()
		st, err := postgres.Publish(f.ctx, f.store, postgres.Target{DSN: dsn, Schema: "datorama"}, postgres.Options{Run: run, Logger: f.logger()})
		if (err != nil) != wantErr {
			t.Fatalf("%s: error %v, want error %v", name, err, wantErr)
		}
		t.Logf("%s: %v", name, err)
		outputs = append(outputs, fmt.Sprintf("%v %+v %#v", err, st, st))
		if err != nil {
			outputs = append(outputs, fmt.Sprintf("%+v %#v %q", err, err, err))
			if err := f.store.RecordPublish(f.ctx, run, load.PublishFailed, err.Error()); err != nil {
				t.Fatal(err)
			}
		}
	}
	try("wrong user for the password", strings.Replace(right, "publisher:", "drx:", 1), true)
	try("wrong password", strings.Replace(right, canary, canary+"x", 1), true)
	try("key=value, wrong password", fmt.Sprintf("host=127.0.0.1 port=%d user=publisher password=%sx dbname=%s sslmode=disable", f.pg.Port, canary, f.db), true)
	try("does not parse", "postgres://publisher:"+canary+"@127.0.0.1:notaport/x", true)
	try("key=value does not parse", "host=127.0.0.1 port=%zz password="+canary, true)
	try("right", right, false)
	// A failure inside the transaction, with the right DSN: no rights on the tables.
	if _, err := f.pgConn().Exec(f.ctx, `REVOKE ALL ON ALL TABLES IN SCHEMA datorama FROM publisher; ALTER TABLE datorama.jobs OWNER TO drx`); err != nil {
		t.Fatal(err)
	}
	f.crawl(f.store, newAccount())
	try("no rights on the tables", right, true)
	if err := f.pg.Stop(); err != nil {
		t.Fatal(err)
	}
	try("server down", right, true)

	outputs = append(outputs, f.log.String(), storeText(t, f.store.DB()))
	for i, out := range outputs {
		if strings.Contains(out, canary) {
			t.Errorf("output %d holds the password: %.300s", i, out)
		}
		if strings.Contains(out, "publisher:"+canary) || strings.Contains(out, "password=") {
			t.Errorf("output %d holds the DSN: %.300s", i, out)
		}
	}
}

// storeText is every value of every table of the store as text.
func storeText(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT table_name FROM duckdb_tables() WHERE database_name = current_database()`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	var b strings.Builder
	for _, table := range tables {
		var s sql.NullString
		if err := db.QueryRow(fmt.Sprintf(`SELECT string_agg(CAST(t AS VARCHAR), '\n') FROM "%s" t`, table)).Scan(&s); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
		b.WriteString(s.String)
	}
	return b.String()
}

// libpq's connection settings reach the server as libpq would apply them, in a URL, in a
// key=value string and from the PG* environment: the test cluster speaks no TLS, so
// sslmode=require must fail and sslmode=disable (or prefer, libpq's default) must work.
func TestConnectionSettingsAreHonoured(t *testing.T) {
	f := newFixture(t)
	f.crawl(f.store, newAccount())
	noSSL := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s", pgtest.User, f.pg.Password, f.pg.Port, f.db)
	kv := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s", f.pg.Port, pgtest.User, f.pg.Password, f.db)
	for _, tt := range []struct {
		name, dsn string
		env       map[string]string
		wantErr   string // "" for success
	}{
		{name: "URL, sslmode=require", dsn: noSSL + "?sslmode=require", wantErr: "TLS"},
		{name: "key=value, sslmode=require", dsn: kv + " sslmode=require", wantErr: "TLS"},
		{name: "PGSSLMODE=require", dsn: noSSL, env: map[string]string{"PGSSLMODE": "require"}, wantErr: "TLS"},
		{name: "URL, target_session_attrs=standby", dsn: noSSL + "?target_session_attrs=standby", wantErr: "standby"},
		{name: "URL, sslmode=prefer", dsn: noSSL + "?sslmode=prefer"},
		{name: "key=value, sslmode=disable", dsn: kv + " sslmode=disable"},
		{name: "PGSSLMODE=disable", dsn: noSSL, env: map[string]string{"PGSSLMODE": "disable"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := postgres.Publish(f.ctx, f.store, postgres.Target{DSN: tt.dsn, Schema: "datorama"}, postgres.Options{Logger: f.logger()})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("publish: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("publish: %v, want an error about %s", err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), f.pg.Password):
				t.Fatalf("the error shows the password: %v", err)
			case err != nil:
				t.Log(err)
			}
		})
	}
	f.assertMirrors(f.store, "datorama", "after the publishes that connected")
}
