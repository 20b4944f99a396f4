package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drextract/drextract/catalog"
	"github.com/drextract/drextract/config"
)

func init() { register(newDBTSourcesCommand) }

type dbtSourcesOptions struct {
	out    string
	schema string
	source string
}

func (o *dbtSourcesOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.out, "out", "", "write to this file instead of standard output")
	f.StringVar(&o.schema, "schema", "", "the schema the tables are in (default: publish.postgres.schema, else datorama)")
	f.StringVar(&o.source, "source", "drextract", "the dbt source name")
}

func newDBTSourcesCommand(g *globalOptions) *cobra.Command {
	var opts dbtSourcesOptions
	cmd := &cobra.Command{
		Use:   "dbt-sources [--out FILE]",
		Short: "Write a dbt sources.yml describing the published tables and views",
		Long: `dbt-sources writes a dbt sources file (version: 2) naming every published table and view
of the store with its description and its columns' descriptions (sql/catalog.yaml), and
freshness rules on runs (finished) and jobs (last_seen), so dbt source freshness warns when
crawls stop. The schema is publish.postgres.schema (--schema for another, e.g. main for
dbt-duckdb on serving.duckdb).

Exit codes: 0 ok, 1 failure, 2 usage.`,
		Example: `  drextract dbt-sources --out models/staging/drextract/sources.yml`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDBTSources(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runDBTSources(ctx context.Context, cmd *cobra.Command, opts dbtSourcesOptions, g *globalOptions, _ []string) error {
	if opts.source == "" {
		return usage(fmt.Errorf("--source: want a name"))
	}
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	schema := opts.schema
	if schema == "" {
		schema = config.DefaultPostgresSchema
		if pg := w.cfg.Postgres(); pg != nil {
			schema = pg.Schema
		}
	}
	described, err := describeStore(ctx, w)
	if err != nil {
		return err
	}
	o := catalog.DBTOptions{Source: opts.source, Schema: schema}
	if opts.out == "" {
		return catalog.WriteDBT(g.stdout, described, o)
	}
	f, err := os.Create(opts.out)
	if err != nil {
		return err
	}
	if err := catalog.WriteDBT(f, described, o); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "wrote %s (source %s, schema %s)\n", opts.out, opts.source, schema)
	return nil
}
