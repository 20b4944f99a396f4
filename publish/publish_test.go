package publish_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/postgres"
	"github.com/drextract/drextract/postgres/pgtest"
	"github.com/drextract/drextract/publish"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// setup is a store under a data directory with one finished run, and a configuration
// naming it; with pg, the configuration publishes into it (the DSN in DRX_TEST_DSN).
func setup(t *testing.T, pg *pgtest.Server) (*load.Store, *config.Config, int64) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	text := fmt.Sprintf("version: 1\nstore: {data_dir: %s}\n", filepath.Join(dir, "data"))
	if pg != nil {
		t.Setenv("DRX_TEST_DSN", pg.DSN(pg.Database(t)))
		text += "publish:\n  postgres:\n    dsn: {env: DRX_TEST_DSN}\n"
	}
	path := filepath.Join(dir, "schedules.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	store, err := load.Open(ctx, cfg.Store.DuckDBPath(), load.Options{Clock: clock.NewManual(t0),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	run, err := store.StartRun(ctx, load.RunStart{Schedule: "t", Kind: "extract"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Write(ctx, run, load.Batch{Entity: load.Workspaces, ObservedAt: t0, Complete: true,
		Workspaces: []load.WorkspaceRow{{ID: 1, Name: "w", Raw: json.RawMessage(`{"id":1}`)}}}); err != nil {
		t.Fatal(err)
	}
	if err := store.FinishRun(ctx, run, load.RunEnd{Status: load.RunOK, Rows: map[string]int{"workspaces": 1}}); err != nil {
		t.Fatal(err)
	}
	return store, cfg, run
}

func publishStatus(t *testing.T, store *load.Store, run int64) (status, errText string) {
	t.Helper()
	var e *string
	if err := store.DB().QueryRow(`SELECT coalesce(publish_status, ''), publish_error FROM runs WHERE id = $1`, run).Scan(&status, &e); err != nil {
		t.Fatal(err)
	}
	if e != nil {
		errText = *e
	}
	return status, errText
}

// Without a PostgreSQL target the serving copy is written and the run says ok: everything
// configured was published.
func TestRunWithoutPostgres(t *testing.T) {
	store, cfg, run := setup(t, nil)
	res, err := publish.Run(context.Background(), store, cfg, publish.Options{Run: run, Logger: quiet})
	if err != nil || res.Postgres != nil || res.Status != load.PublishOK {
		t.Fatalf("publish: %+v, %v", res, err)
	}
	if _, err := os.Stat(cfg.Store.ServingPath()); err != nil {
		t.Fatalf("no serving copy: %v", err)
	}
	if s, _ := publishStatus(t, store, run); s != load.PublishOK {
		t.Errorf("run %d's publish_status %q, want ok", run, s)
	}
}

// With a target: ok recorded on the run; with the server down: failed, with the reason,
// and an error a command maps to exit code 3; the serving copy is written either way.
func TestRunWithPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	store, cfg, run := setup(t, pg)
	ctx := context.Background()
	res, err := publish.Run(ctx, store, cfg, publish.Options{Run: run, Logger: quiet})
	if err != nil || res.Postgres == nil || res.Status != load.PublishOK || res.Postgres.Table("workspaces").Sent != 1 {
		t.Fatalf("publish: %+v, %v", res, err)
	}
	if s, _ := publishStatus(t, store, run); s != load.PublishOK {
		t.Errorf("run %d's publish_status %q, want ok", run, s)
	}

	if err := pg.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(cfg.Store.ServingPath()); err != nil {
		t.Fatal(err)
	}
	res, err = publish.Run(ctx, store, cfg, publish.Options{Run: run, Logger: quiet})
	var perr *postgres.Error
	if !errors.Is(err, publish.ErrFailed) || !errors.As(err, &perr) || res.Status != load.PublishFailed {
		t.Fatalf("publish with the server down: %+v, %v", res, err)
	}
	if _, err := os.Stat(cfg.Store.ServingPath()); err != nil {
		t.Errorf("the serving copy was not written although only PostgreSQL failed: %v", err)
	}
	s, text := publishStatus(t, store, run)
	if s != load.PublishFailed || !strings.Contains(text, "connecting") || strings.Contains(text, pg.Password) {
		t.Errorf("run %d's publish: %q %q", run, s, text)
	}
}

var quiet = slog.New(slog.DiscardHandler)
