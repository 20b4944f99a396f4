package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/postgres"
	"github.com/drextract/drextract/postgres/pgtest"
)

// Debian's python3 (with python3-psycopg2 and python3-sqlalchemy) and node-postgres, as
// .ci/run installs them; this machine's python3 on PATH may be another build.
const (
	debianPython = "/usr/bin/python3"
	// NodeModulesEnv names the folder holding node_modules/pg; .ci/run installs it into
	// defaultNodeDir.
	nodeModulesEnv = "DRX_NODE_MODULES"
)

func defaultNodeDir() string {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "drextract-ci", "node", "node_modules")
}

// missingClient fails the test (CI must run it) unless the developer set
// DRX_SKIP_POSTGRES=1.
func missingClient(t *testing.T, what string) {
	t.Helper()
	msg := what + " is not installed: run .ci/run (it installs postgresql, python3-psycopg2, python3-sqlalchemy, nodejs and npm's pg)"
	if os.Getenv(pgtest.SkipEnv) == "1" {
		t.Skip(msg)
	}
	t.Fatal(msg + "; or set " + pgtest.SkipEnv + "=1 to skip")
}

// Clients nobody here wrote read the published schema: psql, psycopg2 with SQLAlchemy's
// inspector (what Superset uses to list tables and columns), and node-postgres. Each
// runs a query, and what it gets equals the store.
func TestClientsReadThePublishedSchema(t *testing.T) {
	f := newFixture(t)
	a := newAccount()
	a.setStatus(100, 0, "FAILURE")
	a.addJob(101, "IN_PROGRESS")
	run := f.crawl(f.store, a)
	f.publish(f.store, "datorama", postgres.Options{Run: run})
	wantByStatus := map[string]int64{}
	rows, err := f.store.DB().Query(`SELECT status, count(*) FROM jobs WHERE NOT is_deleted GROUP BY status`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		var n int64
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		wantByStatus[s] = n
	}
	rows.Close()
	env := append(os.Environ(), "PGHOST=127.0.0.1", "PGPORT="+strconv.Itoa(f.pg.Port), "PGUSER="+pgtest.User,
		"PGPASSWORD="+f.pg.Password, "PGDATABASE="+f.db, "PGSSLMODE=disable", "PGCONNECT_TIMEOUT=60")
	run2 := func(t *testing.T, name string, args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = env
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
		}
		return out
	}

	t.Run("psql", func(t *testing.T) {
		out, err := f.pg.Psql(f.ctx, f.db, "", "-At", "-F", " ", "-c",
			"SELECT status, count(*) FROM datorama.jobs WHERE NOT is_deleted GROUP BY status ORDER BY status")
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for s, n := range wantByStatus {
			want = append(want, fmt.Sprintf("%s %d", s, n))
		}
		slices.Sort(want)
		if got := strings.TrimSpace(out); got != strings.Join(want, "\n") {
			t.Errorf("psql: %q, want %q", got, strings.Join(want, "\n"))
		}
		out, err = f.pg.Psql(f.ctx, f.db, "", "-c", `\d+ datorama.jobs_enriched`)
		if err != nil || !strings.Contains(out, "rows_retrieved") || !strings.Contains(out, "Retrieved N rows") {
			t.Errorf("psql \\d+ shows no described rows_retrieved column (%v):\n%s", err, out)
		}
	})

	t.Run("python psycopg2 and SQLAlchemy", func(t *testing.T) {
		if _, err := os.Stat(debianPython); err != nil {
			missingClient(t, debianPython)
		}
		if err := exec.Command(debianPython, "-c", "import psycopg2, sqlalchemy").Run(); err != nil {
			missingClient(t, "python3-psycopg2 or python3-sqlalchemy")
		}
		out := run2(t, debianPython, filepath.Join("testdata", "clients", "check.py"), "datorama")
		var got struct {
			JobsByStatus   map[string]int64 `json:"jobs_by_status"`
			JobsEnriched   int64            `json:"jobs_enriched"`
			RowsRetrieved  int64            `json:"rows_retrieved"`
			Tables, Views  []string
			JobsColumns    []struct{ Name, Type, Comment string } `json:"jobs_columns"`
			JobsComment    string                                 `json:"jobs_comment"`
			JobsPK         []string                               `json:"jobs_pk"`
			EnabledStreams int64                                  `json:"enabled_streams"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if !mapsEqual(got.JobsByStatus, wantByStatus) {
			t.Errorf("jobs by status %v, want %v", got.JobsByStatus, wantByStatus)
		}
		tables, err := f.store.PublishTables(f.ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tb := range tables {
			if !slices.Contains(got.Tables, tb.Name) {
				t.Errorf("the inspector does not list table %s: %v", tb.Name, got.Tables)
			}
		}
		for _, v := range []string{"freshness", "jobs_enriched", "stream_health"} {
			if !slices.Contains(got.Views, v) {
				t.Errorf("the inspector does not list view %s: %v", v, got.Views)
			}
		}
		types := map[string]string{}
		for _, c := range got.JobsColumns {
			types[c.Name] = c.Type
			if c.Comment == "" {
				t.Errorf("jobs.%s has no comment for the inspector", c.Name)
			}
		}
		for col, want := range map[string]string{"id": "BIGINT", "raw": "JSONB", "start_execution_time": "TIMESTAMP", "data_start_date": "DATE", "is_deleted": "BOOLEAN"} {
			if !strings.HasPrefix(types[col], want) {
				t.Errorf("jobs.%s is %q to SQLAlchemy, want %s", col, types[col], want)
			}
		}
		if got.JobsComment == "" || !slices.Equal(got.JobsPK, []string{"id"}) {
			t.Errorf("jobs: comment %q, primary key %v", got.JobsComment, got.JobsPK)
		}
		var wantRows, wantEnabled int64
		if err := f.store.DB().QueryRow(`SELECT coalesce(sum(rows_retrieved), 0), (SELECT count(*) FROM stream_health WHERE enabled) FROM jobs_enriched`).
			Scan(&wantRows, &wantEnabled); err != nil {
			t.Fatal(err)
		}
		if got.RowsRetrieved != wantRows || wantRows == 0 || got.EnabledStreams != wantEnabled {
			t.Errorf("rows retrieved %d, enabled streams %d; the store says %d, %d", got.RowsRetrieved, got.EnabledStreams, wantRows, wantEnabled)
		}
	})

	t.Run("node-postgres", func(t *testing.T) {
		node, err := exec.LookPath("node")
		if err != nil {
			missingClient(t, "node")
		}
		dir := os.Getenv(nodeModulesEnv)
		if dir == "" {
			dir = defaultNodeDir()
		}
		if _, err := os.Stat(filepath.Join(dir, "pg", "package.json")); err != nil {
			missingClient(t, "npm's pg (in "+dir+")")
		}
		env = append(env, "NODE_PATH="+dir)
		out := run2(t, node, filepath.Join("testdata", "clients", "check.js"), "datorama")
		var got struct {
			JobsByStatus        map[string]int64 `json:"jobs_by_status"`
			Freshness           map[string]int64 `json:"freshness"`
			StreamHealthComment string           `json:"stream_health_comment"`
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if !mapsEqual(got.JobsByStatus, wantByStatus) {
			t.Errorf("jobs by status %v, want %v", got.JobsByStatus, wantByStatus)
		}
		if got.Freshness[load.Jobs] != run || got.Freshness[load.Streams] != run {
			t.Errorf("freshness %v, want the last ok run %d for jobs and streams", got.Freshness, run)
		}
		if !strings.Contains(got.StreamHealthComment, "per stream") {
			t.Errorf("stream_health's comment: %q", got.StreamHealthComment)
		}
	})
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
