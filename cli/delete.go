package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/drextract/drextract/action"
)

func init() { register(newDeleteCommand) }

type deleteOptions struct {
	guards  actGuards
	streams []int64
}

func newDeleteCommand(g *globalOptions) *cobra.Command {
	var opts deleteOptions
	cmd := &cobra.Command{
		Use:   "delete --stream S…",
		Short: "Delete streams (guarded: --max-delete, --force)",
		Long: `delete deletes streams at Datorama (DELETE /v1/data-streams/{id}), one call per stream,
through the same planner as every action: the plan is printed and nothing is sent without
--yes. A plan deleting more than --max-delete streams (default 10) is refused, and so is
one deleting a stream that ran in the last 24 h or has a job pending (as the store knows
it), unless --force. Once the API confirms, the stream, its jobs and its mapping are
marked deleted in the store, their history closed. A call whose answer was lost is
settled by reading the stream (404: it was deleted), never sent again blindly. Many
streams: act --csv FILE --action delete (header stream_id).

` + itemExitCodes,
		Example: `  drextract delete --stream 3974201
  drextract delete --stream 3974201,3973838 --yes
  drextract delete --stream 3974201 --force --yes`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDelete(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.guards.AddFlags(cmd.Flags(), false, false)
	opts.guards.addDeleteFlags(cmd.Flags())
	cmd.Flags().Int64SliceVar(&opts.streams, "stream", nil, "a stream id (repeatable, or comma-separated)")
	return cmd
}

func runDelete(ctx context.Context, cmd *cobra.Command, opts deleteOptions, g *globalOptions, _ []string) error {
	if len(opts.streams) == 0 {
		return usage(errors.New("--stream is required"))
	}
	req := action.Request{Op: action.OpDelete, Source: action.Source{Kind: "command", Name: "delete"}, Options: opts.guards.options()}
	seen := map[int64]bool{}
	for i, s := range opts.streams {
		if s <= 0 || seen[s] {
			return usage(fmt.Errorf("--stream %d: not a stream id, or given twice", s))
		}
		seen[s] = true
		req.Rows = append(req.Rows, action.Row{Line: i + 1, StreamID: s})
	}
	return runItemCommand(ctx, cmd, g, req, opts.guards)
}
