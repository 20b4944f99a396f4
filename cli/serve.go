package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/run"
	"github.com/drextract/drextract/serve"
)

func init() { register(newServeCommand) }

type serveOptions struct {
	listen    string
	listenAny bool

	// Test hooks: the clock every component runs on, and a callback once the scheduler
	// and the status endpoint are up.
	clock   clock.Clock
	onReady func(s *serve.Scheduler, addr net.Addr)
}

func (o *serveOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.listen, "listen", serve.DefaultListen, "address of the read-only status endpoint (/healthz, /status, /metrics)")
	f.BoolVar(&o.listenAny, "listen-any", false, "allow --listen on a non-loopback address (the endpoint has no authentication)")
}

func newServeCommand(g *globalOptions) *cobra.Command {
	var opts serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the schedules of the configuration file as a daemon",
		Long: `serve runs the schedules of the configuration file (--config) until SIGTERM or SIGINT.

One run writes at a time: a schedule that fires while another run is under way is queued
or skipped, as its "concurrency" says. serve holds the data directory's lock for its whole
life, so a second serve or a writing command (extract, act, export) is refused with the
holder's pid; read-only commands (query, status) keep working. The live store is open only
while a run writes, and serving.duckdb is published after every run.

A schedule with "after: OTHER" runs right after each run of OTHER that ended ok (or any
that ended, with "when: always"), ahead of the runs waiting. With notify.webhooks in the
configuration, runs that end failed, partial or quota_exhausted, action items that failed
again and streams that keep failing are posted to the webhooks (drextract notify test).

A read-only HTTP endpoint answers on --listen (loopback only unless --listen-any):
  GET /healthz   "ok"
  GET /status    JSON: schedules (last and next run, last result), budget per token
                 fingerprint, data freshness per table
  GET /metrics   Prometheus text: API calls by endpoint and status, 429s, quota left,
                 run durations, rows loaded

SIGTERM/SIGINT: the run in progress finishes its page, commits and stops; serve exits
within seconds. A second signal exits at once (the store stays consistent: every page
commits atomically).

Exit codes: 0 stopped by a signal, 1 failure (config, lock, listener), 2 usage,
130 abandoned by a second signal.`,
		Example: `  drextract serve
  drextract serve --config /etc/drextract/schedules.yaml --listen 127.0.0.1:9464`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error { return runServe(cmd.Context(), cmd, opts, g, args) },
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runServe(ctx context.Context, cmd *cobra.Command, opts serveOptions, g *globalOptions, _ []string) error {
	// The first SIGINT/SIGTERM cancels ctx (cli.Do); a second one abandons the graceful
	// wait. Both arrive here too, so the first is counted as well.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	w, err := loadWiring(cmd, g)
	if err != nil {
		return err
	}
	if opts.clock != nil {
		w.setClock(opts.clock)
	}
	cfg, log := w.cfg, w.log
	if len(cfg.Schedules) == 0 {
		return usage(fmt.Errorf("%s has no schedules: nothing to serve", g.configPath))
	}
	tokens, err := w.tokens()
	if err != nil {
		return err
	}
	// Listen before taking the lock and touching the store: a port in use or a refused
	// address is the commonest start-up mistake and costs nothing to report.
	ln, err := serve.Listen(ctx, opts.listen, opts.listenAny)
	if err != nil {
		return err
	}
	defer ln.Close()

	unlock, err := load.LockDir(cfg.Store.DataDir)
	if err != nil {
		return err
	}
	defer func() {
		if err := unlock(); err != nil {
			log.Warn("releasing the data-directory lock", "error", err)
		}
	}()

	metrics := serve.NewMetrics()
	r := w.runner(w.pool(tokens))
	r.Observer = run.MetricsObserver(metrics)
	d, err := run.NewDaemon(ctx, r)
	if err != nil {
		return err
	}
	sched, err := serve.New(serve.Options{
		Schedules: cfg.Schedules, Runner: d, Clock: w.clock, Logger: log, Metrics: metrics,
	})
	if err != nil {
		return err
	}
	handler := serve.NewHandler(serve.HTTPOptions{
		Scheduler: sched, Metrics: metrics, Budget: d.Budget, Freshness: d.Freshness,
		Version: Version, Logger: log,
	})

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	httpErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		httpErr <- serve.Serve(ctx, ln, handler)
	}()
	schedDone := make(chan struct{})
	schedErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(schedDone)
		schedErr <- sched.Run(ctx)
	}()
	log.Info("serving", "listen", ln.Addr().String(), "schedules", len(cfg.Schedules),
		"data_dir", cfg.Store.DataDir, "tokens", len(tokens))
	if opts.onReady != nil {
		opts.onReady(sched, ln.Addr())
	}

	var runErr error
	select {
	case err := <-httpErr:
		runErr = err // the endpoint died: stop the daemon rather than run blind
		cancel()
	case <-ctx.Done():
	}
	log.Info("stopping: waiting for the run in progress to commit")
	signals := 0
	for {
		select {
		case <-schedDone:
			wg.Wait()
			if err := <-schedErr; err != nil && !errors.Is(err, context.Canceled) {
				runErr = errors.Join(runErr, fmt.Errorf("the scheduler stopped: %w", err))
			}
			if runErr != nil {
				return runErr
			}
			log.Info("stopped")
			return nil
		case <-sigs:
			signals++
			if signals >= 2 {
				log.Warn("second signal: exiting without waiting for the run in progress")
				return fmt.Errorf("interrupted twice: abandoned the run in progress (every committed page is kept): %w", context.Canceled)
			}
		}
	}
}
