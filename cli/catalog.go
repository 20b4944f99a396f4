package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drextract/drextract/catalog"
	"github.com/drextract/drextract/load"
)

func init() { register(newCatalogCommand) }

type catalogOptions struct {
	format string
}

func (o *catalogOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.format, "format", "markdown", "output format: markdown or json")
}

func newCatalogCommand(g *globalOptions) *cobra.Command {
	var opts catalogOptions
	cmd := &cobra.Command{
		Use:   "catalog [--format markdown|json]",
		Short: "Print every table, view and column of the store with its type and description",
		Long: `catalog prints the store's tables, views and columns with their types and descriptions
(sql/catalog.yaml: the same text is the COMMENT ON of every table, view and column in the
store, serving.duckdb and PostgreSQL). The schema is the one this drextract makes, plus the
report tables found in serving.duckdb. It needs no API token and writes nothing.

Exit codes: 0 ok, 1 failure, 2 usage.`,
		Example: `  drextract catalog --format json | jq '.[] | select(.name == "jobs_enriched") | .columns'`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCatalog(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runCatalog(ctx context.Context, cmd *cobra.Command, opts catalogOptions, g *globalOptions, _ []string) error {
	if opts.format != "markdown" && opts.format != "json" {
		return usage(fmt.Errorf("--format %q: want markdown or json", opts.format))
	}
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	described, err := describeStore(ctx, w)
	if err != nil {
		return err
	}
	if opts.format == "json" {
		return catalog.WriteJSON(g.stdout, described)
	}
	return catalog.WriteMarkdown(g.stdout, described)
}

// describeStore is the store's objects as this binary makes them, plus the report
// tables of the serving copy, with their descriptions.
func describeStore(ctx context.Context, w *wiring) ([]catalog.Described, error) {
	cat, err := catalog.Load()
	if err != nil {
		return nil, err
	}
	objs, err := load.FreshObjects(ctx)
	if err != nil {
		return nil, fmt.Errorf("describing the store: %w", err)
	}
	if st, err := load.OpenReadOnly(ctx, w.cfg.Store.ServingPath()); err == nil {
		served, err := st.Objects(ctx)
		_ = st.Close()
		if err != nil {
			w.log.Warn("reading the report tables of the serving copy", "err", err)
		}
		known := map[string]bool{}
		for _, o := range objs {
			known[o.Name] = true
		}
		for _, o := range served {
			if !known[o.Name] && strings.HasPrefix(o.Name, "report_") {
				objs = append(objs, o)
			}
		}
	}
	described, missing := cat.Describe(objs)
	if len(missing) > 0 {
		w.log.Warn("objects without a description in the catalog", "missing", strings.Join(missing, ", "))
	}
	return described, nil
}
