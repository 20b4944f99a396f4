package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/ratelimit"
	"github.com/drextract/drextract/report"
	"github.com/drextract/drextract/run"
)

func init() { register(newReportCommand) }

type reportOptions struct {
	from, to string
}

func (o *reportOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.from, "from", "", "first day to report, YYYY-MM-DD (with --to; replaces the definition's date range)")
	f.StringVar(&o.to, "to", "", "last day to report, YYYY-MM-DD, inclusive (with --from)")
}

func newReportCommand(g *globalOptions) *cobra.Command {
	var opts reportOptions
	cmd := &cobra.Command{
		Use:   "report NAME",
		Short: "Run one Query API report definition now and land it in its report_* table",
		Long: `report runs the definition NAME from the configuration's reports: section through the
Query API, under the same rate budget as every other command (the query bucket, and the
daily quota shared with platform calls), and writes the answer into its table in the live
store, then publishes serving.duckdb.

Mode replace (the default) deletes the rows of the covered days first (by the Date
dimension when the report has one, else the rows of earlier runs over the same range) and
inserts the new ones in one transaction; mode append adds a snapshot. Each run is recorded
in report_runs. A query the API refuses (422) or answers with errors writes nothing.

Exit codes: 0 ok, 1 failure, 2 usage (unknown NAME, bad dates), 4 quota exhausted, 130
interrupted.`,
		Example: `  drextract report rows-per-stream
  drextract report rows-per-stream --from 2026-11-01 --to 2026-11-30`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runReport(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

// span parses --from and --to; nil when neither is given.
func (o reportOptions) span() (*report.Span, error) {
	if o.from == "" && o.to == "" {
		return nil, nil
	}
	if o.from == "" || o.to == "" {
		return nil, usage(errors.New("give both --from and --to, or neither"))
	}
	from, err := datorama.ParseDate(o.from)
	if err != nil {
		return nil, usage(fmt.Errorf("--from: %w", err))
	}
	to, err := datorama.ParseDate(o.to)
	if err != nil {
		return nil, usage(fmt.Errorf("--to: %w", err))
	}
	if to.Before(from.Time) {
		return nil, usage(fmt.Errorf("--to %s is before --from %s", o.to, o.from))
	}
	return &report.Span{From: from, To: to}, nil
}

func runReport(ctx context.Context, cmd *cobra.Command, opts reportOptions, g *globalOptions, args []string) (err error) {
	span, err := opts.span()
	if err != nil {
		return err
	}
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	def, ok := w.cfg.Report(args[0])
	if !ok {
		return usage(fmt.Errorf("no report named %q in %s; defined: %s", args[0], configName(w.cfg), reportNames(w.cfg)))
	}
	r, st, closeStore, err := w.writer(ctx, true)
	if err != nil {
		return err
	}
	defer closing(&err, closeStore)
	// A person is waiting: the calls may spend the daily reserve, as other ad-hoc commands.
	res := r.Report(ctx, st, run.ReportOptions{Definition: *def, Span: span, Priority: ratelimit.Interactive})
	printReports(g.stdout, res.Reports)
	return runErr(res)
}

// printReports writes one line per definition run.
func printReports(w io.Writer, results []report.Result) {
	for _, r := range results {
		if r.Err != nil {
			fmt.Fprintf(w, "report %s: failed (run %d)\n", r.Report, r.RunID)
			continue
		}
		how := "query"
		if r.Batched {
			how = "query-batch"
		}
		fmt.Fprintf(w, "report %s: %d rows into %s for %s (run %d, replaced %d, via %s)\n",
			r.Report, r.Rows, r.Table, r.Span, r.RunID, r.Replaced, how)
		if len(r.Added) > 0 {
			fmt.Fprintf(w, "  new columns: %s\n", strings.Join(r.Added, ", "))
		}
		if len(r.Widened) > 0 {
			fmt.Fprintf(w, "  widened: %s\n", strings.Join(r.Widened, ", "))
		}
	}
}

func configName(c *config.Config) string {
	if c.Path == "" {
		return "the configuration (no schedules.yaml found)"
	}
	return c.Path
}

func reportNames(c *config.Config) string {
	if len(c.Reports) == 0 {
		return "none"
	}
	names := make([]string, len(c.Reports))
	for i, r := range c.Reports {
		names[i] = r.Name
	}
	return strings.Join(names, ", ")
}
