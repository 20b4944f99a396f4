package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// TestConfigCheck drives `drextract config check` in-process: the repository's example,
// broken files (every mistake one line on stderr, exit 2), warnings, --skip-tokens, the
// defaults when there is no file — and never the token in any output.
func TestConfigCheck(t *testing.T) {
	const token = "dato-api-CONFIG-CHECK-TOKEN-7777"
	repoFile, err := filepath.Abs("../schedules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The line of the token source in the example, found rather than hard-coded so that
	// editing the example's comments does not break this test.
	example, err := os.ReadFile(repoFile)
	if err != nil {
		t.Fatal(err)
	}
	tokenLine := 0
	for i, l := range strings.Split(string(example), "\n") {
		if strings.TrimSpace(l) == "- env: DATORAMA_TOKEN" {
			tokenLine = i + 1
		}
	}
	write := func(t *testing.T, dir, name, content string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name       string
		setup      func(t *testing.T, dir string) []string // returns the args
		env        map[string]string
		wantCode   int
		wantStdout string   // exact; DIR stands for the temporary directory
		wantStderr []string // lines, exact, in order; DIR as above
	}{
		{
			name:       "the repository's schedules.yaml",
			setup:      func(t *testing.T, dir string) []string { return []string{"config", "check", "--config", repoFile} },
			env:        map[string]string{"DATORAMA_TOKEN": token},
			wantCode:   ExitOK,
			wantStdout: "ok: 6 schedules, 1 reports, 1 token sources\n",
		},
		{
			name:     "the repository's schedules.yaml without DATORAMA_TOKEN",
			setup:    func(t *testing.T, dir string) []string { return []string{"config", "check", "--config", repoFile} },
			wantCode: ExitUsage,
			wantStderr: []string{
				fmt.Sprintf("%s:%d: api.tokens[0].env: environment variable DATORAMA_TOKEN is not set", repoFile, tokenLine),
				"Error: " + repoFile + " is invalid (1 mistake listed above)",
				"Try: drextract config check --help",
			},
		},
		{
			name: "--skip-tokens",
			setup: func(t *testing.T, dir string) []string {
				return []string{"config", "check", "--skip-tokens", "--config", repoFile}
			},
			wantCode:   ExitOK,
			wantStdout: "ok: 6 schedules, 1 reports, 1 token sources\n",
		},
		{
			name: "several mistakes, one line each",
			setup: func(t *testing.T, dir string) []string {
				return []string{"config", "check", "--config", write(t, dir, "s.yaml", "version: 1\nschedules:\n  - name: a\n    cron: \"5 * * *\"\n    extract: {entities: [jobz]}\n  - name: a\n    cron: \"0 6 * * *\"\n", 0o644)}
			},
			env:      map[string]string{"DATORAMA_TOKEN": token},
			wantCode: ExitUsage,
			wantStderr: []string{
				`DIR/s.yaml:4: schedules[0].cron: "5 * * *" has 4 fields, want 5 (minute hour day-of-month month day-of-week)`,
				`DIR/s.yaml:5: schedules[0].extract.entities[0]: unknown entity "jobz"; want some of workspaces, streams, jobs, mappings, dimensions, measurements, harmonized_dimensions, patterns, calculated_measurements`,
				`DIR/s.yaml:6: schedules[1].name: schedule "a" is already defined at line 3`,
				`DIR/s.yaml:6: schedules[1]: schedule "a" runs nothing; give one of extract, action, export, report`,
				"Error: DIR/s.yaml is invalid (4 mistakes listed above)",
				"Try: drextract config check --help",
			},
		},
		{
			name: "token file readable by others: a warning, still valid",
			setup: func(t *testing.T, dir string) []string {
				write(t, dir, "token", token+"\n", 0o644)
				return []string{"config", "check", "--config", write(t, dir, "s.yaml", "version: 1\napi:\n  tokens:\n    - file: token\n", 0o644)}
			},
			wantCode:   ExitOK,
			wantStdout: "ok: 0 schedules, 0 reports, 1 token sources\n",
			wantStderr: []string{"warning: DIR/s.yaml:4: api.tokens[0].file: token file DIR/token is accessible by group or others (mode 0644); chmod 600 it"},
		},
		{
			name: "no file at the default path: the defaults are checked",
			setup: func(t *testing.T, dir string) []string {
				t.Chdir(dir)
				return []string{"config", "check"}
			},
			env:        map[string]string{"DATORAMA_TOKEN": token, "DATORAMA_TOKEN_2": token + "-2"},
			wantCode:   ExitOK,
			wantStdout: "ok: no ./schedules.yaml, defaults: 0 schedules, 0 reports, 2 token sources\n",
		},
		{
			name: "no file at an explicit path",
			setup: func(t *testing.T, dir string) []string {
				return []string{"config", "check", "--config", filepath.Join(dir, "nope.yaml")}
			},
			wantCode: ExitUsage,
			wantStderr: []string{
				"Error: reading configuration: open DIR/nope.yaml: no such file or directory",
				"Try: drextract config check --help",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, k := range []string{"DATORAMA_TOKEN", "DATORAMA_TOKEN_2", "DATORAMA_BASE_URL"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			args := tc.setup(t, dir)
			var stdout, stderr bytes.Buffer
			code := DoContext(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, &stdout, &stderr)
			}
			if got, want := stdout.String(), strings.ReplaceAll(tc.wantStdout, "DIR", dir); got != want {
				t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
			}
			var wantErr string
			for _, l := range tc.wantStderr {
				wantErr += strings.ReplaceAll(l, "DIR", dir) + "\n"
			}
			if got := stderr.String(); got != wantErr {
				t.Errorf("stderr:\n%s\nwant:\n%s", got, wantErr)
			}
			if strings.Contains(stdout.String()+stderr.String(), token) {
				t.Errorf("the token appears in the output")
			}
		})
	}
}

// TestEnvironmentBeatsTheShippedFile is the README's simulator walkthrough: run from the
// repository root, where the shipped schedules.yaml names the real API, the variables
// the simulator prints point every command at the simulator, and `config show` says so.
func TestEnvironmentBeatsTheShippedFile(t *testing.T) {
	e := newExtractEnv(t, sim.Options{Seed: 5, Workspaces: 1, Streams: 3, JobsPerStream: 2})
	shipped, err := os.ReadFile(filepath.Join("..", "schedules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "schedules.yaml"), shipped, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
	t.Setenv("DATORAMA_BASE_URL", e.base)
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := DoContext(context.Background(), args, strings.NewReader(""), &out, &errOut)
		if strings.Contains(out.String()+errOut.String(), e.token) {
			t.Errorf("drextract %v printed the token", args)
		}
		return code, out.String(), errOut.String()
	}
	code, show, stderr := run("config", "show")
	for _, want := range []string{e.base, "env DATORAMA_BASE_URL", "env DATORAMA_TOKEN", datorama.Fingerprint(e.token)} {
		if !strings.Contains(show, want) {
			t.Errorf("config show lacks %q (exit %d):\n%s%s", want, code, show, stderr)
		}
	}
	if !regexp.MustCompile(`(?m)^config +\./schedules\.yaml +default$`).MatchString(show) {
		t.Errorf("config show: the file not named as the default:\n%s", show)
	}
	code, stdout, stderr := run("extract")
	if code != ExitOK || e.sim.Calls().Total == 0 {
		t.Fatalf("extract from the repository root: exit %d, %d calls reached the simulator\n%s%s",
			code, e.sim.Calls().Total, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "data", load.LiveFile)); err != nil {
		t.Errorf("the store is not under the file's data_dir: %v", err)
	}
}
