package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The publish section: strict like the rest, the DSN only ever named by its source, and
// never shown in an error, a warning or a printed Secret.
func TestPublishSection(t *testing.T) {
	const dsn = "postgres://bi:S3cret-Canary-pw@db.example:5432/analytics?sslmode=require"
	head := "version: 1\napi: {tokens: [{env: DRX_TOKEN}]}\n"
	cases := []struct {
		name       string
		publish    string
		env        map[string]string
		dsnFile    string      // content of DIR/dsn (mode 0600 unless fileMode)
		fileMode   os.FileMode // 0: 0600
		check      bool        // ValidateOptions.CheckTokens (config check)
		wantKind   error
		wantKey    string
		wantSchema string
		wantWarn   string
	}{
		{name: "env", publish: "publish:\n  postgres:\n    dsn: {env: DRX_POSTGRES_DSN}\n", env: map[string]string{"DRX_POSTGRES_DSN": dsn}, check: true, wantSchema: "datorama"},
		{name: "file and schema", publish: "publish:\n  postgres:\n    dsn: {file: dsn}\n    schema: account_eu\n", dsnFile: dsn + "\n", check: true, wantSchema: "account_eu"},
		{name: "file readable by others", publish: "publish:\n  postgres:\n    dsn: {file: dsn}\n", dsnFile: dsn, fileMode: 0o644, check: true, wantSchema: "datorama", wantWarn: "DSN file DIR/dsn is accessible by group or others"},
		{name: "unset variable, checked", publish: "publish:\n  postgres:\n    dsn: {env: DRX_POSTGRES_DSN}\n", check: true, wantKind: ErrMissingToken, wantKey: "publish.postgres.dsn.env"},
		{name: "unset variable, not checked", publish: "publish:\n  postgres:\n    dsn: {env: DRX_POSTGRES_DSN}\n", wantSchema: "datorama"},
		{name: "no dsn", publish: "publish:\n  postgres:\n    schema: x\n", wantKind: ErrMissingKey, wantKey: "publish.postgres.dsn"},
		{name: "empty postgres", publish: "publish:\n  postgres:\n", wantKind: ErrMissingKey, wantKey: "publish.postgres"},
		{name: "both env and file", publish: "publish:\n  postgres:\n    dsn: {env: A, file: b}\n", wantKind: ErrBadTokenSource, wantKey: "publish.postgres.dsn"},
		{name: "the DSN pasted as a variable name", publish: "publish:\n  postgres:\n    dsn: {env: \"" + dsn + "\"}\n", wantKind: ErrBadTokenSource, wantKey: "publish.postgres.dsn.env"},
		{name: "the DSN pasted as the value", publish: "publish:\n  postgres:\n    dsn: \"" + dsn + "\"\n", wantKind: ErrBadTokenSource, wantKey: "publish.postgres.dsn"},
		{name: "bad schema", publish: "publish:\n  postgres:\n    dsn: {env: X}\n    schema: Bad-Name\n", wantKind: ErrBadValue, wantKey: "publish.postgres.schema"},
		{name: "system schema", publish: "publish:\n  postgres:\n    dsn: {env: X}\n    schema: pg_catalog\n", wantKind: ErrBadValue, wantKey: "publish.postgres.schema"},
		{name: "unknown key", publish: "publish:\n  postgres:\n    dsn: {env: X}\n    sslmode: require\n", wantKind: ErrUnknownKey, wantKey: "publish.postgres.sslmode"},
		{name: "unknown target", publish: "publish:\n  mysql: {}\n", wantKind: ErrUnknownKey, wantKey: "publish.mysql"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.dsnFile != "" {
				mode := tc.fileMode
				if mode == 0 {
					mode = 0o600
				}
				if err := os.WriteFile(filepath.Join(dir, "dsn"), []byte(tc.dsnFile), mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(filepath.Join(dir, "dsn"), mode); err != nil {
					t.Fatal(err)
				}
			}
			env := map[string]string{"DRX_TOKEN": "tok"}
			for k, v := range tc.env {
				env[k] = v
			}
			lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
			c, err := Parse(filepath.Join(dir, "schedules.yaml"), []byte(head+tc.publish),
				ValidateOptions{CheckTokens: tc.check, LookupEnv: lookup, KnownSelections: func(string) bool { return true }})
			var shown []string
			if err != nil {
				shown = append(shown, err.Error())
			}
			if c != nil {
				for _, w := range c.Warnings {
					shown = append(shown, w.String())
				}
			}
			for _, s := range shown {
				if strings.Contains(s, "S3cret-Canary-pw") || strings.Contains(s, "db.example") {
					t.Errorf("the DSN shows: %s", s)
				}
			}
			if tc.wantKind != nil {
				var es Errors
				if !errors.As(err, &es) || !errors.Is(err, tc.wantKind) {
					t.Fatalf("got %v, want %v", err, tc.wantKind)
				}
				found := false
				for _, e := range es {
					found = found || (errors.Is(e, tc.wantKind) && e.Key == tc.wantKey && e.Line > 0)
				}
				if !found {
					t.Errorf("got %v, want %v at key %s with a line", err, tc.wantKind, tc.wantKey)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Postgres() == nil || c.Postgres().Schema != tc.wantSchema {
				t.Fatalf("postgres target %+v, want schema %s", c.Postgres(), tc.wantSchema)
			}
			got := strings.Join(shown, "\n")
			if want := strings.ReplaceAll(tc.wantWarn, "DIR", dir); (want == "") != (got == "") || !strings.Contains(got, want) {
				t.Errorf("warnings %q, want %q", got, want)
			}
			sec, _, err := c.readPostgresDSN(lookup)
			if err != nil {
				if tc.check {
					t.Fatal(err)
				}
				return
			}
			if sec.Value() != dsn {
				t.Errorf("read DSN %q", sec.Value())
			}
			j, _ := json.Marshal(sec)
			for _, s := range []string{fmt.Sprint(sec), fmt.Sprintf("%+v %#v %q %s", sec, sec, sec, sec), string(j), fmt.Sprintf("%v", c.Postgres())} {
				if strings.Contains(s, "Canary") {
					t.Errorf("a printed Secret shows the DSN: %s", s)
				}
			}
		})
	}
}

// Without a publish section there is no PostgreSQL target and reading its DSN says so.
func TestNoPublishSection(t *testing.T) {
	c, err := Parse("schedules.yaml", []byte("version: 1\n"), ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Postgres() != nil {
		t.Fatal("a target without a publish section")
	}
	if _, _, err := c.PostgresDSN(); !errors.Is(err, ErrMissingKey) {
		t.Fatalf("PostgresDSN without a target: %v", err)
	}
}
