package ratelimit

import (
	"log/slog"
	"math"
	"path/filepath"
	"time"

	"github.com/drextract/drextract/clock"
)

// Defaults, as the API documents them (facts file §4); every response's headers override
// the limits.
const (
	DefaultPlatformLimit = 60
	DefaultQueryLimit    = 200
	DefaultDailyQuota    = 20000
	DefaultReserve       = 0.10
)

// window is the length of the API's rate windows.
const window = time.Minute

// Config sets up a Budget or a Pool. The zero value is usable: every field has a default.
type Config struct {
	// PlatformLimit, QueryLimit and DailyQuota are what the budget assumes until a
	// response's headers say otherwise. Defaults 60, 200 and 20,000.
	PlatformLimit, QueryLimit, DailyQuota int
	// Reserve is the share of the daily quota that Scheduled and Backfill calls may not
	// spend, kept for Interactive ones. 0 means the default 0.10; negative means none.
	Reserve float64
	// BackfillReserve is a further share of the daily quota Backfill calls may not spend.
	BackfillReserve float64
	// Clock is what all waiting goes through and what the API's resets are compared
	// with; default clock.Real{}. Give it the client's *clock.Remote (datorama.WithAPIClock)
	// so resets compare with the API's clock rather than the host's: the budget then
	// restores and saves that estimate under StateDir (see RestoreAPIClock).
	Clock clock.Clock
	// StateDir holds one small state file per token fingerprint that every process on the
	// machine using that token reads and writes under a file lock, so they share one
	// budget. "" keeps the budget in this process only. See StateDirIn.
	StateDir string
	// Logger receives diagnostics (component=ratelimit); default slog.Default().
	Logger *slog.Logger
	// Safety tunes how cautiously each window is spent.
	Safety Safety
}

// Safety tunes how cautiously a budget spends each minute window.
type Safety struct {
	// Headroom is how many calls of each minute window stay unused once a program outside
	// the budget has been seen spending the same token, to absorb the difference between
	// its past and present pace. Default 1; negative means none. While nobody else spends
	// the token the whole window is used.
	Headroom int
	// Spread is the share of each window's calls that are spaced evenly over what is left
	// of the window instead of being sent as soon as allowed. Default 0.25; 1 paces the
	// whole window; negative sends every call as soon as the window allows.
	Spread float64
	// Grace is how long after a window's reset the budget waits before trusting that the
	// server, whose clock may differ from ours, has opened the next one. Default 250ms;
	// negative means none.
	Grace time.Duration
	// InFlightTTL is how long a call sent but not finished counts as in flight; older
	// ones, and those of processes that died, are forgotten so they block nobody.
	// Default 1 minute.
	InFlightTTL time.Duration
	// Poll is how often a call waiting on another process's call re-reads the shared
	// state (StateDir only). Default 250ms.
	Poll time.Duration
}

// StateDirIn is the StateDir every drextract command uses under a data directory.
func StateDirIn(dataDir string) string { return filepath.Join(dataDir, "ratelimit") }

// withDefaults returns cfg with every unset field defaulted and every odd one tamed.
func (cfg Config) withDefaults() Config {
	if cfg.PlatformLimit <= 0 {
		cfg.PlatformLimit = DefaultPlatformLimit
	}
	if cfg.QueryLimit <= 0 {
		cfg.QueryLimit = DefaultQueryLimit
	}
	if cfg.DailyQuota <= 0 {
		cfg.DailyQuota = DefaultDailyQuota
	}
	switch {
	case cfg.Reserve == 0:
		cfg.Reserve = DefaultReserve
	case cfg.Reserve < 0 || math.IsNaN(cfg.Reserve):
		cfg.Reserve = 0
	case cfg.Reserve > 1:
		cfg.Reserve = 1
	}
	if cfg.BackfillReserve < 0 || math.IsNaN(cfg.BackfillReserve) {
		cfg.BackfillReserve = 0
	}
	if cfg.Reserve+cfg.BackfillReserve > 1 {
		cfg.BackfillReserve = 1 - cfg.Reserve
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &cfg.Safety
	switch {
	case s.Headroom == 0:
		s.Headroom = 1
	case s.Headroom < 0:
		s.Headroom = 0
	}
	switch {
	case s.Spread == 0:
		s.Spread = 0.25
	case s.Spread < 0 || math.IsNaN(s.Spread):
		s.Spread = 0
	case s.Spread > 1:
		s.Spread = 1
	}
	switch {
	case s.Grace == 0:
		s.Grace = 250 * time.Millisecond
	case s.Grace < 0:
		s.Grace = 0
	case s.Grace > window/4:
		s.Grace = window / 4
	}
	if s.InFlightTTL <= 0 {
		s.InFlightTTL = time.Minute
	}
	if s.Poll <= 0 {
		s.Poll = 250 * time.Millisecond
	}
	return cfg
}

// reserveFor is how many calls of a daily quota of limit priority p may not spend.
func (cfg Config) reserveFor(p Priority, limit int) int {
	share := 0.0
	switch {
	case p <= Backfill:
		share = cfg.Reserve + cfg.BackfillReserve
	case p == Scheduled:
		share = cfg.Reserve
	}
	// The epsilon keeps 0.1×20000 at 2000: float products land a hair above the integer.
	return int(math.Ceil(share*float64(limit) - 1e-6))
}

// spreadFor is how many of a window's last calls are spaced evenly.
func (s Safety) spreadFor(limit int) int {
	return int(math.Ceil(s.Spread*float64(limit) - 1e-6))
}
