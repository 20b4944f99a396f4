package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/drextract/drextract/load"
)

func init() { register(newExportCommand) }

func newExportCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "export",
		Short: "Export the store to Parquet and publish the BI copy serving.duckdb",
		Long: `Export every table of the store to Parquet under <data-dir>/parquet/<table>/ (zstd;
jobs partitioned by the year and month of their data start date) and publish the
read-only BI copy <data-dir>/serving.duckdb.

Both are replaced whole: readers see the previous complete version until the new one is
complete, also if the export is killed half-way. The export takes the data directory's
writer lock, so it waits for no one: while a crawl runs it is refused with that crawl's pid.

Exit codes: 0 ok, 1 failure (no store, locked, I/O error), 130 interrupted.`,
		Example: `  drextract export
  drextract export --data-dir /srv/drextract`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExportCommand(cmd.Context(), cmd, g, args)
		},
	}
}

func runExportCommand(ctx context.Context, cmd *cobra.Command, g *globalOptions, _ []string) error {
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	live := w.cfg.Store.DuckDBPath()
	if _, err := os.Stat(live); err != nil {
		return fmt.Errorf("no store at %s: run drextract extract first", live)
	}
	st, closeStore, err := w.openStore(ctx)
	if err != nil {
		return err
	}
	defer closeStore()

	start := w.clock.Now()
	runID, err := st.StartRun(ctx, load.RunStart{Schedule: "cli", Kind: "export", Started: start})
	if err != nil {
		return err
	}
	stats, err := st.Export(ctx, w.cfg.Store.ParquetDir())
	end := load.RunEnd{Finished: w.clock.Now(), Status: load.RunOK, Rows: map[string]int{}}
	for t, n := range stats.Rows {
		end.Rows[t] = int(n)
	}
	if err != nil {
		end.Status, end.Error = load.RunFailed, err.Error()
	}
	// The run is finished before publishing, so that the serving copy shows it done
	// rather than forever "running"; a failed publish then rewrites it as failed.
	if ferr := st.FinishRun(context.WithoutCancel(ctx), runID, end); ferr != nil || err != nil {
		return errors.Join(err, ferr)
	}
	if err := st.Publish(ctx, w.cfg.Store.ServingPath()); err != nil {
		end.Status, end.Error = load.RunFailed, err.Error()
		return errors.Join(err, st.FinishRun(context.WithoutCancel(ctx), runID, end))
	}
	fmt.Fprintf(g.stdout, "exported %d tables, %d rows, %d files (%.1f MB) to %s in %s\npublished %s\n",
		stats.Tables(), stats.TotalRows(), stats.Files, float64(stats.Bytes)/1e6, w.cfg.Store.ParquetDir(),
		stats.Duration.Round(time.Millisecond), w.cfg.Store.ServingPath())
	return nil
}
