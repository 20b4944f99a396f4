package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/postgres"
)

// Options say how to publish.
type Options struct {
	// Run, when not 0, is the run that just ended (after load.Store.FinishRun): the
	// outcome is recorded on its runs row.
	Run int64
	// Full rewrites PostgreSQL whole instead of sending what changed.
	Full bool
	// NoServing leaves serving.duckdb alone (a caller that refreshes it itself).
	NoServing bool
	Logger    *slog.Logger
}

// Result is what a publish did.
type Result struct {
	Serving  string          // the serving copy written; "" when not
	Postgres *postgres.Stats // nil when no PostgreSQL target is configured (or it failed before sending)
	Status   string          // load.PublishOK, PublishFailed or PublishSkipped, as recorded on the run
}

// ErrFailed is matched (errors.Is) by every error of Run: part of the publish failed.
// The run's data is committed all the same; a command maps it to exit code 3 (partial).
var ErrFailed = errors.New("publishing failed")

// Error is a failed publish: which parts failed. Its text never holds the DSN.
type Error struct {
	Serving  error // the serving copy could not be written
	Postgres error // *postgres.Error, or the DSN could not be read
}

func (e *Error) Error() string {
	var parts []string
	if e.Serving != nil {
		parts = append(parts, "serving copy: "+e.Serving.Error())
	}
	if e.Postgres != nil {
		parts = append(parts, "PostgreSQL: "+e.Postgres.Error())
	}
	if len(parts) == 0 {
		return ErrFailed.Error()
	}
	msg := parts[0]
	for _, p := range parts[1:] {
		msg += "; " + p
	}
	return msg
}

// Is makes errors.Is(err, ErrFailed) true.
func (e *Error) Is(target error) bool { return target == ErrFailed }

// Unwrap returns the parts that failed (neither holds the DSN).
func (e *Error) Unwrap() []error {
	var out []error
	for _, err := range []error{e.Serving, e.Postgres} {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// Run publishes the store after a run (opts.Run) or on demand (opts.Run 0): the
// descriptions of tables made at run time (report tables), the serving copy, then the
// PostgreSQL target of cfg when there is one. Each part is attempted even when the other
// failed. With opts.Run the outcome is recorded on that run: ok (everything configured
// was published), skipped (no PostgreSQL target; the serving copy was published) or
// failed with the error text. It returns an *Error (errors.Is ErrFailed) when a part
// failed; the store's data is never changed by a failure, and the next publish catches
// up. It must be called after the run's FinishRun, under the data directory's lock.
func Run(ctx context.Context, store *load.Store, cfg *config.Config, opts Options) (Result, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "publish")
	var res Result
	var perr Error
	if err := store.SyncComments(ctx); err != nil {
		log.Warn("describing tables made during the run", "err", err)
	}
	if !opts.NoServing {
		if err := store.Publish(ctx, cfg.Store.ServingPath()); err != nil {
			perr.Serving = err
		} else {
			res.Serving = cfg.Store.ServingPath()
		}
	}
	// ok when everything configured was published; skipped when nothing was (NoServing
	// and no PostgreSQL target).
	res.Status = load.PublishSkipped
	if res.Serving != "" {
		res.Status = load.PublishOK
	}
	pgRecorded := false
	if pg := cfg.Postgres(); pg != nil {
		dsn, warns, err := cfg.PostgresDSN()
		for _, w := range warns {
			log.Warn(w.String())
		}
		if err != nil {
			perr.Postgres = fmt.Errorf("reading the DSN: %w", err)
		} else {
			st, err := postgres.Publish(ctx, store, postgres.Target{DSN: dsn.Value(), Schema: pg.Schema},
				postgres.Options{Full: opts.Full, Run: opts.Run, Logger: opts.Logger})
			if err != nil {
				perr.Postgres = err
			} else {
				res.Postgres = &st
				res.Status, pgRecorded = load.PublishOK, true
			}
		}
	}
	var err error
	if perr.Serving != nil || perr.Postgres != nil {
		res.Status = load.PublishFailed
		err = &perr
		log.Error("publishing", "run_id", opts.Run, "err", err)
	}
	if opts.Run != 0 && !(pgRecorded && perr.Serving == nil) {
		// A successful PostgreSQL publish recorded ok itself, in the same breath as its
		// progress; anything else is recorded here.
		text := ""
		if err != nil {
			text = err.Error()
		}
		if rerr := store.RecordPublish(context.WithoutCancel(ctx), opts.Run, res.Status, text); rerr != nil {
			log.Error("recording the publish on the run", "run_id", opts.Run, "err", rerr)
		}
	}
	return res, err
}
