package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the .want files of testdata/broken")

// schemaSelections are the built-in selection names of the shared schema; tests use them
// instead of the embedded files, which the action package owns.
var schemaSelections = []string{"failed-jobs-24h", "failed-streams", "stale-streams-7d", "names-not-matching"}

const testTokenValue = "tok-VALUE-never-printed-4242"

func testEnv(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func testOptions() ValidateOptions {
	return ValidateOptions{
		KnownSelections: func(name string) bool { return slices.Contains(schemaSelections, name) },
		CheckTokens:     true,
		LookupEnv:       testEnv(map[string]string{"DRX_TEST_TOKEN": testTokenValue}),
	}
}

// TestBrokenFiles is issue 6's acceptance point: every broken schedules file gives exactly
// one one-line error naming file:line and the key, of the expected kind, with the exact
// text in its .want file (go test ./config/ -run TestBrokenFiles -update rewrites them).
func TestBrokenFiles(t *testing.T) {
	cases := map[string]error{
		"bad-concurrency":         ErrBadValue,
		"bad-cron":                ErrInvalidCron,
		"bad-date-range":          ErrBadDateRange,
		"bad-region":              ErrBadValue,
		"bad-share":               ErrBadValue,
		"bad-report-table":        ErrBadTableName,
		"bad-report-timezone":     ErrInvalidTimezone,
		"bad-sql-timeout":         ErrBadValue,
		"sql-timeout-no-unit":     ErrBadValue,
		"sql-timeout-too-long":    ErrBadValue,
		"sql-timeout-zero":        ErrBadValue,
		"reserved-report-table":   ErrBadTableName,
		"bad-tz":                  ErrInvalidTimezone,
		"bool-sandbox":            ErrBadType,
		"cron-never-fires":        ErrInvalidCron,
		"date-range-two-forms":    ErrBadDateRange,
		"duplicate-key":           ErrDuplicateKey,
		"duplicate-schedule":      ErrDuplicateName,
		"env-name-is-token":       ErrBadTokenSource,
		"list-extract":            ErrBadType,
		"missing-token-env":       ErrMissingToken,
		"no-kind":                 ErrRunKind,
		"not-a-mapping":           ErrBadType,
		"reserve-too-big":         ErrBadValue,
		"string-max-calls":        ErrBadType,
		"token-both-env-and-file": ErrBadTokenSource,
		"token-in-file":           ErrUnknownKey,
		"two-documents":           ErrSyntax,
		"two-kinds":               ErrRunKind,
		"unknown-entity":          ErrUnknownEntity,
		"unknown-key-nested":      ErrUnknownKey,
		"unknown-key-top":         ErrUnknownKey,
		"unknown-report":          ErrUnknownReport,
		"unknown-selection":       ErrUnknownSelection,
		"unquoted-cron":           ErrSyntax,
		"version-2":               ErrBadVersion,
		"version-missing":         ErrBadVersion,
	}
	files, err := filepath.Glob("testdata/broken/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != len(cases) {
		t.Errorf("%d files in testdata/broken, %d cases: keep them in step", len(files), len(cases))
	}
	lineRE := regexp.MustCompile(`^testdata/broken/[a-z0-9-]+\.yaml:[1-9][0-9]*: \S`)
	for _, path := range files {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			kind, ok := cases[name]
			if !ok {
				t.Fatalf("no expected error kind for %s", path)
			}
			_, err := LoadWithOptions(path, testOptions())
			if err == nil {
				t.Fatalf("LoadWithOptions(%s) succeeded, want %v", path, kind)
			}
			es := AsErrors(err)
			if len(es) != 1 {
				t.Fatalf("want exactly one error, got %d:\n%v", len(es), err)
			}
			if !errors.Is(err, kind) {
				t.Errorf("error %q is not %v", err, kind)
			}
			got := err.Error()
			if strings.ContainsAny(got, "\r\n") {
				t.Errorf("error spans several lines: %q", got)
			}
			if !lineRE.MatchString(got) {
				t.Errorf("error %q does not start with FILE:LINE:", got)
			}
			if strings.Contains(got, "secretsecret") {
				t.Errorf("error repeats a token written in the file: %q", got)
			}
			wantFile := strings.TrimSuffix(path, ".yaml") + ".want"
			if *update {
				if err := os.WriteFile(wantFile, []byte(got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != strings.TrimSuffix(string(want), "\n") {
				t.Errorf("error mismatch\n got: %s\nwant: %s", got, want)
			}
		})
	}
}
