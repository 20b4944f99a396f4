package e2e

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drextract/drextract/cli"
	"github.com/drextract/drextract/sim"
)

// TestSQLSandbox is issue 12's sandbox case, through the real CLI in-process against the
// simulator: SQL a person wrote (drextract query, a selection of selections_dir) reads
// the store's tables and nothing else. A query of /etc/passwd or of a token file is
// refused; a selection that would rename a stream to a file's content is refused before
// anything is sent; the statements an analyst types work; a statement that never ends is
// stopped at --timeout.
func TestSQLSandbox(t *testing.T) {
	ctx := context.Background()
	s := sim.New(sim.Options{Seed: 23, Workspaces: 1, Streams: 6, JobsPerStream: 5,
		PlatformLimit: unlimited, QueryLimit: unlimited, DailyQuota: unlimited, Logger: quietLogger()})
	srv := httptest.NewServer(http.StripPrefix("/base", s))
	defer srv.Close()

	dir := t.TempDir()
	t.Chdir(dir) // ./schedules.yaml (absent: the defaults), ./data and ./selections land here
	dataDir := filepath.Join(dir, "data")
	t.Setenv("DATORAMA_TOKEN", s.Tokens()[0])
	t.Setenv("DATORAMA_BASE_URL", srv.URL+"/base")
	const secret = "tok-file-content-51c0ffee"
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (code int, stdout, stderr string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code = cli.DoContext(ctx, append([]string{"--data-dir", dataDir}, args...), strings.NewReader(""), &out, &errOut)
		if strings.Contains(out.String()+errOut.String(), secret) {
			t.Errorf("%q printed the token file's content:\n%s%s", args, out.String(), errOut.String())
		}
		return code, out.String(), errOut.String()
	}
	if code, _, errOut := run("extract"); code != 0 {
		t.Fatalf("extract: exit %d\n%s", code, errOut)
	}

	t.Run("query cannot read files", func(t *testing.T) {
		for _, q := range []string{
			"select * from read_text('/etc/passwd')",
			"select content from read_text('" + tokenFile + "')",
			"select * from read_csv('" + tokenFile + "', header = false)",
			"select * from glob('/root/*')",
			"copy (select 1) to '" + filepath.Join(dir, "out.csv") + "'",
			"set enable_external_access = true",
			"attach '" + filepath.Join(dir, "other.duckdb") + "' as o",
		} {
			code, out, errOut := run("query", q)
			if code != cli.ExitUsage || !strings.Contains(errOut, "query refused: ") || out != "" {
				t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 2 and a refusal", q, code, out, errOut)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "out.csv")); err == nil {
			t.Error("COPY wrote a file")
		}
	})

	t.Run("a selection cannot send a file's content", func(t *testing.T) {
		sel := "-- description: renames a stream to the content of a file\n-- action: rename\n" +
			"SELECT id AS stream_id, (SELECT content FROM read_text('" + tokenFile + "')) AS name FROM streams ORDER BY id LIMIT 1\n"
		if err := os.MkdirAll(filepath.Join(dir, "selections"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "selections", "leak.sql"), []byte(sel), 0o644); err != nil {
			t.Fatal(err)
		}
		before := s.Calls().ByEndpoint
		for _, args := range [][]string{{"select", "leak"}, {"act", "leak"}, {"act", "leak", "--yes"}} {
			code, _, errOut := run(args...)
			if code != cli.ExitUsage || !strings.Contains(errOut, "selection leak refused: ") ||
				!strings.Contains(errOut, "reaches outside the store's tables") {
				t.Errorf("%q: exit %d, stderr %q; want exit 2 and the refusal", args, code, errOut)
			}
		}
		for ep, n := range s.Calls().ByEndpoint {
			if !strings.HasPrefix(ep, "GET ") && !strings.HasSuffix(ep, "/stats") && n != before[ep] {
				t.Errorf("%d calls to %s", n-before[ep], ep)
			}
		}
		for _, st := range s.Truth().Streams {
			if strings.Contains(string(st), secret) {
				t.Errorf("a stream holds the token file's content: %s", st)
			}
		}
	})

	t.Run("the statements an analyst types work", func(t *testing.T) {
		for _, q := range []string{
			"DESCRIBE jobs",
			"SHOW TABLES",
			"SUMMARIZE jobs",
			"EXPLAIN SELECT * FROM jobs WHERE status = 'FAILURE'",
			"FROM jobs LIMIT 5",
			"PIVOT jobs ON status USING count(*) GROUP BY stream_id",
			"WITH f AS (FROM jobs WHERE status = 'FAILURE') SELECT stream_id, count(*) FROM f GROUP BY ALL",
			"select status, count(*) from jobs group by 1",
		} {
			code, out, errOut := run("query", "--format", "csv", q)
			if code != 0 || strings.Count(out, "\n") < 2 {
				t.Errorf("%s: exit %d, stdout %q, stderr %q", q, code, out, errOut)
			}
		}
	})

	t.Run("a statement that never ends is stopped", func(t *testing.T) {
		code, out, errOut := run("query", "--timeout", "200ms",
			"WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r) SELECT count(*) FROM r WHERE i < 10")
		if code != cli.ExitFailure || !strings.HasSuffix(strings.TrimSpace(errOut), "timed out after 200ms") || out != "" {
			t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 ending with timed out after 200ms", code, out, errOut)
		}
		if code, _, errOut := run("query", "select count(*) from jobs"); code != 0 {
			t.Errorf("a query after the timeout: exit %d %s", code, errOut)
		}
	})
}
