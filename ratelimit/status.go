package ratelimit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/drextract/drextract/datorama"
)

// Status is what a budget knows about one token at one moment. It never holds the token.
type Status struct {
	Fingerprint string `json:"fingerprint"`
	// At is the time the status describes; Updated is when the state last changed
	// (zero when nothing was recorded yet).
	At       time.Time    `json:"at"`
	Updated  time.Time    `json:"updated,omitzero"`
	Platform WindowStatus `json:"platform"`
	Query    WindowStatus `json:"query"`
	Daily    DailyStatus  `json:"daily"`
	InFlight int          `json:"in_flight"`
	// Sent and Throttled count the calls this Budget sent and the 429s it saw since it
	// was made; ReadStatus leaves them 0.
	Sent      int `json:"sent,omitempty"`
	Throttled int `json:"throttled,omitempty"`
}

// WindowStatus is one minute window.
type WindowStatus struct {
	Limit     int       `json:"limit"`
	Remaining int       `json:"remaining"`
	Reset     time.Time `json:"reset"`
	// Known says a response in this window confirmed Remaining; otherwise it is assumed
	// from the limit and the calls sent since the window opened.
	Known    bool `json:"known"`
	InFlight int  `json:"in_flight"`
	// External is how many calls of this window were spent by programs outside the
	// budget (a lower bound).
	External     int       `json:"external"`
	BlockedUntil time.Time `json:"blocked_until,omitzero"` // after a 429 without a usable reset
}

// DailyStatus is the daily quota and what the reserve holds back.
type DailyStatus struct {
	Limit     int       `json:"limit"`
	Remaining int       `json:"remaining"`
	Reset     time.Time `json:"reset"`
	Known     bool      `json:"known"`
	// Reserve is how many calls Scheduled calls may not spend (Interactive may);
	// BackfillReserve is how many more Backfill calls may not spend.
	Reserve         int `json:"reserve"`
	BackfillReserve int `json:"backfill_reserve"`
	// ScheduledLeft and BackfillLeft are what those priorities may still spend today.
	ScheduledLeft int `json:"scheduled_left"`
	BackfillLeft  int `json:"backfill_left"`
}

func statusOf(s *state, now time.Time, cfg Config) Status {
	ws := func(k datorama.Kind) WindowStatus {
		w := s.win(k)
		return WindowStatus{
			Limit: w.Limit, Remaining: max(s.remaining(k), 0), Reset: w.Reset, Known: w.Known,
			InFlight: s.inFlight(k, time.Time{}), External: w.External, BlockedUntil: w.BlockedUntil,
		}
	}
	d := s.Daily
	left := s.dailyRemaining()
	res := cfg.reserveFor(Scheduled, d.Limit)
	bres := cfg.reserveFor(Backfill, d.Limit)
	return Status{
		Fingerprint: s.Fingerprint,
		At:          now,
		Updated:     s.Updated,
		Platform:    ws(datorama.Platform),
		Query:       ws(datorama.Query),
		Daily: DailyStatus{
			Limit: d.Limit, Remaining: max(left, 0), Reset: d.Reset, Known: d.Known,
			Reserve: res, BackfillReserve: bres - res,
			ScheduledLeft: max(left-res, 0), BackfillLeft: max(left-bres, 0),
		},
		InFlight: len(s.InFlight),
	}
}

// ReadStatus reads the shared state of the token with this fingerprint from stateDir,
// brought up to cfg.Clock's now, without changing the file and without an API call.
// found is false when no process has recorded anything for the token yet.
func ReadStatus(stateDir, fingerprint string, cfg Config) (st Status, found bool, err error) {
	cfg = cfg.withDefaults()
	cfg.restoreAPIClock(stateDir)
	s, err := readState(filepath.Join(stateDir, fingerprint+".json"), fingerprint)
	if err != nil || s == nil {
		return Status{}, false, err
	}
	now := cfg.Clock.Now()
	s.tidy(now, cfg, func(f flight) bool { return processAlive(f.PID) })
	return statusOf(s, now, cfg), true, nil
}

// Fingerprints lists the tokens that have a state file in stateDir, sorted; none when
// the directory does not exist.
func Fingerprints(stateDir string) ([]string, error) {
	entries, err := os.ReadDir(stateDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing rate-limit states: %w", err)
	}
	var fps []string
	for _, e := range entries {
		name := e.Name()
		if fp, ok := strings.CutSuffix(name, ".json"); ok && strings.HasPrefix(fp, "tok_") && e.Type().IsRegular() {
			fps = append(fps, fp)
		}
	}
	sort.Strings(fps)
	return fps, nil
}
