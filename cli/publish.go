package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/publish"
)

func init() { register(newPublishCommand) }

type publishOptions struct {
	full bool
}

func (o *publishOptions) AddFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.full, "full", false, "rewrite every PostgreSQL table instead of sending what changed since the last publish")
}

func newPublishCommand(g *globalOptions) *cobra.Command {
	var opts publishOptions
	cmd := &cobra.Command{
		Use:   "publish [--full]",
		Short: "Refresh serving.duckdb and, when configured, the PostgreSQL schema, now",
		Long: `publish refreshes the read-only copy <data-dir>/serving.duckdb and, when schedules.yaml
has a publish.postgres section, the PostgreSQL schema BI tools read. Every command that
writes the store publishes after its run anyway; publish is for catching up after a
failed publish, or for a first publish into a new database.

PostgreSQL gets only the rows written since its last publish, in one transaction (a BI
query sees whole runs or nothing); --full rewrites every table. drextract creates and
migrates the schema, and refuses one written by a newer drextract or by another store.
The connection string is never printed. publish prints the rows sent per table.

Exit codes: 0 ok, 1 failure (no store, locked, the serving copy or PostgreSQL failed),
2 usage or invalid config, 130 interrupted.`,
		Example: `  DRX_POSTGRES_DSN='postgres://drextract@db.internal/analytics?sslmode=verify-full' drextract publish`,
		Args:    args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runPublish(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runPublish(ctx context.Context, cmd *cobra.Command, opts publishOptions, g *globalOptions, _ []string) (err error) {
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	live := w.cfg.Store.DuckDBPath()
	if !load.Exists(live) {
		return fmt.Errorf("no store at %s: run drextract extract first", live)
	}
	st, closeStore, err := w.openStore(ctx)
	if err != nil {
		return err
	}
	defer closing(&err, closeStore)
	res, err := publish.Run(ctx, st, w.cfg, publish.Options{Full: opts.full, Logger: w.log})
	printPublish(g.stdout, res)
	if w.cfg.Postgres() == nil {
		fmt.Fprintln(g.stdout, "no PostgreSQL target (publish.postgres in schedules.yaml): only the serving copy was refreshed")
	}
	return err
}

// printPublish writes what a publish did: the serving copy, then PostgreSQL's totals and
// each table that got rows, with the rows the runs since the previous publish wrote.
func printPublish(w io.Writer, res publish.Result) {
	if res.Serving != "" {
		fmt.Fprintf(w, "published %s\n", res.Serving)
	}
	pg := res.Postgres
	if pg == nil {
		return
	}
	how := "incremental"
	if pg.Full {
		how = "full"
	}
	fmt.Fprintf(w, "published to PostgreSQL schema %s (%s): %s publish %d, %d rows sent, %d runs, in %s\n",
		pg.Schema, pg.Target, how, pg.Serial, pg.Sent(), len(pg.Runs), pg.Duration.Round(time.Millisecond))
	for _, t := range pg.Tables {
		if t.Sent == 0 && t.Deleted == 0 {
			continue
		}
		fmt.Fprintf(w, "  %-28s %9d sent %9d written %9d deleted\n", t.Table, t.Sent, t.Written, t.Deleted)
	}
}
