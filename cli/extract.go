package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drextract/drextract/action"
	"github.com/drextract/drextract/extract"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
)

func init() { register(newExtractCommand) }

type extractOptions struct {
	full     bool
	entities []string
	dryRun   bool
	maxCalls int
}

func (o *extractOptions) AddFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.full, "full", false, "re-read everything: every stream's jobs from page 1, every mapping and workspace-level list")
	f.StringSliceVar(&o.entities, "entities", nil, "crawl only these entities (comma-separated): "+strings.Join(extract.Entities, ", "))
	f.BoolVar(&o.dryRun, "dry-run", false, "print what the run would cost (as `drextract plan`) and make no API call")
	f.IntVar(&o.maxCalls, "max-calls", 0, "stop cleanly after this many API calls (0: no cap); the run then ends partial")
}

func newExtractCommand(g *globalOptions) *cobra.Command {
	var opts extractOptions
	cmd := &cobra.Command{
		Use:   "extract",
		Short: "Crawl the account into the store, incrementally, then publish serving.duckdb",
		Long: `extract crawls workspaces, data streams, jobs, mappings and workspace-level metadata into
the live store under --data-dir, then publishes serving.duckdb for read-only consumers.

By default it is incremental: a stream's jobs are read again only when its listing shows a
run since the last crawl, when it has jobs not final yet, or when its weekly safety-net
sweep is due; mappings when the stream changed; workspace-level lists daily. --full reads
everything. Every page is committed with its checkpoint, so an interrupted or killed run
loses nothing and the next run resumes where it stopped. Incremental runs spend calls as
scheduled work (they leave the daily reserve alone); --full spends them as backfill.

Tokens come from the configuration's token sources, by default DATORAMA_TOKEN and then
DATORAMA_TOKEN_2, _3, …; they are never printed, only their fingerprints.

Exit codes: 0 ok, 1 failure, 2 usage, 3 partial (some listings failed; they are named on
stderr and in the runs table), 4 quota exhausted ("quota exhausted, resets at <time>";
run again after that time to resume), 130 interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExtract(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

// crawl maps the flags to the crawler's options.
func (o extractOptions) crawl(w *wiring, progress io.Writer) (extract.Options, error) {
	ents, err := extract.ParseEntities(o.entities)
	if err != nil {
		return extract.Options{}, withExit(ExitUsage, err)
	}
	return extract.Options{Full: o.full, Entities: ents, MaxCalls: o.maxCalls, Schedule: "cli",
		Progress: progress, Clock: w.clock, Logger: w.log}, nil
}

func runExtract(ctx context.Context, cmd *cobra.Command, opts extractOptions, g *globalOptions, _ []string) error {
	if opts.dryRun {
		return runPlan(ctx, cmd, opts, g, nil)
	}
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	copts, err := opts.crawl(w, g.stderr)
	if err != nil {
		return err
	}
	audit := extract.NewAudit()
	s, err := w.session(ctx, audit)
	if err != nil {
		return err
	}
	defer s.close()
	pool, client, store := s.pool, s.client, s.store

	prio := ratelimit.Scheduled
	if opts.full {
		prio = ratelimit.Backfill
	}
	cr := &extract.Crawler{Client: client, Sink: store, Audit: audit, Pool: pool}
	res, err := cr.Run(ratelimit.WithPriority(ctx, prio), copts)
	if err != nil && ctx.Err() != nil {
		return err // interrupted: the pages committed so far are kept
	}
	printRun(g.stdout, res)
	if ctx.Err() == nil {
		// Outcomes of earlier bulk actions come from the jobs just crawled.
		if _, ferr := action.FollowUp(ctx, store.DB()); ferr != nil {
			w.log.Warn("following up actions", "error", ferr)
		}
		// Publish what was committed whatever the status: the copy is consistent, and
		// readers want the newest data even from a partial run.
		if perr := store.Publish(ctx, w.cfg.Store.ServingPath()); perr != nil {
			return withExit(ExitFailure, fmt.Errorf("publishing %s: %w", w.cfg.Store.ServingPath(), perr))
		}
	}
	return runStatusError(res, err)
}

// runStatusError maps a crawl's outcome to the command's exit.
func runStatusError(res extract.Result, err error) error {
	switch res.Status {
	case load.RunOK:
		return nil
	case load.RunPartial:
		return withExit(ExitPartial, fmt.Errorf("run %d partial: incomplete: %s", res.RunID, strings.Join(res.Incomplete, "; ")))
	case load.RunQuotaExhausted:
		return withExit(ExitQuotaExhausted, fmt.Errorf("quota exhausted, resets at %s", formatReset(res.QuotaReset)))
	}
	if err == nil {
		err = res.Err
	}
	if err == nil {
		err = errors.New("the crawl failed")
	}
	return withExit(ExitFailure, fmt.Errorf("run %d failed: %w", res.RunID, err))
}

// printRun writes a run's summary: status, calls and rows per table.
func printRun(w io.Writer, res extract.Result) {
	tables := make([]string, 0, len(res.Rows))
	for t := range res.Rows {
		tables = append(tables, t)
	}
	slices.Sort(tables)
	parts := make([]string, 0, len(tables))
	for _, t := range tables {
		parts = append(parts, fmt.Sprintf("%s %d", t, res.Rows[t]))
	}
	rows := "no rows"
	if len(parts) > 0 {
		rows = strings.Join(parts, ", ")
	}
	fmt.Fprintf(w, "run %d: %s, %d API calls; rows: %s\n", res.RunID, res.Status, res.Calls, rows)
	for _, p := range res.Incomplete {
		fmt.Fprintf(w, "  incomplete: %s\n", p)
	}
}
