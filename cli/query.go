package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drextract/drextract/load"
)

func init() { register(newQueryCommand) }

type queryOptions struct {
	format  string
	timeout time.Duration
}

func (o *queryOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.format, "format", "table", "output format: table, csv or json")
	f.DurationVar(&o.timeout, "timeout", load.DefaultSQLTimeout, "stop the statement after this long (e.g. 30s, 5m)")
}

func newQueryCommand(g *globalOptions) *cobra.Command {
	var opts queryOptions
	cmd := &cobra.Command{
		Use:   `query "SQL"`,
		Short: "Run one read-only statement against the store",
		Long: `Run one reading SQL statement and print the result.

It reads the serving copy (<data-dir>/serving.duckdb), which BI tools and any number of
queries may hold open at once, also while a crawl is writing. Before the first export
there is no serving copy; then the live store is read, but only while no crawl holds it.

Any statement that reads works: SELECT and WITH, FROM-first queries (FROM jobs LIMIT 5),
DESCRIBE, SHOW TABLES, SUMMARIZE, PIVOT and UNPIVOT, EXPLAIN. DuckDB itself runs it in a
sandbox: the store is opened read-only and nothing else can be reached (no files, no
other databases, no extensions, no settings), and DuckDB's own judgement of the statement
refuses, in one line, everything that writes, attaches, installs, loads, copies, exports,
sets or calls, and a second statement. A statement still running after --timeout is
interrupted ("timed out after 60s").

Exit codes: 0 ok, 1 failure (SQL error, time limit, no store), 2 usage (bad flag, refused
statement).`,
		Example: `  drextract query "select status, count(*) from jobs group by 1"
  drextract query "describe jobs"
  drextract query --format csv "from streams where not is_deleted" > streams.csv`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runQuery(cmd.Context(), cmd, opts, g, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runQuery(ctx context.Context, cmd *cobra.Command, opts queryOptions, g *globalOptions, args []string) error {
	p, err := newResultWriter(g.stdout, opts.format)
	if err != nil {
		return usage(err)
	}
	if opts.timeout <= 0 {
		return usage(fmt.Errorf("--timeout %s: want a positive duration, e.g. 60s", opts.timeout))
	}
	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	path, release, err := queryStorePath(w)
	if err != nil {
		return err
	}
	defer release()
	sb, err := load.OpenSandbox(ctx, path, load.SandboxOptions{Timeout: opts.timeout})
	if err != nil {
		return err
	}
	defer sb.Close()
	err = sb.QueryEach(ctx, args[0], nil, p.header, p.row)
	if errors.Is(err, load.ErrRefused) {
		return usage(err)
	}
	if err != nil {
		return err
	}
	return p.end(false)
}

// queryStorePath names the file a query reads: the serving copy or, when none was
// published yet, the live store, while holding the writer lock (release gives it back),
// so that no crawl starts (and fails on DuckDB's file lock) while the query runs.
func queryStorePath(w *wiring) (path string, release func(), err error) {
	serving, live := w.cfg.Store.ServingPath(), w.cfg.Store.DuckDBPath()
	if _, err := os.Stat(serving); err == nil {
		return serving, func() {}, nil
	}
	if _, err := os.Stat(live); err != nil {
		return "", nil, fmt.Errorf("no store in %s (neither %s nor %s exists); run drextract extract first",
			w.cfg.Store.DataDir, serving, live)
	}
	unlock, err := load.LockDir(w.cfg.Store.DataDir)
	var locked *load.LockedError
	if errors.As(err, &locked) {
		return "", nil, fmt.Errorf("there is no serving copy yet, and the live store is being written: %w; "+
			"query again after it finished, or run drextract export then", err)
	}
	if err != nil {
		return "", nil, err
	}
	w.log.Info("no serving copy yet; reading the live store", "path", live)
	return live, func() {
		if err := unlock(); err != nil {
			w.log.Warn("releasing the data directory lock", "error", err)
		}
	}, nil
}
