package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/jackc/pgx/v5"

	"github.com/drextract/drextract/postgres/pgtest"
)

// publish, catalog and dbt-sources as a user runs them, with a publish section whose DSN
// holds a recognisable password that never shows.
func TestPublishCatalogDBTSourcesCommands(t *testing.T) {
	const password = "Pw-Canary-cli-4711"
	dir := qxStore(t, false)
	pg := pgtest.Start(t)
	db := pg.Database(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, pg.DSN(db))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf(`CREATE ROLE bi LOGIN PASSWORD '%s'; GRANT ALL ON DATABASE %s TO bi`, password, db)); err != nil {
		t.Fatal(err)
	}
	admin.Close(ctx)
	t.Setenv("DATORAMA_TOKEN", "tok-for-config-check")
	t.Setenv("DRX_TEST_PG_DSN", fmt.Sprintf("host=127.0.0.1 port=%d user=bi password=%s dbname=%s sslmode=disable", pg.Port, password, db))
	cfg := filepath.Join(t.TempDir(), "schedules.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`version: 1
store: {data_dir: %s}
publish:
  postgres:
    dsn: {env: DRX_TEST_PG_DSN}
    schema: bi
`, dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	var all []string
	run := func(args ...string) (int, string, string) {
		t.Helper()
		code, out, errOut := qxRun(dir, append([]string{"--config", cfg}, args...)...)
		all = append(all, out, errOut)
		return code, out, errOut
	}

	code, out, errOut := run("publish")
	if code != ExitOK || !strings.Contains(out, "published to PostgreSQL schema bi") || !strings.Contains(out, "full publish 1") {
		t.Fatalf("publish: exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "published "+filepath.Join(dir, "serving.duckdb")) {
		t.Errorf("publish did not refresh the serving copy:\n%s", out)
	}
	if line := lineWith(out, " jobs "); !strings.Contains(line, " 9 sent") {
		t.Errorf("jobs line %q, want 9 sent", line)
	}
	code, out, _ = run("publish")
	if code != ExitOK || !strings.Contains(out, "incremental publish 2, 0 rows sent") {
		t.Errorf("second publish: exit %d\n%s", code, out)
	}
	code, out, _ = run("publish", "--full")
	if code != ExitOK || !strings.Contains(out, "full publish 3, ") {
		t.Errorf("publish --full: exit %d\n%s", code, out)
	}
	code, out, errOut = run("config", "check")
	if code != ExitOK {
		t.Errorf("config check: exit %d\n%s\n%s", code, out, errOut)
	}

	code, out, errOut = run("catalog", "--format", "json")
	var described []struct {
		Name, Kind string
		Columns    []struct{ Name, Type, Description string }
	}
	if code != ExitOK || json.Unmarshal([]byte(out), &described) != nil {
		t.Fatalf("catalog --format json: exit %d, %q\n%s", code, errOut, out)
	}
	views := map[string]bool{}
	for _, d := range described {
		if d.Kind == "view" {
			views[d.Name] = true
		}
		for _, c := range d.Columns {
			if c.Description == "" {
				t.Errorf("catalog: %s.%s has no description", d.Name, c.Name)
			}
		}
	}
	if !views["jobs_enriched"] || !views["stream_health"] || !views["freshness"] {
		t.Errorf("catalog lists views %v", views)
	}
	if code, out, _ = run("catalog"); code != ExitOK || !strings.Contains(out, "### jobs_enriched") {
		t.Errorf("catalog: exit %d\n%.500s", code, out)
	}
	if code, _, _ = run("catalog", "--format", "xml"); code != ExitUsage {
		t.Errorf("catalog --format xml: exit %d, want %d", code, ExitUsage)
	}

	sources := filepath.Join(t.TempDir(), "sources.yml")
	if code, out, errOut = run("dbt-sources", "--out", sources); code != ExitOK {
		t.Fatalf("dbt-sources: exit %d\n%s\n%s", code, out, errOut)
	}
	body, err := os.ReadFile(sources)
	if err != nil {
		t.Fatal(err)
	}
	var dbt struct {
		Version int
		Sources []struct {
			Name, Schema string
			Tables       []struct{ Name string }
		}
	}
	if err := yaml.Unmarshal(body, &dbt); err != nil || dbt.Version != 2 || len(dbt.Sources) != 1 ||
		dbt.Sources[0].Schema != "bi" || len(dbt.Sources[0].Tables) < 20 {
		t.Errorf("dbt sources: %v %+v", err, dbt)
	}

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run("publish")
	if code != ExitFailure || !strings.Contains(errOut, "PostgreSQL: publishing to postgres:bi@pg_") || !strings.Contains(errOut, "connecting") {
		t.Errorf("publish with the server down: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, s := range all {
		if strings.Contains(s, password) || strings.Contains(s, "password=") {
			t.Errorf("the DSN shows: %s", s)
		}
	}
}

func lineWith(text, needle string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, needle) {
			return l
		}
	}
	return ""
}
