package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drextract/drextract/action"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
	"github.com/drextract/drextract/run"
)

func init() { register(newActCommand) }

// actGuards are the flags every command that changes something at Datorama shares.
type actGuards struct {
	yes       bool
	verbose   bool
	maxCalls  int
	maxRows   int
	chunkDays int
	queueMax  int
	cooldown  time.Duration
	forcePut  bool
	outDir    string
	maxDelete int
	force     bool
}

// AddFlags adds the guard-rail flags; jobs says whether the command starts jobs (the
// pending cap and the cooldown apply), chunks whether it processes date ranges.
func (o *actGuards) AddFlags(f *pflag.FlagSet, jobs, chunks bool) {
	f.BoolVar(&o.yes, "yes", false, "send the plan; without it the plan is printed and nothing is sent")
	f.BoolVar(&o.verbose, "verbose", false, "also print each request of a dry run (method, path, body)")
	f.IntVar(&o.maxCalls, "max-calls", 0, "refuse a plan that needs more API calls than this (0: no limit)")
	if jobs {
		f.IntVar(&o.queueMax, "queue-max", 0, fmt.Sprintf("at most this many of our jobs pending at once per workspace; more waits (0: %d, -1: no cap)", action.DefaultQueueMax))
		f.DurationVar(&o.cooldown, "cooldown", 0, fmt.Sprintf("skip what was sent less than this ago (0: %s, -1s: none)", action.DefaultCooldown))
	}
	if chunks {
		f.IntVar(&o.chunkDays, "chunk-days", action.DefaultChunkDays, "process ranges in chunks of at most this many days")
	}
}

// addDeleteFlags adds the guard rails of deleting streams.
func (o *actGuards) addDeleteFlags(f *pflag.FlagSet) {
	f.IntVar(&o.maxDelete, "max-delete", action.DefaultMaxDelete, "action delete: refuse a plan that deletes more streams than this (-1: no limit)")
	f.BoolVar(&o.force, "force", false, "action delete: also delete streams that ran in the last 24 h (or have a job pending)")
}

func (o actGuards) options() action.Options {
	return action.Options{MaxCalls: o.maxCalls, MaxRows: o.maxRows, ChunkDays: o.chunkDays, QueueMax: o.queueMax,
		Cooldown: o.cooldown, ForcePut: o.forcePut, OutDir: o.outDir, MaxDelete: o.maxDelete, Force: o.force}
}

type actOptions struct {
	guards actGuards
	csv    string
	op     string
	params []string
}

func (o *actOptions) AddFlags(f *pflag.FlagSet) {
	o.guards.AddFlags(f, true, true)
	f.StringVar(&o.csv, "csv", "", "read the rows from this CSV file instead of a selection (- for stdin); needs --action")
	f.StringVar(&o.op, "action", "", "the operation: "+opNames()+" (default: the selection's own)")
	f.StringArrayVar(&o.params, "param", nil, "selection parameter NAME=VALUE (repeatable)")
	f.IntVar(&o.guards.maxRows, "max-rows", 0, "refuse more rows than this (0: the selection's max_rows)")
	f.BoolVar(&o.guards.forcePut, "force-put", false, "allow action put, which replaces whole stream records")
	f.StringVar(&o.guards.outDir, "out-dir", "downloads", "action download: the folder for the files")
	o.guards.addDeleteFlags(f)
}

func opNames() string {
	var names []string
	for _, op := range action.Ops() {
		names = append(names, string(op))
	}
	return strings.Join(names, ", ")
}

const actExitCodes = `Exit codes: 0 ok (or a dry run), 1 failure, 2 usage (a bad selection, CSV or flag; nothing
was sent), 3 partial (some items failed; see drextract actions log), 4 quota exhausted (the
rest was not sent; run again after the reset), 130 interrupted.`

func newActCommand(g *globalOptions) *cobra.Command {
	var opts actOptions
	cmd := &cobra.Command{
		Use:   "act [SELECTION]",
		Short: "Plan a bulk action from a selection or a CSV file, and send it with --yes",
		Long: `act runs a selection (a read-only SQL query over the store, built in or a NAME.sql of the
configured selections_dir) or reads a CSV file, and turns the rows into a plan of grouped API
calls: reruns one call per stream, date ranges in chunks with one batch call per chunk shared
by all streams, renames and patches one call per stream. It prints the plan (rows, skipped
rows and why, calls, estimated time at the current budget) and sends nothing unless --yes.

Guard rails: --max-calls and the selection's max_rows refuse oversized plans; --max-delete
(default 10) refuses a plan deleting more streams, and deleting a stream that ran in the
last 24 h needs --force; a cooldown
(default 6h) keeps sweeps from acting on the same job or range twice; at most --queue-max of
our jobs are pending per workspace at once (the run waits and re-checks); deleted streams,
and disabled ones for reruns and processing, are skipped with the reason. Every call is
audited in action_runs / action_calls / action_items before and after it is sent; a call
whose answer was lost is checked at the API before anything else is sent, never resent
blindly. The next crawl fills in each item's outcome.

Operations and their input columns:
  rerun (stream_id, job_id)     rerun-all (stream_id)     process (stream_id, start_date, end_date)
  rename (stream_id, name)      patch (stream_id, patch)  put (stream_id, patch; needs --force-put)
  enable, disable (stream_id)   mapping (stream_id, patch) download (stream_id, job_id)
  delete (stream_id)            create-stream, create-pattern, create-calculated-measurement
                                (workspace_id, json: the entity as the API takes it)

What a run changes is written to the store at once from the API's answers (renamed and
patched streams, new jobs as PENDING, created entities, deleted streams), and
serving.duckdb is published after the run, so drextract query shows it right away.

` + actExitCodes,
		Example: `  drextract act failed-jobs-24h
  drextract act failed-jobs-24h --yes
  drextract act --csv month.csv --action process --chunk-days 10 --yes
  drextract act names-not-matching --param pattern='^[A-Z]{2} - ' --action disable
  drextract act --csv old-streams.csv --action delete --max-delete 25 --yes`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAct(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runAct(ctx context.Context, cmd *cobra.Command, opts actOptions, g *globalOptions, args []string) error {
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	var op action.Op
	if opts.op != "" {
		if op, err = action.ParseOp(opts.op); err != nil {
			return usage(err)
		}
	}
	req := action.Request{Op: op, Options: opts.guards.options()}
	switch {
	case len(args) == 1 && opts.csv != "":
		return usage(errors.New("give a selection or --csv, not both"))
	case len(args) == 1:
		cat, err := action.LoadCatalog(w.cfg.SelectionsDir)
		if err != nil {
			return usage(err)
		}
		sel, err := cat.Get(args[0])
		if err != nil {
			return usage(err)
		}
		params, err := parseParams(opts.params)
		if err != nil {
			return err
		}
		req.Selection, req.Params = sel, params
		req.Source = action.Source{Kind: "selection", Name: sel.Name}
	case opts.csv != "":
		if op == "" {
			return usage(errors.New("--csv needs --action (one of: " + opNames() + ")"))
		}
		if len(opts.params) > 0 {
			return usage(errors.New("--param is for selections, not CSV files"))
		}
		rows, err := readActCSV(opts.csv, g.stdin, op)
		if err != nil {
			return usage(err)
		}
		req.Rows = rows
		req.Source = action.Source{Kind: "csv", Name: opts.csv}
	default:
		return usage(errors.New("name a selection (drextract select lists them) or give --csv FILE --action OP"))
	}
	return runActionRequest(ctx, w, g, req, opts.guards)
}

func readActCSV(path string, stdin io.Reader, op action.Op) ([]action.Row, error) {
	return readInput(path, stdin, func(r io.Reader, name string) ([]action.Row, error) { return action.ParseCSV(r, name, op) })
}

func parseParams(kv []string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range kv {
		k, v, ok := strings.Cut(p, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, usage(fmt.Errorf("--param %q: want NAME=VALUE", p))
		}
		out[strings.TrimSpace(k)] = v
	}
	return out, nil
}

// runActionRequest plans a request, prints the plan and, with --yes, executes it. A dry
// run reads the store read-only and needs no token; a real run takes the data
// directory's lock and the API tokens.
func runActionRequest(ctx context.Context, w *wiring, g *globalOptions, req action.Request, guards actGuards) (err error) {
	req.StartedBy = startedBy()
	o := run.ActionOptions{Request: req, DryRun: !guards.yes, Priority: ratelimit.Interactive,
		OnPlan: func(p *action.Plan) error { return action.WritePlan(g.stdout, p) }}
	var (
		r  *run.Runner
		st *load.Store
	)
	if o.DryRun {
		if st, err = w.openStoreReadOnly(ctx); err != nil {
			return err
		}
		defer closing(&err, st.Close)
		r = w.runner(nil)
		if guards.verbose {
			o.Out = g.stdout
		}
	} else {
		var closeStore func() error
		if r, st, closeStore, err = w.writer(ctx, true); err != nil {
			return err
		}
		defer closing(&err, closeStore)
		o.Out = g.stdout
	}
	res := r.Action(ctx, st, o)
	if res.Action != nil && res.Action.Report != nil {
		if perr := action.WriteReport(g.stdout, res.Action.Report); perr != nil {
			return perr
		}
	}
	return runErr(res)
}

// startedBy names who started a run from the command line.
func startedBy() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil && u.Username != "" {
		name = u.Username
	}
	if name == "" {
		name = "unknown"
	}
	return "cli:" + name
}
