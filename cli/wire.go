package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/drextract/drextract/audit"
	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/extract"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/notify"
	"github.com/drextract/drextract/postgres"
	"github.com/drextract/drextract/ratelimit"
	"github.com/drextract/drextract/run"
)

// The wiring shared by the commands that talk to the API or write the store: settings
// from the configuration file (or the environment when there is none), the tokens, a
// rate budget shared through the data directory, a client, and the live store behind the
// data directory's lock. Commands build what they need from these and nothing else, so
// a token is read in exactly one place and never printed.

// wiring is what loadWiring resolved for one command.
type wiring struct {
	cfg   *config.Config
	clock clock.Clock // the host's
	// api is the API's clock, estimated from the Date of its answers and kept with the
	// budget's state between processes: the time every run and comparison with the API's
	// timestamps uses ($now, resets, cooldowns, freshness).
	api *clock.Remote
	log *slog.Logger
	g   *globalOptions

	secrets  []string         // the tokens read, never to be sent in a notification
	notifier *notify.Notifier // built once, by the first runner
}

// wireHooks lets tests run commands on a virtual clock.
var wireHooks struct {
	clock clock.Clock
}

// loadWiring reads the settings: the file at --config when it exists (a missing file is
// an error only when --config was given), else the defaults (config.Default). Then the
// precedence flag > environment > file > default settles the base URL, the tokens and
// the data directory (config.Resolve).
func loadWiring(cmd *cobra.Command, g *globalOptions) (*wiring, error) {
	cfg, err := config.Load(g.configPath)
	if errors.Is(err, fs.ErrNotExist) && !flagChanged(cmd, "config") {
		cfg, err = config.Default(), nil
	}
	if err != nil {
		return nil, usage(err)
	}
	o := config.Overrides{BaseURL: g.baseURL}
	if flagChanged(cmd, "data-dir") {
		o.DataDir = g.dataDir
	}
	cfg.Resolve(o)
	w := &wiring{cfg: cfg, log: commandLogger(g), g: g}
	for _, warn := range cfg.Warnings {
		w.log.Warn(warn.String())
	}
	w.setClock(wireHooks.clock)
	return w, nil
}

// setClock sets the host clock (nil: the real one) and the API's clock estimated over it.
// Commands that make no call ($now of a selection, status) read the API's time as the
// last process saw it; a command that calls the API corrects it with every answer.
func (w *wiring) setClock(host clock.Clock) {
	if host == nil {
		host = clock.Real{}
	}
	w.clock, w.api = host, clock.NewRemote(host, w.log)
	if err := ratelimit.RestoreAPIClock(ratelimit.StateDirIn(w.cfg.Store.DataDir), w.api); err != nil {
		w.log.Warn("reading the API's clock as last seen", "error", err)
	}
}

func flagChanged(cmd *cobra.Command, name string) bool {
	f := cmd.Flags().Lookup(name)
	return f != nil && f.Changed
}

// commandLogger writes text logs to stderr at --log-level.
func commandLogger(g *globalOptions) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(strings.ToUpper(g.logLevel))); err != nil {
		level = slog.LevelInfo
	}
	var w io.Writer = io.Discard
	switch {
	case g.logOut != nil:
		w = g.logOut
	case g.stderr != nil:
		w = g.stderr
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// tokens returns the API tokens, in order. This is the one place tokens are read; the
// values go only into the rate pool, which hands them to the client per request.
func (w *wiring) tokens() ([]string, error) {
	toks, warns, err := w.cfg.Tokens()
	for _, warn := range warns {
		w.log.Warn(warn.String())
	}
	if err != nil {
		return nil, usage(fmt.Errorf("reading API tokens: %w", err))
	}
	values := make([]string, 0, len(toks))
	for _, t := range toks {
		if v := t.Value(); v != "" {
			values = append(values, v)
		}
	}
	w.secrets = append(w.secrets, values...)
	if len(values) == 0 {
		return nil, usage(errors.New("no API token: set DATORAMA_TOKEN (and DATORAMA_TOKEN_2, … for more) or name token sources under api.tokens"))
	}
	return values, nil
}

// pool is the rate budget of tokens, shared with every other drextract process using the
// same data directory (its state lives in ratelimit.StateDirIn(data dir)).
func (w *wiring) pool(tokens []string) *ratelimit.Pool {
	return ratelimit.NewPool(tokens, w.budgetConfig())
}

// budgetConfig is the rate budget's configuration as every command builds it.
func (w *wiring) budgetConfig() ratelimit.Config {
	b := w.cfg.Budget
	reserve := b.Reserve
	if reserve <= 0 {
		reserve = -1 // the config's 0 means none; ratelimit's 0 means its default
	}
	return ratelimit.Config{
		PlatformLimit: b.PlatformLimit, QueryLimit: b.QueryLimit, DailyQuota: b.DailyQuota,
		Reserve: reserve, Clock: w.api, StateDir: ratelimit.StateDirIn(w.cfg.Store.DataDir), Logger: w.log,
	}
}

// client is an API client whose every request passes pool and is appended to the store's
// api_calls journal, as belonging to no run: the next process that opens the store folds
// it into api_calls (this one may not hold the store: status --probe while serve runs).
// Runs build their clients in package run.
func (w *wiring) client(pool *ratelimit.Pool) (*datorama.Client, error) {
	rec := audit.New(load.NewJournal(w.cfg.Store.DuckDBPath()), audit.Options{SyncEach: true, Logger: w.log})
	opts := []datorama.Option{
		datorama.WithGate(pool), datorama.WithClock(w.clock), datorama.WithAPIClock(w.api), datorama.WithLogger(w.log),
		datorama.WithSandbox(w.cfg.API.Sandbox), datorama.WithUserAgent("drextract/" + Version),
		datorama.WithObserver(rec),
	}
	c, err := datorama.New(w.cfg.API.BaseURL, "", opts...)
	if err != nil {
		return nil, usage(err)
	}
	return c, nil
}

// quota sums the daily quota the pool's tokens have left, for plans.
func quota(pool *ratelimit.Pool) func() (extract.QuotaStatus, bool) {
	return func() (extract.QuotaStatus, bool) {
		var q extract.QuotaStatus
		for _, st := range pool.Status() {
			q.Limit += st.Daily.Limit
			q.Remaining += st.Daily.Remaining
			if q.Reset.IsZero() || (!st.Daily.Reset.IsZero() && st.Daily.Reset.Before(q.Reset)) {
				q.Reset = st.Daily.Reset
			}
		}
		return q, q.Limit > 0
	}
}

// openStore takes the data directory's lock (a second writer is refused with the
// holder's pid) and opens the live store. closeStore closes it and releases the lock.
func (w *wiring) openStore(ctx context.Context) (st *load.Store, closeStore func() error, err error) {
	unlock, err := load.LockDir(w.cfg.Store.DataDir)
	if err != nil {
		return nil, nil, err
	}
	path := w.cfg.Store.DuckDBPath()
	st, err = load.Open(ctx, path, run.StoreOptions(w.cfg, w.api, w.log))
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("opening the store %s: %w", path, err), unlock())
	}
	return st, func() error { return errors.Join(st.Close(), unlock()) }, nil
}

// runner is the run layer for one command's runs over pool (nil: runs that call no API),
// telling the configured webhooks how its runs end.
func (w *wiring) runner(pool *ratelimit.Pool) *run.Runner {
	return &run.Runner{Config: w.cfg, Clock: w.api, Log: w.log, Pool: pool, UserAgent: "drextract/" + Version,
		Notifier: w.runNotifier()}
}

// notifyDrain bounds how long a command waits, once its exit code is decided, for the
// webhooks to take its notifications.
const notifyDrain = 20 * time.Second

// runNotifier is the Notifier of the configured webhooks (nil without any), built once
// per command. A webhook whose URL cannot be read is logged and left out: a notification
// never fails a run (config check reports it). The command waits for it to deliver, at
// most notifyDrain, after its exit code is decided (globalOptions.atExit).
func (w *wiring) runNotifier() *notify.Notifier {
	if w.notifier != nil || w.cfg.Notify == nil {
		return w.notifier
	}
	targets, warns, err := w.cfg.WebhookTargets()
	for _, warn := range warns {
		w.log.Warn(warn.String())
	}
	for _, e := range config.AsErrors(err) {
		w.log.Warn("a webhook is left out: "+e.Error(), "component", "notify")
	}
	if len(targets) == 0 {
		return nil
	}
	w.notifier = notify.New(w.notifyOptions(targets))
	n := w.notifier
	w.g.atExit = append(w.g.atExit, func() {
		ctx, cancel := context.WithTimeout(context.Background(), notifyDrain)
		defer cancel()
		n.Close(ctx)
	})
	return n
}

// notifyOptions are the Notifier's options for targets: the tokens read so far are
// scrubbed from every event, as the URLs are.
func (w *wiring) notifyOptions(targets []config.WebhookTarget) notify.Options {
	secrets := w.secrets
	if w.cfg.Postgres() != nil {
		// A PostgreSQL error is scrubbed of the DSN where it is made; this is the net.
		if dsn, _, err := w.cfg.PostgresDSN(); err == nil {
			secrets = append(secrets, postgres.Secrets(dsn.Value())...)
		}
	}
	o := notify.Options{Secrets: secrets, Clock: w.api, Logger: w.log, UserAgent: "drextract/" + Version}
	for _, t := range targets {
		o.Webhooks = append(o.Webhooks, notify.Webhook{URL: t.URL.Value(), Events: t.Events})
	}
	return o
}

// writer is what a command that writes the store needs: the run layer (over the tokens'
// pool when withTokens) and the live store behind the data directory's lock. closeStore
// closes the store (which checkpoints it) and releases the lock.
func (w *wiring) writer(ctx context.Context, withTokens bool) (r *run.Runner, st *load.Store, closeStore func() error, err error) {
	var pool *ratelimit.Pool
	if withTokens {
		tokens, err := w.tokens()
		if err != nil {
			return nil, nil, nil, err
		}
		pool = w.pool(tokens)
	}
	st, closeStore, err = w.openStore(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	return w.runner(pool), st, closeStore, nil
}

// closing joins the error of closeFn into *err: closing the store checkpoints it, so its
// failure is a failure of the command, not a detail.
func closing(err *error, closeFn func() error) {
	if cerr := closeFn(); cerr != nil {
		*err = errors.Join(*err, cerr)
	}
}

// openStoreReadOnly opens the live store for reading without the lock; while a writer
// has it open, the serving copy is read instead.
func (w *wiring) openStoreReadOnly(ctx context.Context) (*load.Store, error) {
	st, err := load.OpenReadOnly(ctx, w.cfg.Store.DuckDBPath())
	if err == nil {
		return st, nil
	}
	if st2, err2 := load.OpenReadOnly(ctx, w.cfg.Store.ServingPath()); err2 == nil {
		w.log.Info("the live store is busy; reading the serving copy", "serving", w.cfg.Store.ServingPath())
		return st2, nil
	}
	return nil, fmt.Errorf("opening the store %s read-only: %w", w.cfg.Store.DuckDBPath(), err)
}

// formatReset renders a quota reset for the user.
func formatReset(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.UTC().Format(time.RFC3339)
}
