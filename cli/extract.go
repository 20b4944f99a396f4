package cli

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/extract"
	"github.com/drextract/drextract/run"
)

func init() { register(newExtractCommand) }

type extractOptions struct {
	full       bool
	entities   []string
	dryRun     bool
	maxCalls   int
	workspaces []int64
	streams    []int64
	workers    int
	probe      bool // plan only
}

func (o *extractOptions) AddFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.full, "full", false, "re-read everything: every stream's jobs from page 1, every mapping and workspace-level list")
	f.StringSliceVar(&o.entities, "entities", nil, "crawl only these entities (comma-separated): "+strings.Join(extract.Entities, ", "))
	f.BoolVar(&o.dryRun, "dry-run", false, "print what the run would cost, as drextract plan does, and make no API call")
	f.IntVar(&o.maxCalls, "max-calls", 0, "stop cleanly after this many API calls (0: no cap); the run then ends partial")
	f.IntVar(&o.workers, "workers", run.DefaultWorkers, fmt.Sprintf("streams read at once (1 to %d); the budget paces them under the API's limits, and against a fast API (a mirror) they keep the store busy; a kill loses at most one page per worker", config.MaxWorkers))
	f.Int64SliceVar(&o.workspaces, "workspace", nil, "crawl only these workspaces (repeatable, or comma-separated): their stream lists, jobs, mappings and lists")
	f.Int64SliceVar(&o.streams, "stream", nil, "crawl only these streams (repeatable, or comma-separated): one lookup each, then their jobs and mapping")
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
		Example: `  drextract extract
  drextract extract --entities streams,jobs --max-calls 500
  drextract extract --full
  drextract extract --stream 3974201 --stream 3973838
  drextract extract --workspace 27405`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExtract(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

// crawl maps the flags to the run layer's options.
func (o extractOptions) crawl(progress io.Writer) (run.ExtractOptions, error) {
	ents, err := extract.ParseEntities(o.entities)
	if err != nil {
		return run.ExtractOptions{}, usage(err)
	}
	for _, t := range []struct {
		flag string
		ids  []int64
	}{{"--workspace", o.workspaces}, {"--stream", o.streams}} {
		for _, id := range t.ids {
			if id <= 0 {
				return run.ExtractOptions{}, usage(fmt.Errorf("%s %d: not an id", t.flag, id))
			}
		}
	}
	if o.workers < 1 || o.workers > config.MaxWorkers {
		return run.ExtractOptions{}, usage(fmt.Errorf("--workers %d: want 1 to %d", o.workers, config.MaxWorkers))
	}
	return run.ExtractOptions{Full: o.full, Entities: ents, MaxCalls: o.maxCalls, Progress: progress,
		Workspaces: o.workspaces, Streams: o.streams, Workers: o.workers}, nil
}

func runExtract(ctx context.Context, cmd *cobra.Command, opts extractOptions, g *globalOptions, _ []string) (err error) {
	if opts.dryRun {
		return runPlan(ctx, cmd, opts, g, nil)
	}
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	o, err := opts.crawl(g.stderr)
	if err != nil {
		return err
	}
	r, st, closeStore, err := w.writer(ctx, true)
	if err != nil {
		return err
	}
	defer closing(&err, closeStore)
	res := r.Extract(ctx, st, o)
	printRun(g.stdout, res)
	return runErr(res)
}
