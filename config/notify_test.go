package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const webhookCanary = "https://hooks.example.com/services/T000/B000/CANARY-webhook-secret"

// TestNotifySection: the notify section decodes strictly, fills in its defaults (every
// event, 3 consecutive failures) and reads each URL from its source.
func TestNotifySection(t *testing.T) {
	dir := t.TempDir()
	hookFile := filepath.Join(dir, "hook")
	if err := os.WriteFile(hookFile, []byte(webhookCanary+"-2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := `version: 1
notify:
  webhooks:
    - url: {env: DRX_WEBHOOK_URL}
    - url: {file: hook}
      events: [failed, stream_failing]
`
	opts := testOptions()
	opts.LookupEnv = testEnv(map[string]string{"DRX_TEST_TOKEN": testTokenValue, EnvToken: testTokenValue, "DRX_WEBHOOK_URL": " " + webhookCanary + "\n"})
	c, err := Parse(filepath.Join(dir, "s.yaml"), []byte(src), opts)
	if err != nil {
		t.Fatal(err)
	}
	if c.StreamFailingAfter() != 3 || c.Notify.StreamFailingAfter != 3 {
		t.Errorf("stream_failing_after = %d, want the default 3", c.StreamFailingAfter())
	}
	ws := c.Notify.Webhooks
	if !slices.Equal(ws[0].Events, NotifyEvents) || !slices.Equal(ws[1].Events, []string{"failed", "stream_failing"}) {
		t.Errorf("events = %v and %v, want every event and the two listed", ws[0].Events, ws[1].Events)
	}
	if ws[1].URL.File != hookFile {
		t.Errorf("file source %q, want it resolved against the file's directory (%s)", ws[1].URL.File, hookFile)
	}
	targets, warns, errs := c.readWebhooks(opts.LookupEnv)
	if len(errs) > 0 || len(warns) > 0 || len(targets) != 2 {
		t.Fatalf("readWebhooks: %v, %v, %d targets", errs, warns, len(targets))
	}
	if targets[0].URL.Value() != webhookCanary || targets[1].URL.Value() != webhookCanary+"-2" {
		t.Error("the URLs were not read (trimmed) from their sources")
	}
	if s := fmt.Sprintf("%v %+v %s", targets, targets, targets[0].URL); strings.Contains(s, "CANARY") {
		t.Errorf("a webhook target prints its URL: %s", s)
	}
	if targets[0].URL.Source != "env:DRX_WEBHOOK_URL" {
		t.Errorf("source %q", targets[0].URL.Source)
	}

	c, err = Parse("s.yaml", []byte("version: 1\nnotify:\n  stream_failing_after: 5\n  webhooks: [{url: {env: X}}]\n"), ValidateOptions{})
	if err != nil || c.StreamFailingAfter() != 5 {
		t.Errorf("stream_failing_after: 5 → %v, %v", c.StreamFailingAfter(), err)
	}
	if c, err := Parse("s.yaml", []byte("version: 1\n"), ValidateOptions{}); err != nil || c.Notify != nil || c.StreamFailingAfter() != 3 {
		t.Errorf("no notify section: %+v, %v", c.Notify, err)
	}
}

// TestNotifyMistakes: each mistake in the notify section is one FILE:LINE error of its
// kind, and none repeats a URL written or read.
func TestNotifyMistakes(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte(webhookCanary), 0o644); err != nil {
		t.Fatal(err)
	}
	notURL := filepath.Join(dir, "noturl")
	if err := os.WriteFile(notURL, []byte("ftp://CANARY-host/x"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{EnvToken: testTokenValue, "HOOK": webhookCanary, "EMPTY": " ", "BAD": "hooks.example.com/CANARY", "TWO": webhookCanary + " " + webhookCanary}
	cases := []struct {
		name, notify string
		kind         error
		want         string // the one error, or the one warning when kind is nil
	}{
		{"unknown event", "webhooks:\n    - url: {env: HOOK}\n      events: [failed, exploded]",
			ErrUnknownEvent, `s.yaml:5: notify.webhooks[0].events[1]: unknown event "exploded"; want some of failed, partial, quota_exhausted, actions_failed, stream_failing`},
		{"event twice", "webhooks:\n    - url: {env: HOOK}\n      events: [failed, failed]",
			ErrDuplicateName, `s.yaml:5: notify.webhooks[0].events[1]: event failed is listed twice`},
		{"empty events", "webhooks:\n    - url: {env: HOOK}\n      events: []",
			ErrBadValue, `s.yaml:5: notify.webhooks[0].events: empty list; leave the key out to receive every event`},
		{"URL written in the file", "webhooks:\n    - url: " + webhookCanary,
			ErrBadTokenSource, `s.yaml:4: notify.webhooks[0].url: want {env: NAME} or {file: PATH}, got a string (value not shown); the secret itself never goes in this file`},
		{"URL as a variable name", "webhooks:\n    - url: {env: \"" + webhookCanary + "\"}",
			ErrBadTokenSource, `s.yaml:4: notify.webhooks[0].url.env: not a valid environment variable name (value not shown, in case it is the URL); put the URL in a variable and name the variable here`},
		{"no url", "webhooks:\n    - events: [failed]",
			ErrMissingKey, `s.yaml:4: notify.webhooks[0].url: missing; where the URL is read from: {env: NAME} or {file: PATH}`},
		{"env and file", "webhooks:\n    - url: {env: HOOK, file: x}",
			ErrBadTokenSource, `s.yaml:4: notify.webhooks[0].url: give either env or file, not both`},
		{"same source twice", "webhooks:\n    - url: {env: HOOK}\n    - url: {env: HOOK}",
			ErrDuplicateName, `s.yaml:5: notify.webhooks[1].url: webhook source env:HOOK is already listed at notify.webhooks[0].url`},
		{"no webhooks", "stream_failing_after: 3",
			ErrMissingKey, `s.yaml:2: notify.webhooks: want at least one webhook, e.g. webhooks: [{url: {env: DRX_WEBHOOK_URL}}]`},
		{"threshold zero", "stream_failing_after: 0\n  webhooks: [{url: {env: HOOK}}]",
			ErrBadValue, `s.yaml:3: notify.stream_failing_after: want 1 to 1000 consecutive failed jobs, got 0`},
		{"threshold a string", "stream_failing_after: three\n  webhooks: [{url: {env: HOOK}}]",
			ErrBadType, `s.yaml:3: notify.stream_failing_after: want an integer, got a string`},
		{"unknown key", "webhook: [{url: {env: HOOK}}]",
			ErrUnknownKey, `s.yaml:3: notify.webhook: unknown key "webhook" (known keys: webhooks, stream_failing_after)`},
		{"unset variable", "webhooks: [{url: {env: NOPE}}]",
			ErrMissingToken, `s.yaml:3: notify.webhooks[0].url.env: environment variable NOPE is not set`},
		{"empty variable", "webhooks: [{url: {env: EMPTY}}]",
			ErrMissingToken, `s.yaml:3: notify.webhooks[0].url.env: environment variable EMPTY is empty`},
		{"not a URL", "webhooks: [{url: {env: BAD}}]",
			ErrBadTokenSource, `s.yaml:3: notify.webhooks[0].url.env: environment variable BAD is not an http(s) URL (value not shown)`},
		{"two words", "webhooks: [{url: {env: TWO}}]",
			ErrBadTokenSource, `s.yaml:3: notify.webhooks[0].url.env: environment variable TWO holds more than one word or line; want just the URL (value not shown)`},
		{"missing file", "webhooks: [{url: {file: nothere}}]",
			ErrMissingToken, `s.yaml:3: notify.webhooks[0].url.file: webhook URL file ` + filepath.Join(dir, "nothere") + ` does not exist`},
		{"file not a URL", "webhooks: [{url: {file: noturl}}]",
			ErrBadTokenSource, `s.yaml:3: notify.webhooks[0].url.file: webhook URL file ` + notURL + ` is not an http(s) URL (value not shown)`},
		{"file others may read", "webhooks: [{url: {file: open}}]",
			nil, `s.yaml:3: notify.webhooks[0].url.file: webhook URL file ` + open + ` is accessible by group or others (mode 0644); chmod 600 it`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := testOptions()
			opts.LookupEnv = testEnv(env)
			src := "version: 1\nnotify:\n  " + tc.notify + "\n"
			c, err := Parse(filepath.Join(dir, "s.yaml"), []byte(src), opts)
			got := fmt.Sprint(err)
			if c != nil {
				got += fmt.Sprint(c.Warnings)
			}
			if strings.Contains(got, "CANARY") {
				t.Errorf("a message repeats the URL: %s", got)
			}
			if tc.kind == nil {
				if err != nil || len(c.Warnings) != 1 || c.Warnings[0].String() != filepath.Join(dir, tc.want) {
					t.Fatalf("got %v and warnings %v, want only the warning\n%s", err, c.Warnings, tc.want)
				}
				return
			}
			es := AsErrors(err)
			if len(es) != 1 || !errors.Is(err, tc.kind) {
				t.Fatalf("got %v, want one %v", err, tc.kind)
			}
			if err.Error() != filepath.Join(dir, tc.want) {
				t.Errorf("got  %s\nwant %s", err, filepath.Join(dir, tc.want))
			}
		})
	}
}

// TestWebhookTargetsSkipsUnreadable: commands read the URLs when they run: a webhook whose
// source is unset is reported and left out, the others still notify.
func TestWebhookTargetsSkipsUnreadable(t *testing.T) {
	c, err := Parse("s.yaml", []byte("version: 1\nnotify:\n  webhooks: [{url: {env: DRX_UNSET_HOOK}}, {url: {env: DRX_SET_HOOK}}]\n"), ValidateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DRX_SET_HOOK", webhookCanary)
	ts, _, err := c.WebhookTargets()
	if len(ts) != 1 || ts[0].URL.Value() != webhookCanary || !errors.Is(err, ErrMissingToken) || !strings.Contains(err.Error(), "DRX_UNSET_HOOK") {
		t.Errorf("got %d targets and %v; want the set one and an error naming the unset variable", len(ts), err)
	}
}

// TestExampleNotifyFile: the walkthrough's example file is valid, with the URL set.
func TestExampleNotifyFile(t *testing.T) {
	opts := ValidateOptions{CheckTokens: true, LookupEnv: testEnv(map[string]string{EnvToken: testTokenValue, "DRX_WEBHOOK_URL": "http://127.0.0.1:8080/_sim/webhook"})}
	c, err := LoadWithOptions("../examples/notify.yaml", opts)
	if err != nil {
		t.Fatalf("examples/notify.yaml is invalid:\n%v", err)
	}
	if len(c.Notify.Webhooks) != 1 || c.StreamFailingAfter() != 3 || c.Store.DuckDBPath() != filepath.Join("..", "data", "live", "datorama.duckdb") {
		t.Errorf("unexpected example: %+v, store %s", c.Notify, c.Store.DuckDBPath())
	}
}
