package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/drextract/drextract/action"
	"github.com/drextract/drextract/datorama"
)

// The single-item commands are shorthands for act: they build the rows from flags and go
// through the same planner, guard rails and audit.

func init() {
	register(newRerunCommand)
	register(newProcessCommand)
	register(newRenameCommand)
	register(newPatchCommand)
	register(func(g *globalOptions) *cobra.Command { return newToggleCommand(g, action.OpEnable) })
	register(func(g *globalOptions) *cobra.Command { return newToggleCommand(g, action.OpDisable) })
	register(newDownloadCommand)
}

const itemExitCodes = `Without --yes the plan is printed and nothing is sent.

` + actExitCodes

type rerunOptions struct {
	guards actGuards
	stream int64
	jobs   []int64
	all    bool
}

func newRerunCommand(g *globalOptions) *cobra.Command {
	var opts rerunOptions
	cmd := &cobra.Command{
		Use:   "rerun ([--stream S] --job J… | --stream S --all)",
		Short: "Rerun jobs (one call per stream), or all of a stream's jobs",
		Long: `rerun reruns the given jobs, one call per stream, or with --all every job of the stream.
Without --stream each job's stream is taken from the store, or, for a job the store does
not have yet, found with one lookup call (GET /v1/data-stream-stat/{id}) when sending with
--yes; the job is then stored too. A dry run makes no API call, so it needs the job in the
store or its --stream.

The new jobs are stored as PENDING right away; the next crawl follows them.

` + itemExitCodes,
		Example: `  drextract rerun --job 377021020 --yes
  drextract rerun --stream 3974201 --job 377021020 --job 377723753 --yes
  drextract rerun --stream 3974201 --all`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRerun(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.guards.AddFlags(cmd.Flags(), true, false)
	cmd.Flags().Int64Var(&opts.stream, "stream", 0, "the stream id (default: each job's own, from the store or one lookup)")
	cmd.Flags().Int64SliceVar(&opts.jobs, "job", nil, "a job id (repeatable, or comma-separated)")
	cmd.Flags().BoolVar(&opts.all, "all", false, "rerun every job of the stream (rerun-all)")
	return cmd
}

func runRerun(ctx context.Context, cmd *cobra.Command, opts rerunOptions, g *globalOptions, _ []string) error {
	if opts.all == (len(opts.jobs) > 0) {
		return usage(errors.New("give --job (one or more) or --stream with --all"))
	}
	if opts.stream < 0 || opts.all && opts.stream == 0 {
		return usage(errors.New("--all needs --stream (a stream id)"))
	}
	req := action.Request{Op: action.OpRerun, Source: action.Source{Kind: "command", Name: "rerun"}, Options: opts.guards.options()}
	if opts.all {
		req.Op, req.Source.Name = action.OpRerunAll, "rerun --all"
		req.Rows = []action.Row{{Line: 1, StreamID: opts.stream}}
	}
	for i, j := range opts.jobs {
		if j <= 0 {
			return usage(fmt.Errorf("--job %d is not a job id", j))
		}
		req.Rows = append(req.Rows, action.Row{Line: i + 1, StreamID: opts.stream, JobID: j})
	}
	return runItemCommand(ctx, cmd, g, req, opts.guards)
}

type processOptions struct {
	guards   actGuards
	streams  []int64
	from, to string
}

func newProcessCommand(g *globalOptions) *cobra.Command {
	var opts processOptions
	cmd := &cobra.Command{
		Use:   "process --stream S… --from DATE --to DATE",
		Short: "Process streams for a date range, in chunks, one batch call per chunk",
		Long: `process asks Datorama to process the streams for the days from --from to --to (inclusive,
yyyy-MM-dd), cut into chunks of --chunk-days; streams share one batch call per chunk.

` + itemExitCodes,
		Example: `  drextract process --stream 3973838,3973840 --from 2021-06-01 --to 2021-06-30 --yes`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runProcess(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.guards.AddFlags(cmd.Flags(), true, true)
	cmd.Flags().Int64SliceVar(&opts.streams, "stream", nil, "a stream id (repeatable, or comma-separated)")
	cmd.Flags().StringVar(&opts.from, "from", "", "first day, yyyy-MM-dd")
	cmd.Flags().StringVar(&opts.to, "to", "", "last day, yyyy-MM-dd")
	return cmd
}

func runProcess(ctx context.Context, cmd *cobra.Command, opts processOptions, g *globalOptions, _ []string) error {
	if len(opts.streams) == 0 || opts.from == "" || opts.to == "" {
		return usage(errors.New("--stream, --from and --to are required"))
	}
	from, err := datorama.ParseDate(opts.from)
	if err != nil {
		return usage(fmt.Errorf("--from: %w", err))
	}
	to, err := datorama.ParseDate(opts.to)
	if err != nil {
		return usage(fmt.Errorf("--to: %w", err))
	}
	if to.Before(from.Time) {
		return usage(fmt.Errorf("--to %s is before --from %s", opts.to, opts.from))
	}
	req := action.Request{Op: action.OpProcess, Source: action.Source{Kind: "command", Name: "process"}, Options: opts.guards.options()}
	seen := map[int64]bool{}
	for i, s := range opts.streams {
		if s <= 0 || seen[s] {
			return usage(fmt.Errorf("--stream %d: not a stream id, or given twice", s))
		}
		seen[s] = true
		req.Rows = append(req.Rows, action.Row{Line: i + 1, StreamID: s, StartDate: from, EndDate: to})
	}
	return runItemCommand(ctx, cmd, g, req, opts.guards)
}

type renameOptions struct {
	guards actGuards
	csv    string
	stream int64
	name   string
}

func newRenameCommand(g *globalOptions) *cobra.Command {
	var opts renameOptions
	cmd := &cobra.Command{
		Use:   "rename (--csv FILE | --stream S --name NAME)",
		Short: "Rename streams from a CSV file (stream_id,name) or one stream",
		Long: `rename renames streams (PATCH of the name only). The CSV file has the header
stream_id,name; any bad line (unknown stream, empty name, wrong column count) refuses the
whole file before any call, naming the line.

` + itemExitCodes,
		Example: `  drextract rename --csv renames.csv
  drextract rename --stream 3974201 --name "US - GA - Site A" --yes`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRename(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.guards.AddFlags(cmd.Flags(), false, false)
	cmd.Flags().StringVar(&opts.csv, "csv", "", "CSV file with the header stream_id,name (- for stdin)")
	cmd.Flags().Int64Var(&opts.stream, "stream", 0, "the stream to rename")
	cmd.Flags().StringVar(&opts.name, "name", "", "its new name")
	return cmd
}

func runRename(ctx context.Context, cmd *cobra.Command, opts renameOptions, g *globalOptions, _ []string) error {
	req := action.Request{Op: action.OpRename, Options: opts.guards.options()}
	switch {
	case opts.csv != "" && (opts.stream != 0 || opts.name != ""):
		return usage(errors.New("give --csv or --stream with --name, not both"))
	case opts.csv != "":
		rows, err := readActCSV(opts.csv, g.stdin, action.OpRename)
		if err != nil {
			return usage(err)
		}
		req.Rows, req.Source = rows, action.Source{Kind: "csv", Name: opts.csv}
	case opts.stream > 0 && strings.TrimSpace(opts.name) != "":
		req.Rows = []action.Row{{Line: 1, StreamID: opts.stream, Name: strings.TrimSpace(opts.name)}}
		req.Source = action.Source{Kind: "command", Name: "rename"}
	default:
		return usage(errors.New("give --csv FILE, or --stream S --name NAME"))
	}
	return runItemCommand(ctx, cmd, g, req, opts.guards)
}

type patchOptions struct {
	guards  actGuards
	streams []int64
	set     []string
	mapping bool
}

func newPatchCommand(g *globalOptions) *cobra.Command {
	var opts patchOptions
	cmd := &cobra.Command{
		Use:   "patch --stream S… --set FIELD=VALUE…",
		Short: "Change fields of streams (PATCH with only those fields)",
		Long: `patch changes only the given fields of each stream. A VALUE that reads as JSON (true, 12,
null, {"a":1}, "text") is sent as that JSON; anything else as a string. With --force-put the
whole stream is read, merged with the fields and written back with PUT, which clears every
field the API did not return: prefer the default PATCH. With --mapping the fields are merged
into the stream's mapping instead (GET, merge, PUT of the mapping).

` + itemExitCodes,
		Example: `  drextract patch --stream 3974201 --set name="US - GA" --set runOnlyAsPartOfWorkflow=false --yes`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPatch(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.guards.AddFlags(cmd.Flags(), false, false)
	cmd.Flags().Int64SliceVar(&opts.streams, "stream", nil, "a stream id (repeatable, or comma-separated)")
	cmd.Flags().StringArrayVar(&opts.set, "set", nil, "FIELD=VALUE to set (repeatable)")
	cmd.Flags().BoolVar(&opts.guards.forcePut, "force-put", false, "replace the whole record with PUT (GET, merge, PUT) instead of PATCH")
	cmd.Flags().BoolVar(&opts.mapping, "mapping", false, "merge the fields into the stream's mapping")
	return cmd
}

func runPatch(ctx context.Context, cmd *cobra.Command, opts patchOptions, g *globalOptions, _ []string) error {
	if len(opts.streams) == 0 || len(opts.set) == 0 {
		return usage(errors.New("--stream and --set are required"))
	}
	patch, err := setFlagsPatch(opts.set)
	if err != nil {
		return usage(err)
	}
	op := action.OpPatch
	switch {
	case opts.mapping && opts.guards.forcePut:
		return usage(errors.New("--mapping and --force-put do not go together"))
	case opts.mapping:
		op = action.OpMapping
	case opts.guards.forcePut:
		op = action.OpPut
	}
	req := action.Request{Op: op, Source: action.Source{Kind: "command", Name: "patch"}, Options: opts.guards.options()}
	for i, s := range opts.streams {
		req.Rows = append(req.Rows, action.Row{Line: i + 1, StreamID: s, Patch: patch})
	}
	return runItemCommand(ctx, cmd, g, req, opts.guards)
}

// setFlagsPatch turns FIELD=VALUE pairs into a JSON object; a VALUE that is valid JSON is
// taken as JSON, anything else as a string.
func setFlagsPatch(set []string) (json.RawMessage, error) {
	obj := map[string]json.RawMessage{}
	for _, kv := range set {
		k, v, ok := strings.Cut(kv, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("--set %q: want FIELD=VALUE", kv)
		}
		if k == "id" {
			return nil, errors.New(`--set: the id cannot be changed`)
		}
		if _, dup := obj[k]; dup {
			return nil, fmt.Errorf("--set: field %q given twice", k)
		}
		if t := strings.TrimSpace(v); t != "" && json.Valid([]byte(t)) {
			var buf bytes.Buffer
			_ = json.Compact(&buf, []byte(t))
			obj[k] = buf.Bytes()
		} else {
			b, _ := json.Marshal(v)
			obj[k] = b
		}
	}
	return json.Marshal(obj)
}

type toggleOptions struct {
	guards  actGuards
	streams []int64
}

func newToggleCommand(g *globalOptions, op action.Op) *cobra.Command {
	var opts toggleOptions
	verb := "Enable"
	if op == action.OpDisable {
		verb = "Disable"
	}
	cmd := &cobra.Command{
		Use:   string(op) + " --stream S…",
		Short: verb + " streams (PATCH enabled)",
		Long:  verb + " streams; streams already in that state are skipped.\n\n" + itemExitCodes,
		Example: fmt.Sprintf(`  drextract %[1]s --stream 3974201
  drextract %[1]s --stream 3974201,3973838 --yes`, op),
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runToggle(cmd.Context(), cmd, op, opts, g, args)
		},
	}
	opts.guards.AddFlags(cmd.Flags(), false, false)
	cmd.Flags().Int64SliceVar(&opts.streams, "stream", nil, "a stream id (repeatable, or comma-separated)")
	return cmd
}

func runToggle(ctx context.Context, cmd *cobra.Command, op action.Op, opts toggleOptions, g *globalOptions, _ []string) error {
	if len(opts.streams) == 0 {
		return usage(errors.New("--stream is required"))
	}
	req := action.Request{Op: op, Source: action.Source{Kind: "command", Name: string(op)}, Options: opts.guards.options()}
	for i, s := range opts.streams {
		req.Rows = append(req.Rows, action.Row{Line: i + 1, StreamID: s})
	}
	return runItemCommand(ctx, cmd, g, req, opts.guards)
}

type downloadOptions struct {
	guards actGuards
	stream int64
	job    int64
	out    string
}

func newDownloadCommand(g *globalOptions) *cobra.Command {
	var opts downloadOptions
	cmd := &cobra.Command{
		Use:   "download --stream S --job J --out FILE",
		Short: "Download a job's raw data (a zip, or a CSV for TotalConnect streams)",
		Long: `download saves the raw data of a job to --out: written to a temporary file next to it and
renamed into place once complete. Like every other action it is planned first and needs --yes.

` + itemExitCodes,
		Example: `  drextract download --stream 3974201 --job 377021020 --out job.zip --yes`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDownload(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.guards.AddFlags(cmd.Flags(), false, false)
	cmd.Flags().Int64Var(&opts.stream, "stream", 0, "the stream id")
	cmd.Flags().Int64Var(&opts.job, "job", 0, "the job id")
	cmd.Flags().StringVar(&opts.out, "out", "", "the file to write")
	return cmd
}

func runDownload(ctx context.Context, cmd *cobra.Command, opts downloadOptions, g *globalOptions, _ []string) error {
	if opts.stream <= 0 || opts.job <= 0 || opts.out == "" {
		return usage(errors.New("--stream, --job and --out are required"))
	}
	o := opts.guards.options()
	o.OutFile = opts.out
	req := action.Request{Op: action.OpDownload, Source: action.Source{Kind: "command", Name: "download"}, Options: o,
		Rows: []action.Row{{Line: 1, StreamID: opts.stream, JobID: opts.job}}}
	return runItemCommand(ctx, cmd, g, req, opts.guards)
}

func runItemCommand(ctx context.Context, cmd *cobra.Command, g *globalOptions, req action.Request, guards actGuards) error {
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	return runActionRequest(ctx, w, g, req, guards)
}
