package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/drextract/drextract/extract"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/run"
)

func init() { register(newPlanCommand) }

func newPlanCommand(g *globalOptions) *cobra.Command {
	var opts extractOptions
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print what the next extract would cost, per entity, against today's quota",
		Long: `plan (the same as extract --dry-run) prints, per entity, how many API calls the next
extract with the same flags needs for certain and at most (if every stream ran since the
last crawl), and how that compares with the daily quota the tokens have left today. It
works from the store's checkpoints and the shared rate-budget state only: it makes no API
call and does not take the data directory's lock.

Before the first crawl only the workspace list is certain. --probe first reads the
workspace list and every workspace's stream list (1 + W calls, stored like any crawl's),
so the plan can count the streams. It takes the data directory's lock and the tokens, as
extract does.

Exit codes: 0 ok, 1 failure, 2 usage, 3 partial (--probe: some listing failed),
4 quota exhausted (--probe).`,
		Example: `  drextract plan
  drextract plan --probe
  drextract plan --full --entities jobs`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPlan(cmd.Context(), cmd, opts, g, args)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.full, "full", false, "plan a full re-read")
	f.StringSliceVar(&opts.entities, "entities", nil, "plan only these entities (comma-separated)")
	f.BoolVar(&opts.probe, "probe", false, "first read the workspace and stream lists (1 + W calls) so the plan can count the streams")
	return cmd
}

func runPlan(ctx context.Context, cmd *cobra.Command, opts extractOptions, g *globalOptions, _ []string) (err error) {
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	ents, err := extract.ParseEntities(opts.entities)
	if err != nil {
		return usage(err)
	}
	copts := extract.Options{Full: opts.full, Entities: ents, Schedule: "cli", Clock: w.api, Logger: w.log,
		Workspaces: opts.workspaces, Streams: opts.streams}
	cr := &extract.Crawler{}
	// Without tokens the quota is unknown, but the calls still can be counted.
	if tokens, err := w.tokens(); err == nil {
		pool := w.pool(tokens)
		cr.Pool, cr.Quota = pool, quota(pool)
	} else if opts.probe {
		return err
	}
	if opts.probe {
		r, st, closeStore, err := w.writer(ctx, false)
		if err != nil {
			return err
		}
		defer closing(&err, closeStore)
		r.Pool = cr.Pool
		res := r.Extract(ctx, st, run.ExtractOptions{Entities: []string{load.Workspaces, load.Streams}})
		fmt.Fprintf(g.stdout, "probe: %d API calls, %s\n", res.Calls, rowsPerTable(res.Rows))
		if err := runErr(res); err != nil {
			return err
		}
		cr.Sink = st
	} else if load.Exists(w.cfg.Store.DuckDBPath()) {
		store, err := w.openStoreReadOnly(ctx)
		if err != nil {
			return err
		}
		defer closing(&err, store.Close)
		cr.Sink = store
	}
	p, err := cr.Plan(ctx, copts)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "next %s:\n", map[bool]string{true: "full extract", false: "extract"}[opts.full])
	return p.Write(g.stdout)
}
