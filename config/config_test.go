package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestValidFile(t *testing.T) {
	opts := testOptions()
	opts.LookupEnv = testEnv(map[string]string{"DRX_TEST_TOKEN": testTokenValue, "DRX_TEST_TOKEN_B": "tok-b"})
	c, err := LoadWithOptions("testdata/valid.yaml", opts)
	if err != nil {
		t.Fatalf("LoadWithOptions: %v", err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %v", c.Warnings)
	}
	check := func(what string, got, want any) {
		t.Helper()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %#v, want %#v", what, got, want)
		}
	}
	check("Path", c.Path, "testdata/valid.yaml")
	check("API.BaseURL (from region eu2)", c.API.BaseURL, "https://api-eu2.datorama.com")
	check("API.Sandbox", c.API.Sandbox, true)
	check("API.Tokens", c.API.Tokens, []TokenSource{{Env: "DRX_TEST_TOKEN"}, {Env: "DRX_TEST_TOKEN_B"}})
	check("DuckDBPath", c.Store.DuckDBPath(), "/var/lib/drextract/live/store/main.duckdb")
	check("ServingPath (default name)", c.Store.ServingPath(), "/var/lib/drextract/serving.duckdb")
	check("ParquetDir (default name)", c.Store.ParquetDir(), "/var/lib/drextract/parquet")
	check("Share", c.Store.Share, "all")
	check("Budget (explicit zero reserve kept, other limits defaulted)", c.Budget, Budget{Reserve: 0, PlatformLimit: 60, QueryLimit: 10, DailyQuota: 20000})
	check("SelectionsDir (relative to the file)", c.SelectionsDir, filepath.Join("testdata", "my-selections"))

	if len(c.Reports) != 2 {
		t.Fatalf("%d reports, want 2", len(c.Reports))
	}
	r := c.Reports[0]
	from, to, ok := r.DateRange.Fixed()
	check("june-spend fixed range", []any{from, to, ok}, []any{time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2021, 6, 30, 0, 0, 0, 0, time.UTC), true})
	check("june-spend sort (order normalised)", *r.Sort, Sort{By: "Cost", Order: "ASC"})
	check("june-spend mode", r.Mode, ModeAppend)
	check("june-spend filters (passed through)", r.Filters, []map[string]any{{"dimension": "Data Source", "operator": "IN", "vals": []any{"Facebook Ads", "Google Ads"}}})
	m, ok := c.Report("month-rows")
	if !ok {
		t.Fatal(`Report("month-rows") not found`)
	}
	check("month-rows", *m, Report{Name: "month-rows", Workspace: 1, DateRange: DateRange{Preset: "THIS_MONTH"}, Timezone: "Europe/Paris",
		Dimensions: []string{"Data Stream"}, Measurements: []string{"Data Stream Total Rows"}, Table: "report_month_rows", Mode: ModeReplace})
	if _, _, ok := m.DateRange.Fixed(); ok {
		t.Error("a preset range reports itself as fixed")
	}

	kinds := map[string]string{}
	for _, s := range c.Schedules {
		kinds[s.Name] = s.Kind()
	}
	check("kinds", kinds, map[string]string{"everything-hourly": "extract", "full-sunday": "extract", "names-check": "action", "export": "export", "spend": "report"})
	eh, _ := c.Schedule("everything-hourly")
	check("merged cron", eh.Cron, "0 * * * *")
	check("merged concurrency", eh.Concurrency, ConcurrencySkip)
	check("entities of an empty extract", eh.Extract.entitiesOrAll(), Entities)
	fs, _ := c.Schedule("full-sunday")
	check("full-sunday", []any{fs.MaxCalls, fs.Extract.Full, fs.Extract.entitiesOrAll(), fs.Concurrency}, []any{15000, true, []string{"workspaces", "streams"}, ConcurrencyQueue})
	nc, _ := c.Schedule("names-check")
	check("action", *nc.Action, Action{Selection: "names-not-matching", Params: map[string]string{"pattern": "^[A-Z]{2}_", "limit": "50"}})
	sp, _ := c.Schedule("spend")
	check("report ref", *sp.Report, ReportRef{Name: "june-spend"})
}

func TestNext(t *testing.T) {
	c, err := LoadWithOptions("testdata/valid.yaml", ValidateOptions{KnownSelections: testOptions().KnownSelections})
	if err != nil {
		t.Fatal(err)
	}
	repo, err := LoadWithOptions("../schedules.yaml", ValidateOptions{KnownSelections: testOptions().KnownSelections})
	if err != nil {
		t.Fatal(err)
	}
	utc := func(y int, mo time.Month, d, h, mi int) time.Time { return time.Date(y, mo, d, h, mi, 0, 0, time.UTC) }
	cases := []struct {
		cfg        *Config
		name       string
		after, now time.Time
	}{
		{c, "everything-hourly", utc(2024, 3, 6, 10, 30), utc(2024, 3, 6, 11, 0)},
		{c, "everything-hourly", utc(2024, 3, 6, 11, 0), utc(2024, 3, 6, 12, 0)}, // strictly after
		// 03:00 New York on the Sunday clocks go forward is 07:00 UTC (EDT).
		{c, "full-sunday", utc(2024, 3, 6, 0, 0), utc(2024, 3, 10, 7, 0)},
		{c, "full-sunday", utc(2024, 1, 3, 0, 0), utc(2024, 1, 7, 8, 0)}, // EST
		{c, "names-check", utc(2024, 1, 1, 12, 0), utc(2024, 1, 2, 0, 0)},
		{c, "export", utc(2024, 3, 8, 23, 50), utc(2024, 3, 11, 23, 45)}, // Friday → Monday
		{c, "spend", utc(2024, 2, 1, 8, 0), utc(2024, 3, 1, 8, 0)},
		{repo, "jobs-hourly", utc(2024, 7, 1, 0, 5), utc(2024, 7, 1, 1, 5)},
		{repo, "rerun-failed-morning", utc(2024, 7, 1, 0, 0), utc(2024, 7, 1, 5, 0)},   // CEST
		{repo, "rerun-failed-morning", utc(2024, 12, 1, 0, 0), utc(2024, 12, 1, 6, 0)}, // CET
		{repo, "metadata-daily", utc(2024, 7, 1, 3, 0), utc(2024, 7, 2, 2, 30)},
	}
	for _, tc := range cases {
		s, ok := tc.cfg.Schedule(tc.name)
		if !ok {
			t.Fatalf("no schedule %q", tc.name)
		}
		if got := s.Next(tc.after); !got.Equal(tc.now) {
			t.Errorf("%s.Next(%v) = %v, want %v", tc.name, tc.after, got.UTC(), tc.now)
		}
	}

	// A Schedule built in code (serve's tests do this) parses its cron on demand.
	built := &Schedule{Name: "x", Cron: "TZ=UTC */15 * * * *"}
	if got, want := built.Next(utc(2024, 1, 1, 0, 7)), utc(2024, 1, 1, 0, 15); !got.Equal(want) {
		t.Errorf("unloaded schedule Next = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "61 * * * *", "TZ=Europe/Paris", "TZ=Nowhere 0 7 * * *", "0 0 30 2 *", "@every 5m"} {
		if got := (&Schedule{Cron: bad}).Next(utc(2024, 1, 1, 0, 0)); !got.IsZero() {
			t.Errorf("Next of invalid cron %q = %v, want the zero time", bad, got)
		}
	}
}

// TestRepoSchedulesFile checks the documented example at the repository root: valid with
// DATORAMA_TOKEN set, every selection a real built-in, and every schema section present.
func TestRepoSchedulesFile(t *testing.T) {
	opts := ValidateOptions{CheckTokens: true, LookupEnv: testEnv(map[string]string{EnvToken: testTokenValue})}
	c, err := LoadWithOptions("../schedules.yaml", opts)
	if err != nil {
		t.Fatalf("the repository's schedules.yaml is invalid:\n%v", err)
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings: %v", c.Warnings)
	}
	if got, want := len(c.Schedules), 6; got != want {
		t.Errorf("%d schedules, want %d", got, want)
	}
	if r, ok := c.Schedule("rerun-failed-hourly"); !ok || r.After != "jobs-hourly" || r.When != WhenOK || r.Cron != "" {
		t.Errorf("the example should show a chained schedule: %+v", r)
	}
	kinds := map[string]bool{}
	for _, s := range c.Schedules {
		kinds[s.Kind()] = true
		if s.Action != nil && !defaultSelections(c.SelectionsDir).has(s.Action.Selection) {
			t.Errorf("schedule %s uses %q, which is not a built-in selection", s.Name, s.Action.Selection)
		}
	}
	if len(kinds) != 4 {
		t.Errorf("the example should show every run kind, shows %v", kinds)
	}
	if len(c.Reports) != 1 || c.API.BaseURL != DefaultBaseURL || c.Store.DuckDBPath() != filepath.Join("..", "data", "live", "datorama.duckdb") {
		t.Errorf("unexpected example: %d reports, base URL %s, store %s", len(c.Reports), c.API.BaseURL, c.Store.DuckDBPath())
	}
	// Without the variable, config check must fail on exactly that.
	opts.LookupEnv = testEnv(nil)
	_, err = LoadWithOptions("../schedules.yaml", opts)
	if es := AsErrors(err); len(es) != 1 || !errors.Is(err, ErrMissingToken) || !strings.Contains(err.Error(), EnvToken) {
		t.Errorf("without %s: %v, want one ErrMissingToken naming it", EnvToken, err)
	}
}

func TestDefaultSelections(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mine.sql"), []byte("select 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "folder.sql"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := defaultSelections(dir)
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"failed-jobs-24h", true}, {"failed-streams", true}, {"stale-streams-7d", true}, {"names-not-matching", true},
		{"mine", true}, {"folder", false}, {"nope", false}, {"../" + filepath.Base(dir) + "/mine", false}, {".hidden", false},
	} {
		if got := s.has(tc.name); got != tc.want {
			t.Errorf("has(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestMultipleErrors: a file with several mistakes lists all of them, one per line, in
// line order, each naming its own line.
func TestMultipleErrors(t *testing.T) {
	_, err := LoadWithOptions("testdata/multi.yaml", testOptions())
	es := AsErrors(err)
	want, rerr := os.ReadFile("testdata/multi.want")
	if *update {
		rerr = os.WriteFile("testdata/multi.want", []byte(err.Error()+"\n"), 0o644)
		want = []byte(err.Error() + "\n")
	}
	if rerr != nil {
		t.Fatal(rerr)
	}
	if got := err.Error(); got != strings.TrimSuffix(string(want), "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", got, want)
	}
	if len(es) < 6 {
		t.Fatalf("%d errors, want every mistake of the file", len(es))
	}
	for i := 1; i < len(es); i++ {
		if es[i].Line < es[i-1].Line {
			t.Errorf("errors out of line order: %v before %v", es[i-1], es[i])
		}
	}
	for _, kind := range []error{ErrInvalidCron, ErrUnknownEntity, ErrDuplicateName, ErrRunKind, ErrBadDateRange, ErrUnknownReport} {
		if !errors.Is(err, kind) {
			t.Errorf("errors.Is(err, %v) = false", kind)
		}
	}
}

func TestStructuralErrorsAreAllReported(t *testing.T) {
	src := "version: 1\nbudjet: {}\napi:\n  sandbox: 1\n  regoin: us2\nschedules:\n  - name: a\n    cron: [1]\n    max_calls: 2.5\n"
	_, err := Parse("x.yaml", []byte(src), testOptions())
	want := []string{
		`x.yaml:2: budjet: unknown key "budjet" (known keys: version, api, store, budget, selections_dir, sql_timeout, reports, schedules, notify, publish)`,
		`x.yaml:4: api.sandbox: want true or false, got an integer`,
		`x.yaml:5: api.regoin: unknown key "regoin" (known keys: base_url, region, sandbox, tokens)`,
		`x.yaml:8: schedules[0].cron: want a string, got a list`,
		`x.yaml:9: schedules[0].max_calls: want an integer, got a number`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("got:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

func TestBaseURL(t *testing.T) {
	cases := []struct {
		name, api string
		env       map[string]string
		want      string
	}{
		{"base_url wins over region", "base_url: http://127.0.0.1:8080/base\n  region: eu", nil, "http://127.0.0.1:8080/base"},
		{"region", "region: us2", nil, "https://api-us2.datorama.com"},
		{"region wins over the environment", "region: eu", map[string]string{EnvBaseURL: "http://sim"}, "https://api-eu.datorama.com"},
		{"environment", "sandbox: false", map[string]string{EnvBaseURL: "http://sim:9/x"}, "http://sim:9/x"},
		{"default", "sandbox: false", nil, DefaultBaseURL},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse("s.yaml", []byte("version: 1\napi:\n  "+tc.api+"\n"), ValidateOptions{LookupEnv: testEnv(tc.env)})
			if err != nil {
				t.Fatal(err)
			}
			if c.API.BaseURL != tc.want {
				t.Errorf("BaseURL = %q, want %q", c.API.BaseURL, tc.want)
			}
		})
	}
	for _, bad := range []string{"ftp://x", "api.datorama.com", "https://api.datorama.com/v1", "https://u:p@host"} {
		_, err := Parse("s.yaml", []byte("version: 1\napi:\n  base_url: "+bad+"\n"), ValidateOptions{})
		if !errors.Is(err, ErrBadValue) || strings.Contains(err.Error(), "u:p") {
			t.Errorf("base_url %q: %v, want ErrBadValue (without credentials)", bad, err)
		}
	}
}

func TestDefault(t *testing.T) {
	t.Setenv(EnvBaseURL, "")
	c := Default()
	if c.API.BaseURL != DefaultBaseURL || c.Store.DuckDBPath() != filepath.Join("data", "live", "datorama.duckdb") ||
		c.Budget.Reserve != 0.10 || c.Budget.DailyQuota != 20000 || len(c.Schedules) != 0 {
		t.Errorf("Default() = %+v", c)
	}
	if err := c.Validate(ValidateOptions{}); err != nil {
		t.Errorf("Default() is invalid: %v", err)
	}
	t.Setenv(EnvBaseURL, "http://127.0.0.1:9999/base")
	if got := Default().API.BaseURL; got != "http://127.0.0.1:9999/base" {
		t.Errorf("Default().API.BaseURL = %q with %s set", got, EnvBaseURL)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "schedules.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
	if AsErrors(err) != nil {
		t.Errorf("a missing file is not a validation error: %v", err)
	}
}

// TestAliasBombs: anchors that expand exponentially are refused quickly, before the
// decoder (which would expand them) sees them.
func TestAliasBombs(t *testing.T) {
	lists := "version: 1\nx-a: &a [1,1,1,1,1,1,1,1,1,1]\nx-b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nx-c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n" +
		"x-d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\nx-e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nx-f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
	merges := "version: 1\nx-a: &a {cron: '5 * * * *'}\n"
	prev := "a"
	for _, n := range []string{"b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z"} {
		merges += fmt.Sprintf("x-%s: &%s {<<: [*%s, *%s, *%s]}\n", n, n, prev, prev, prev)
		prev = n
	}
	for _, tc := range []struct {
		name, src string
		kind      error
	}{
		{"lists into strings", lists + "reports:\n  - name: r\n    dimensions: [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]\n", ErrSyntax},
		{"lists into filters", lists + "reports:\n  - name: r\n    filters: [{x: *f}, {y: *f}]\n", ErrSyntax},
		// Lists of merges are refused outright (the decoder cannot merge them into a
		// schedule, and would expand them exponentially under x- keys).
		{"merges", merges + "schedules:\n  - {<<: *z, name: s, export: {}}\n", ErrBadType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := Parse("bomb.yaml", []byte(tc.src), ValidateOptions{})
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v (err %v)", d, err)
			}
			if !errors.Is(err, tc.kind) {
				t.Errorf("err = %v, want %v", err, tc.kind)
			}
		})
	}
}

func TestSQLTimeout(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"", "1m0s"},
		{"sql_timeout: 90s\n", "1m30s"},
		{"sql_timeout: 250ms\n", "250ms"},
		{"sql_timeout: 2h\n", "2h0m0s"},
	} {
		src := "version: 1\napi:\n  tokens:\n    - env: DRX_TEST_TOKEN\n" + tc.line
		c, err := Parse("x.yaml", []byte(src), testOptions())
		if err != nil {
			t.Errorf("%q: %v", tc.line, err)
			continue
		}
		if got := c.SQLTimeoutDuration().String(); got != tc.want {
			t.Errorf("%q: SQLTimeoutDuration = %s, want %s", tc.line, got, tc.want)
		}
	}
}
