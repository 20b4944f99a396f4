package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzLoad (issue 7 item 5): whatever the bytes, parsing and validation never panic or
// hang; a failure is a list of one-line errors, each naming the file and a known kind; a
// success is a configuration whose schedules all fire and that validates again.
// Seeds: every YAML file under testdata and the repository's schedules.yaml, plus the
// corpus in testdata/fuzz/FuzzLoad (replayed by every go test run).
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	broken, _ := filepath.Glob("testdata/broken/*.yaml")
	for _, p := range append(append(seeds, broken...), "../schedules.yaml") {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	kinds := []error{ErrSyntax, ErrUnknownKey, ErrDuplicateKey, ErrBadType, ErrMissingKey, ErrBadValue, ErrBadVersion,
		ErrInvalidCron, ErrInvalidTimezone, ErrUnknownEntity, ErrUnknownSelection, ErrUnknownReport, ErrDuplicateName,
		ErrRunKind, ErrBadDateRange, ErrBadTableName, ErrBadTokenSource, ErrMissingToken, ErrUnknownEvent,
		ErrUnknownSchedule, ErrScheduleCycle}
	opts := ValidateOptions{
		KnownSelections: func(name string) bool { return strings.HasPrefix(name, "failed") },
		LookupEnv:       testEnv(map[string]string{"DRX_TEST_TOKEN": testTokenValue}),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz.yaml"
		start := time.Now()
		c, err := Parse(name, data, opts)
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("Parse took %v", d)
		}
		if err != nil {
			es := AsErrors(err)
			if len(es) == 0 {
				t.Fatalf("error is not a list of configuration errors: %v", err)
			}
			for _, e := range es {
				line := e.Error()
				if strings.ContainsAny(line, "\r\n") || !strings.HasPrefix(line, name+":") {
					t.Errorf("malformed error line %q", line)
				}
				known := false
				for _, k := range kinds {
					known = known || errors.Is(e, k)
				}
				if !known {
					t.Errorf("error of no known kind: %q", line)
				}
			}
			return
		}
		for _, s := range c.Schedules {
			if s.Cron == "" {
				// A chained schedule fires after its leader; it must have one.
				if _, ok := c.Schedule(s.After); !ok || s.After == s.Name {
					t.Errorf("schedule %q has no cron and no leader (after %q)", s.Name, s.After)
				}
			} else if s.spec == nil {
				t.Fatalf("schedule %q loaded without a parsed cron", s.Name)
			} else if s.Next(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
				t.Errorf("schedule %q (%q) never fires", s.Name, s.Cron)
			}
			if s.Kind() == "" {
				t.Errorf("schedule %q runs nothing", s.Name)
			}
		}
		if err := c.Validate(opts); err != nil {
			t.Errorf("a loaded configuration fails validation again: %v", err)
		}
	})
}
