package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/drextract/drextract/action"
)

func init() { register(newCreateCommand) }

// createKinds maps the command's KIND argument to its operation.
var createKinds = map[string]action.Op{
	"stream":                 action.OpCreateStream,
	"pattern":                action.OpCreatePattern,
	"calculated-measurement": action.OpCreateCalc,
}

type createOptions struct {
	guards    actGuards
	workspace int64
	json      string
	csv       string
}

func newCreateCommand(g *globalOptions) *cobra.Command {
	var opts createOptions
	cmd := &cobra.Command{
		Use:   "create stream|pattern|calculated-measurement --workspace ID (--json FILE | --csv FILE)",
		Short: "Create streams, patterns or calculated measurements from their JSON body",
		Long: `create creates entities in a workspace from their body exactly as the API takes it: a JSON
object with at least a "name" (POST /v1/data-streams, POST /v1/harmonization/patterns,
POST /v1/workspaces/{id}/calculated-measurements). --json FILE holds one object (- for
stdin); --csv FILE creates many: a header line "json" and one object per line, quoted as
CSV quotes a field. The workspace comes from --workspace and is added to a body that lacks
workspaceId; a body naming another workspace is refused.

Like every action it is planned first (a name the workspace already has in the store is
skipped) and sent only with --yes, one call at a time, audited in action_runs /
action_calls / action_items, where created_id holds the new id. A call whose answer was
lost is settled by looking for the name in the workspace's listing, never sent again
blindly. The created entity is stored at once.

` + itemExitCodes,
		Example: `  drextract create stream --workspace 27405 --json ga-site-b.json
  drextract create stream --workspace 27405 --json ga-site-b.json --yes
  drextract create pattern --workspace 27405 --json pattern.json --yes
  drextract create calculated-measurement --workspace 27405 --csv measures.csv --yes`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCreate(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.guards.AddFlags(cmd.Flags(), false, false)
	cmd.Flags().Int64Var(&opts.workspace, "workspace", 0, "the workspace to create in")
	cmd.Flags().StringVar(&opts.json, "json", "", "a file holding one JSON object, the entity as the API takes it (- for stdin)")
	cmd.Flags().StringVar(&opts.csv, "csv", "", `a CSV file with the header "json" and one JSON object per line (- for stdin)`)
	return cmd
}

func runCreate(ctx context.Context, cmd *cobra.Command, opts createOptions, g *globalOptions, args []string) error {
	op, ok := createKinds[args[0]]
	if !ok {
		return usage(fmt.Errorf("create %q: want stream, pattern or calculated-measurement", args[0]))
	}
	switch {
	case opts.workspace <= 0:
		return usage(errors.New("--workspace is required (a workspace id)"))
	case (opts.json == "") == (opts.csv == ""):
		return usage(errors.New("give --json FILE or --csv FILE"))
	}
	req := action.Request{Op: op, Options: opts.guards.options()}
	if opts.csv != "" {
		rows, err := readInput(opts.csv, g.stdin, func(r io.Reader, name string) ([]action.Row, error) {
			return action.ParseCreateCSV(r, name, op, opts.workspace)
		})
		if err != nil {
			return usage(err)
		}
		req.Rows, req.Source = rows, action.Source{Kind: "csv", Name: opts.csv}
	} else {
		text, err := readAll(opts.json, g.stdin)
		if err != nil {
			return usage(err)
		}
		body, err := action.ParseBody(string(text))
		if err != nil {
			return usage(fmt.Errorf("%s: %w", opts.json, err))
		}
		req.Rows = []action.Row{{Line: 1, WorkspaceID: opts.workspace, Body: body}}
		req.Source = action.Source{Kind: "command", Name: "create " + args[0]}
	}
	return runItemCommand(ctx, cmd, g, req, opts.guards)
}

// readInput opens path (- for stdin) and parses it with parse, which gets a name for
// its errors.
func readInput(path string, stdin io.Reader, parse func(io.Reader, string) ([]action.Row, error)) ([]action.Row, error) {
	if path == "-" {
		if stdin == nil {
			return nil, errors.New("no standard input")
		}
		return parse(stdin, "stdin")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parse(f, path)
}

// readAll reads a whole small input file (- for stdin).
func readAll(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		if stdin == nil {
			return nil, errors.New("no standard input")
		}
		return io.ReadAll(io.LimitReader(stdin, 2<<20))
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 2<<20))
}
