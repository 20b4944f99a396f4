package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drextract/drextract/action"
)

func init() { register(newActionsCommand) }

type actionsLogOptions struct {
	format string
	run    int64
	since  time.Duration
}

func (o *actionsLogOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.format, "format", "csv", "output format: csv, json or table")
	f.Int64Var(&o.run, "run", 0, "only this action run")
	f.DurationVar(&o.since, "since", 0, "only runs started within this long (e.g. 24h; 0: all)")
}

func newActionsCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "actions",
		Short: "The audit of bulk actions: runs, the item log, reconciliation, follow-up",
		Example: `  drextract actions log --since 24h
  drextract actions runs
  drextract actions reconcile`,
		Args: args(cobra.NoArgs),
	}
	var logOpts actionsLogOptions
	logCmd := &cobra.Command{
		Use:   "log",
		Short: "Export the action log: one line per item, with its run, status and outcome",
		Long: `log writes every action item (one per selection row or CSV line) with its run, what was
asked, what was sent, the job ids created, why it was skipped or failed, and its outcome
(succeeded, failed, pending or not_sent; filled in by the crawl after the jobs ran). It
replaces the old client's job_log and update_log CSV files.

Exit codes: 0 ok, 1 failure, 2 usage.`,
		Example: `  drextract actions log --format csv > actions.csv
  drextract actions log --run 12 --format json`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runActionsLog(cmd.Context(), cmd, logOpts, g, args)
		},
	}
	logOpts.AddFlags(logCmd.Flags())

	var limit int
	runsCmd := &cobra.Command{
		Use:     "runs",
		Short:   "List the latest action runs",
		Example: `  drextract actions runs --limit 5`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runActionsRuns(cmd.Context(), cmd, limit, g, args)
		},
	}
	runsCmd.Flags().IntVar(&limit, "limit", 20, "how many runs")

	reconcileCmd := &cobra.Command{
		Use:   "reconcile",
		Short: "Settle calls an interrupted run left in doubt, by asking the API",
		Long: `reconcile looks up, at the API, every action call that was being sent when a run was
interrupted (status 'sending'): for reruns and processing it reads the streams' jobs (a job
created after the send for the same days means it was sent), for renames and patches the
stream itself, for a delete the stream (404: it was deleted), for a creation the workspace's
listing (the name is there: it was created). Nothing is ever resent. act does this by itself
before sending anything, and then also writes what it found to the store.

Exit codes: 0 ok, 1 failure (some call is still in doubt), 2 usage.`,
		Example: `  drextract actions reconcile`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runActionsReconcile(cmd.Context(), cmd, g, args)
		},
	}
	followCmd := &cobra.Command{
		Use:     "follow-up",
		Short:   "Fill in action outcomes from what the store holds now (extract does it after each crawl)",
		Example: `  drextract actions follow-up`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runActionsFollowUp(cmd.Context(), cmd, g, args)
		},
	}
	cmd.AddCommand(logCmd, runsCmd, reconcileCmd, followCmd)
	return cmd
}

func runActionsLog(ctx context.Context, cmd *cobra.Command, opts actionsLogOptions, g *globalOptions, _ []string) error {
	if _, err := newResultWriter(io.Discard, opts.format); err != nil {
		return usage(err)
	}
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	st, err := w.openStoreReadOnly(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	f := action.LogFilter{RunID: opts.run}
	if opts.since > 0 {
		f.Since = w.api.Now().Add(-opts.since)
	}
	res, err := action.Log(ctx, st.DB(), f)
	if err != nil {
		return err
	}
	return writeResult(g.stdout, opts.format, res)
}

func runActionsRuns(ctx context.Context, cmd *cobra.Command, limit int, g *globalOptions, _ []string) error {
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	st, err := w.openStoreReadOnly(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	runs, err := action.Runs(ctx, st.DB(), limit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN\tSTARTED\tSELECTION\tACTION\tBY\tSTATUS\tITEMS\tSENT\tFAILED\tSKIPPED\tCALLS")
	for _, r := range runs {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", r.ID, r.Started.UTC().Format(time.RFC3339),
			r.Selection, r.Operation, r.By, r.Status, r.Items, r.Sent, r.Failed, r.Skipped, r.Calls)
	}
	return tw.Flush()
}

func runActionsReconcile(ctx context.Context, cmd *cobra.Command, g *globalOptions, _ []string) (err error) {
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	r, st, closeStore, err := w.writer(ctx, true)
	if err != nil {
		return err
	}
	defer closing(&err, closeStore)
	notes, err := r.Reconcile(ctx, st)
	for _, n := range notes {
		fmt.Fprintln(g.stdout, n)
	}
	if err != nil {
		return err
	}
	if len(notes) == 0 {
		fmt.Fprintln(g.stdout, "nothing to reconcile")
	}
	return nil
}

func runActionsFollowUp(ctx context.Context, cmd *cobra.Command, g *globalOptions, _ []string) (err error) {
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	store, closeStore, err := w.openStore(ctx)
	if err != nil {
		return err
	}
	defer closing(&err, closeStore)
	st, err := w.runner(nil).FollowUp(ctx, store)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "outcomes: %d succeeded, %d failed, %d pending, %d not sent\n", st.Succeeded, st.Failed, st.Pending, st.NotSent)
	return nil
}
