package e2e

import (
	"log/slog"
	"os"
	"time"
)

// testStart is the virtual time every test account is generated at.
var testStart = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// unlimited lifts the simulator's and the budget's rate limits, so only injected 429
// storms make anyone wait.
const unlimited = 1 << 30

// quietLogger discards everything unless DREXTRACT_TEST_LOG is set.
func quietLogger() *slog.Logger {
	if os.Getenv("DREXTRACT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
