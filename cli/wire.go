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

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/extract"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
)

// The wiring shared by the commands that talk to the API or write the store: settings
// from the configuration file (or the environment when there is none), the tokens, a
// rate budget shared through the data directory, a client, and the live store behind the
// data directory's lock. Commands build what they need from these and nothing else, so
// a token is read in exactly one place and never printed.

// wiring is what loadWiring resolved for one command.
type wiring struct {
	cfg   *config.Config
	clock clock.Clock
	log   *slog.Logger
}

// wireHooks lets tests run commands on a virtual clock.
var wireHooks struct {
	clock clock.Clock
}

// loadWiring reads the settings: the file at --config when it exists (a missing file is
// an error only when --config was given), else the defaults (config.Default: tokens from
// DATORAMA_TOKEN, DATORAMA_TOKEN_2, …, the base URL from DATORAMA_BASE_URL or
// https://api.datorama.com). --base-url and an explicit --data-dir override the file.
func loadWiring(cmd *cobra.Command, g *globalOptions) (*wiring, error) {
	cfg, err := config.Load(g.configPath)
	if errors.Is(err, fs.ErrNotExist) && !flagChanged(cmd, "config") {
		cfg, err = config.Default(), nil
	}
	if err != nil {
		return nil, withExit(ExitUsage, err)
	}
	if flagChanged(cmd, "data-dir") || cfg.Path == "" {
		cfg.Store.DataDir = g.dataDir
	}
	if g.baseURL != "" {
		cfg.API.BaseURL = g.baseURL
	}
	w := &wiring{cfg: cfg, clock: wireHooks.clock, log: commandLogger(g)}
	if w.clock == nil {
		w.clock = clock.Real{}
	}
	for _, warn := range cfg.Warnings {
		w.log.Warn(warn.String())
	}
	return w, nil
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
	w := g.stderr
	if w == nil {
		w = io.Discard
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
		return nil, withExit(ExitUsage, fmt.Errorf("reading API tokens: %w", err))
	}
	values := make([]string, 0, len(toks))
	for _, t := range toks {
		if v := t.Value(); v != "" {
			values = append(values, v)
		}
	}
	if len(values) == 0 {
		return nil, withExit(ExitUsage, errors.New("no API token: set DATORAMA_TOKEN (and DATORAMA_TOKEN_2, … for more) or name token sources under api.tokens"))
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
		Reserve: reserve, Clock: w.clock, StateDir: ratelimit.StateDirIn(w.cfg.Store.DataDir), Logger: w.log,
	}
}

// client is an API client whose every request passes pool and is reported to obs (nil:
// none).
func (w *wiring) client(pool *ratelimit.Pool, obs datorama.Observer) (*datorama.Client, error) {
	opts := []datorama.Option{
		datorama.WithGate(pool), datorama.WithClock(w.clock), datorama.WithLogger(w.log),
		datorama.WithSandbox(w.cfg.API.Sandbox), datorama.WithUserAgent("drextract/" + Version),
	}
	if obs != nil {
		opts = append(opts, datorama.WithObserver(obs))
	}
	c, err := datorama.New(w.cfg.API.BaseURL, "", opts...)
	if err != nil {
		return nil, withExit(ExitUsage, err)
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
	st, err = load.Open(ctx, path, load.Options{Clock: w.clock, Logger: w.log})
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("opening the store %s: %w", path, err), unlock())
	}
	return st, func() error { return errors.Join(st.Close(), unlock()) }, nil
}

// session is what a command that calls the API and records what happened needs.
type session struct {
	pool   *ratelimit.Pool
	client *datorama.Client
	store  *load.Store
	// close closes the store and releases the data directory's lock, logging a failure
	// to close; call it once.
	close func()
}

// session builds the client over the token pool (obs, if not nil, sees every call) and
// opens the live store for writing.
func (w *wiring) session(ctx context.Context, obs datorama.Observer) (*session, error) {
	tokens, err := w.tokens()
	if err != nil {
		return nil, err
	}
	pool := w.pool(tokens)
	client, err := w.client(pool, obs)
	if err != nil {
		return nil, err
	}
	store, closeStore, err := w.openStore(ctx)
	if err != nil {
		return nil, err
	}
	return &session{pool: pool, client: client, store: store, close: func() {
		if err := closeStore(); err != nil {
			w.log.Warn("closing the store", "error", err)
		}
	}}, nil
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

// quotaReset reports whether err means the daily quota is gone, and when it comes back
// (zero when the error does not say).
func quotaReset(err error) (reset time.Time, ok bool) {
	var qe *datorama.QuotaError
	if errors.As(err, &qe) {
		return qe.Reset, true
	}
	return time.Time{}, errors.Is(err, datorama.ErrQuotaExhausted)
}

// formatReset renders a quota reset for the user.
func formatReset(t time.Time) string {
	if t.IsZero() {
		return "an unknown time"
	}
	return t.UTC().Format(time.RFC3339)
}
