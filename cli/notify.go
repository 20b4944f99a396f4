package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/notify"
)

func init() { register(newNotifyCommand) }

func newNotifyCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "notify",
		Short:   "Failure notifications to webhooks (notify.webhooks in schedules.yaml)",
		Example: `  drextract notify test`,
		Args:    args(cobra.NoArgs),
	}
	cmd.AddCommand(newNotifyTestCommand(g))
	return cmd
}

func newNotifyTestCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "test",
		Short: "Send a sample notification to every configured webhook",
		Long: `test sends one sample event ("event": "test") to every webhook under notify.webhooks of the
configuration file, whatever events it subscribes to, and prints per webhook, by its
fingerprint (hook_ and 8 hex digits; the URL is a secret and is never printed), ok or
why it failed. Attempts time out, and 5xx, 429 and network errors are retried with
backoff, as for real events.

Every command that runs something (extract, act, export, report, serve) posts an event
when a run ends failed, partial or quota_exhausted, when a follow-up finds action items
that failed again (actions_failed), and when a stream reaches
notify.stream_failing_after consecutive failed jobs (stream_failing; once per row of
failures). A notification never fails or holds up a run; a command waits at most 20 s
for its webhooks after its exit code is decided.

Exit codes: 0 every webhook accepted the sample, 1 a webhook refused it or could not be
reached, 2 usage (no webhooks configured, or a URL that cannot be read).`,
		Example: `  export DRX_WEBHOOK_URL=https://hooks.slack.com/services/…
  drextract notify test`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return runNotifyTest(cmd.Context(), cmd, g, args) },
	}
}

func runNotifyTest(ctx context.Context, cmd *cobra.Command, g *globalOptions, _ []string) error {
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	if w.cfg.Notify == nil || len(w.cfg.Notify.Webhooks) == 0 {
		return usage(fmt.Errorf("no webhooks to test: add notify.webhooks to %s, e.g. webhooks: [{url: {env: DRX_WEBHOOK_URL}}]", g.configPath))
	}
	targets, warns, readErr := w.cfg.WebhookTargets()
	for _, warn := range warns {
		w.log.Warn(warn.String())
	}
	for _, e := range config.AsErrors(readErr) {
		fmt.Fprintf(g.stdout, "%s: cannot be read: %s\n", e.Key, e.Msg)
	}
	if len(targets) == 0 {
		return usage(fmt.Errorf("no webhook URL could be read (%d configured)", len(w.cfg.Notify.Webhooks)))
	}
	o := w.notifyOptions(targets)
	n := notify.New(o)
	defer n.Close(context.WithoutCancel(ctx))
	now := w.clock.Now().UTC()
	sample := notify.Event{Event: notify.EventTest, Status: "ok", Kind: "notify-test", Schedule: "cli",
		StartedAt: now, EndedAt: now,
		Message: "a sample from drextract notify test; real events are failed, partial, quota_exhausted, actions_failed and stream_failing"}
	failed := 0
	for i, d := range n.Send(ctx, sample) {
		what := fmt.Sprintf("%s (%s)", d.Webhook, targets[i].URL.Source)
		if d.Err != nil {
			failed++
			fmt.Fprintf(g.stdout, "%s: failed after %s: %v\n", what, plural(d.Attempts, "attempt", "attempts"), d.Err)
			continue
		}
		fmt.Fprintf(g.stdout, "%s: ok (HTTP %d)\n", what, d.Status)
	}
	switch {
	case readErr != nil:
		return usage(fmt.Errorf("%d webhook URLs cannot be read (listed above)", len(config.AsErrors(readErr))))
	case failed > 0:
		return errors.New(plural(failed, "webhook", "webhooks") + " did not accept the sample (listed above)")
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
