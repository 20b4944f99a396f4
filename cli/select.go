package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drextract/drextract/action"
	"github.com/drextract/drextract/load"
)

func init() { register(newSelectCommand) }

type selectOptions struct {
	params []string
	format string
	limit  int
}

func (o *selectOptions) AddFlags(f *pflag.FlagSet) {
	f.StringArrayVar(&o.params, "param", nil, "selection parameter NAME=VALUE (repeatable)")
	f.StringVar(&o.format, "format", "table", "output format: table, csv or json")
	f.IntVar(&o.limit, "limit", 0, "show at most this many rows (0: the selection's max_rows)")
}

func newSelectCommand(g *globalOptions) *cobra.Command {
	var opts selectOptions
	cmd := &cobra.Command{
		Use:   "select [SELECTION]",
		Short: "Show the rows of a selection (without a name: list the selections)",
		Long: `select runs a selection read-only against the store and prints its rows. Selections are
the built-ins (failed-jobs-24h, failed-streams, stale-streams-7d, names-not-matching) and
the NAME.sql files of the configured selections_dir. A selection is one reading statement
(SELECT, WITH, FROM …, PIVOT …); its header comment declares its action, parameters and row
limit:

  -- description: what it selects
  -- action: rerun
  -- param: pattern (required) a regular expression
  -- max_rows: 500

$now and $today are filled from drextract's clock. The SQL runs in DuckDB's sandbox, as
drextract query does: read-only, with no access to files, other databases, extensions or
settings, within sql_timeout (schedules.yaml, default 60s); anything that is not one reading
statement is refused. To act on the rows: drextract act SELECTION.

Exit codes: 0 ok, 1 failure (SQL error, time limit), 2 usage (unknown selection, missing
parameter, refused SQL).`,
		Example: `  drextract select
  drextract select failed-jobs-24h
  drextract select names-not-matching --param pattern='^[A-Z]{2} - .+$' --format csv`,
		Args: args(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSelect(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runSelect(ctx context.Context, cmd *cobra.Command, opts selectOptions, g *globalOptions, args []string) error {
	if _, err := newResultWriter(io.Discard, opts.format); err != nil {
		return usage(err)
	}
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	cat, err := action.LoadCatalog(w.cfg.SelectionsDir)
	if err != nil {
		return usage(err)
	}
	if len(args) == 0 {
		tw := tabwriter.NewWriter(g.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SELECTION\tACTION\tSOURCE\tDESCRIPTION")
		for _, name := range cat.Names() {
			s, _ := cat.Get(name)
			act := string(s.Action)
			if act == "" {
				act = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", s.Name, act, s.Source, s.Description)
		}
		return tw.Flush()
	}
	sel, err := cat.Get(args[0])
	if err != nil {
		return usage(err)
	}
	params, err := parseParams(opts.params)
	if err != nil {
		return err
	}
	limit := opts.limit
	if limit <= 0 {
		limit = sel.MaxRows
	}
	if limit <= 0 {
		limit = action.DefaultMaxRows
	}
	st, err := w.openStoreReadOnly(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	sb, err := st.Sandbox(ctx, w.cfg.Store.ServingPath(), load.SandboxOptions{Timeout: w.cfg.SQLTimeoutDuration()})
	if err != nil {
		return err
	}
	defer sb.Close()
	res, err := sel.Run(ctx, sb, params, w.api.Now(), limit)
	if err != nil {
		return err
	}
	if err := writeResult(g.stdout, opts.format, res); err != nil {
		return err
	}
	if sel.Action != "" && opts.format == "table" && len(res.Rows) > 0 {
		fmt.Fprintf(g.stderr, "To %s these: drextract act %s (prints the plan; add --yes to send)\n", sel.Action, sel.Name)
	}
	return nil
}
