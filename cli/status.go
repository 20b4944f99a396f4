package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/ratelimit"
)

func init() { register(newStatusCommand) }

type statusOptions struct {
	probe  bool
	format string
}

func (o *statusOptions) AddFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.probe, "probe", false, "first make one cheap call per token (GET /v1/workspaces) to read the rate headers afresh")
	f.StringVar(&o.format, "format", "text", "output format: text or json")
}

func newStatusCommand(g *globalOptions) *cobra.Command {
	var opts statusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show each token's rate budget: calls left this minute and today, resets, reserve",
		Long: `status prints, per token fingerprint, the calls left this minute (platform and Query
API), the calls left today (shared by both), when each resets, and how much of today's
quota the reserve holds back from scheduled and backfill work.

It reads the budget state that every drextract process using --data-dir shares, so it
makes no API call and shows what running crawls have spent. A minute window no answer has
confirmed yet is marked "assumed". With --probe it first makes one cheap call per token
(GET /v1/workspaces, as interactive work) so the figures come from the API's headers.

Tokens come from the configuration's token sources, by default DATORAMA_TOKEN and then
DATORAMA_TOKEN_2, _3, …; with none configured, every token with a state under --data-dir
is shown. Tokens are never printed, only their fingerprints.

Exit codes: 0 ok, 1 failure, 2 usage, 4 quota exhausted (--probe only), 130 interrupted.`,
		Example: `  drextract status
  drextract status --probe --format json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStatus(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

// tokenStatus is one token's line of the report: its status, or why there is none.
type tokenStatus struct {
	Fingerprint string            `json:"fingerprint"`
	Source      string            `json:"source,omitempty"` // e.g. env:DATORAMA_TOKEN
	State       *ratelimit.Status `json:"state,omitempty"`  // nil: no state yet
	Error       string            `json:"error,omitempty"`
}

func runStatus(ctx context.Context, cmd *cobra.Command, opts statusOptions, g *globalOptions, _ []string) error {
	if opts.format != "text" && opts.format != "json" {
		return usage(fmt.Errorf("unknown --format %q: use text or json", opts.format))
	}
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	dir := ratelimit.StateDirIn(w.cfg.Store.DataDir)
	cfg := w.budgetConfig()

	// A probe refused for quota still leaves the answer's headers in the state: print
	// it, then exit with the quota code.
	var quotaErr error
	if opts.probe {
		if err := probeTokens(ctx, w); err != nil {
			if quotaErr = quotaExit(err); quotaErr == nil {
				return err
			}
		}
	}

	// The configured tokens, in order; then any other token with a state here.
	var list []tokenStatus
	toks, _, terr := w.cfg.Tokens()
	for _, t := range toks {
		if t.Value() != "" {
			list = append(list, tokenStatus{Fingerprint: t.Fingerprint(), Source: t.Source})
		}
	}
	if terr != nil {
		w.log.Warn("reading API tokens; showing every token with a state", "error", terr)
	}
	stored, err := ratelimit.Fingerprints(dir)
	if err != nil {
		return err
	}
	for _, fp := range stored {
		if !slices.ContainsFunc(list, func(ts tokenStatus) bool { return ts.Fingerprint == fp }) {
			list = append(list, tokenStatus{Fingerprint: fp})
		}
	}
	for i := range list {
		st, found, err := ratelimit.ReadStatus(dir, list[i].Fingerprint, cfg)
		switch {
		case err != nil:
			list[i].Error = err.Error()
		case found:
			list[i].State = &st
		}
	}

	if opts.format == "json" {
		enc := json.NewEncoder(g.stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(struct {
			StateDir string        `json:"state_dir"`
			Tokens   []tokenStatus `json:"tokens"`
		}{dir, list})
	} else {
		err = printStatus(g.stdout, dir, w.api.Now(), list)
	}
	return errors.Join(err, quotaErr)
}

// probeTokens makes one GET /v1/workspaces per token through the shared budget, so its
// headers land in the state file. It returns the first error; a quota error only after
// every token was tried.
func probeTokens(ctx context.Context, w *wiring) error {
	tokens, err := w.tokens()
	if err != nil {
		return err
	}
	pool := w.pool(tokens)
	client, err := w.client(pool)
	if err != nil {
		return err
	}
	ctx = ratelimit.WithPriority(ctx, ratelimit.Interactive)
	var quota error // a token out of quota does not stop the others' probes
	for _, fp := range pool.Fingerprints() {
		if _, err := client.Workspaces.List(ratelimit.WithToken(ctx, fp)); err != nil {
			err = fmt.Errorf("probing token %s: %w", fp, err)
			if quotaExit(err) == nil {
				return err
			}
			quota = cmp.Or(quota, err)
		}
	}
	return quota
}

// quotaExit is a quota error as the user reads it (it maps to the quota-exhausted exit);
// nil for any other error.
func quotaExit(err error) error {
	reset, ok := datorama.QuotaReset(err)
	if !ok {
		return nil
	}
	return fmt.Errorf("%w, resets at %s", datorama.ErrQuotaExhausted, formatReset(reset))
}

// printStatus writes the report for people.
func printStatus(out io.Writer, dir string, now time.Time, list []tokenStatus) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Rate budget in %s at %s\n", dir, now.UTC().Format(time.RFC3339))
	if len(list) == 0 {
		b.WriteString("\nNo token configured and no state yet: set DATORAMA_TOKEN (and DATORAMA_TOKEN_2, … for more).\n")
	}
	clockOnly := func(t time.Time) string { return t.UTC().Format("15:04:05Z") }
	for _, ts := range list {
		b.WriteString("\n")
		name := ts.Fingerprint
		if ts.Source != "" {
			name += " (" + ts.Source + ")"
		}
		switch {
		case ts.Error != "":
			fmt.Fprintf(&b, "%s  state unreadable: %s\n", name, ts.Error)
			continue
		case ts.State == nil:
			fmt.Fprintf(&b, "%s  no state yet: no drextract process has used this token with this data directory\n", name)
			continue
		}
		st := ts.State
		updated := "never"
		if !st.Updated.IsZero() {
			updated = st.Updated.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(&b, "%s  state updated %s\n", name, updated)
		for _, win := range []struct {
			kind string
			w    ratelimit.WindowStatus
		}{{"platform", st.Platform}, {"query", st.Query}} {
			how := "confirmed by the API"
			if !win.w.Known {
				how = "assumed: no answer this minute yet"
			}
			fmt.Fprintf(&b, "  %-9s %6d of %6d left this minute, resets %s (%s)\n", win.kind, win.w.Remaining, win.w.Limit, clockOnly(win.w.Reset), how)
			if win.w.BlockedUntil.After(now) {
				fmt.Fprintf(&b, "  %-9s backing off after a 429 until %s\n", "", clockOnly(win.w.BlockedUntil))
			}
			if win.w.External > 0 {
				fmt.Fprintf(&b, "  %-9s %d calls this minute by programs outside drextract\n", "", win.w.External)
			}
		}
		d := st.Daily
		how := "confirmed by the API"
		if !d.Known {
			how = "assumed: no answer today yet"
		}
		fmt.Fprintf(&b, "  %-9s %6d of %6d left today, resets %s (%s)\n", "today", d.Remaining, d.Limit, d.Reset.UTC().Format(time.RFC3339), how)
		fmt.Fprintf(&b, "  %-9s %6d held back for interactive calls: scheduled work may spend %d more today",
			"reserve", d.Reserve, d.ScheduledLeft)
		if d.BackfillReserve > 0 {
			fmt.Fprintf(&b, ", backfill %d", d.BackfillLeft)
		}
		b.WriteString("\n")
		if st.InFlight > 0 {
			fmt.Fprintf(&b, "  %-9s %6d calls\n", "in flight", st.InFlight)
		}
	}
	_, err := io.WriteString(out, b.String())
	return err
}
