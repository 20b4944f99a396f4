package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/drextract/drextract/notify"
	"github.com/drextract/drextract/sim"
)

// hookCanary is in the path of every test webhook URL: it must never show in an output,
// a log or a file.
const hookCanary = "CANARY-incoming-webhook-9d2e"

// hookServer is a webhook receiver over real HTTP answering status to every request.
type hookServer struct {
	URL    string
	mu     sync.Mutex
	events []map[string]any
}

func newHookServer(t *testing.T, status int) *hookServer {
	t.Helper()
	h := &hookServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev map[string]any
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		h.mu.Lock()
		h.events = append(h.events, ev)
		h.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	h.URL = srv.URL + "/services/T1/B1/" + hookCanary
	return h
}

func (h *hookServer) received() []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.events...)
}

// writeConfig writes a schedules file and returns its path.
func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "schedules.yaml")
	if err := os.WriteFile(path, []byte("version: 1\n"+body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func doCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = DoContext(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestNotifyTestCommand: `notify test` sends the sample to every webhook, whatever it
// subscribes to, and reports each by fingerprint: exit 0 when all accepted it, 1 when one
// refused it, 2 when there is nothing to test or a URL cannot be read.
func TestNotifyTestCommand(t *testing.T) {
	ok, refusing := newHookServer(t, http.StatusOK), newHookServer(t, http.StatusBadRequest)
	t.Setenv("DRX_HOOK_OK", ok.URL)
	t.Setenv("DRX_HOOK_REFUSING", refusing.URL)
	cases := []struct {
		name, notify string
		code         int
		stdout       []string
	}{
		{"one webhook, subscribed to partial only", "  webhooks: [{url: {env: DRX_HOOK_OK}, events: [partial]}]\n", ExitOK,
			[]string{notify.Fingerprint(ok.URL) + " (env:DRX_HOOK_OK): ok (HTTP 200)"}},
		{"one refuses", "  webhooks: [{url: {env: DRX_HOOK_OK}}, {url: {env: DRX_HOOK_REFUSING}}]\n", ExitFailure,
			[]string{notify.Fingerprint(ok.URL) + " (env:DRX_HOOK_OK): ok (HTTP 200)",
				notify.Fingerprint(refusing.URL) + " (env:DRX_HOOK_REFUSING): failed after 1 attempt: HTTP 400"}},
		{"a URL that cannot be read", "  webhooks: [{url: {env: DRX_HOOK_OK}}, {url: {env: DRX_HOOK_UNSET}}]\n", ExitUsage,
			[]string{"notify.webhooks[1].url.env: cannot be read: environment variable DRX_HOOK_UNSET is not set",
				notify.Fingerprint(ok.URL) + " (env:DRX_HOOK_OK): ok (HTTP 200)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, "notify:\n"+tc.notify)
			code, stdout, stderr := doCLI("--config", path, "notify", "test")
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			for _, line := range tc.stdout {
				if !strings.Contains(stdout, line+"\n") {
					t.Errorf("stdout lacks %q:\n%s", line, stdout)
				}
			}
			if strings.Contains(stdout+stderr, hookCanary) {
				t.Errorf("the webhook URL was printed:\n%s\n%s", stdout, stderr)
			}
		})
	}
	got := ok.received()
	if len(got) != 3 || got[0]["event"] != notify.EventTest || !strings.HasPrefix(got[0]["text"].(string), "drextract: test notification") {
		t.Errorf("the webhook received %v, want the sample once per run of the command", got)
	}
	code, _, stderr := doCLI("--config", writeConfig(t, ""), "notify", "test")
	if code != ExitUsage || !strings.Contains(stderr, "no webhooks to test: add notify.webhooks to ") {
		t.Errorf("without webhooks: exit %d, %s", code, stderr)
	}
}

// TestCommandsNotify: a command whose run ends quota_exhausted posts the event before the
// process exits, with its exit code unchanged; and no output, log or file of the data
// directory holds the webhook URL.
func TestCommandsNotify(t *testing.T) {
	e := newExtractEnv(t, sim.Options{Seed: 4, Workspaces: 2, Streams: 10, JobsPerStream: 5, DailyQuota: 12})
	hook := newHookServer(t, http.StatusOK)
	t.Setenv("DRX_WEBHOOK_URL", hook.URL)
	path := writeConfig(t, "notify:\n  webhooks:\n    - url: {env: DRX_WEBHOOK_URL}\n      events: [quota_exhausted, failed]\n")
	code, stdout, stderr := e.run("--config", path, "--log-level", "debug", "extract")
	if code != ExitQuotaExhausted {
		t.Fatalf("extract over the quota: exit %d\nstdout: %s\nstderr: %.3000s", code, stdout, stderr)
	}
	got := hook.received()
	if len(got) != 1 || got[0]["event"] != notify.EventQuotaExhausted || got[0]["status"] != "quota_exhausted" || got[0]["run_id"] != 1.0 {
		t.Fatalf("the webhook received %v, want the quota_exhausted event of run 1", got)
	}
	if !strings.Contains(stderr, "notification sent") || !strings.Contains(stderr, notify.Fingerprint(hook.URL)) {
		t.Errorf("the log does not say the notification was sent to %s:\n%.3000s", notify.Fingerprint(hook.URL), stderr)
	}
	// A webhook that refuses: the run's exit code is the run's.
	refusing := newHookServer(t, http.StatusForbidden)
	t.Setenv("DRX_WEBHOOK_URL", refusing.URL)
	code, stdout2, stderr2 := e.run("--config", path, "--log-level", "debug", "extract")
	if code != ExitQuotaExhausted || len(refusing.received()) != 1 || !strings.Contains(stderr2, "notification failed") {
		t.Errorf("with a refusing webhook: exit %d, %d posts\n%.3000s", code, len(refusing.received()), stderr2)
	}
	all := stdout + stderr + stdout2 + stderr2
	if strings.Contains(all, hookCanary) || strings.Contains(all, e.token) {
		t.Errorf("a secret was printed:\n%s", all)
	}
	err := filepath.WalkDir(e.dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(hookCanary)) {
			t.Errorf("%s holds the webhook URL", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
