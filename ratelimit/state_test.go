package ratelimit

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/datorama"
)

// rate parses response headers given as name, value pairs, the way the client does.
func rate(kv ...string) datorama.Rate {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return datorama.ParseRate(h)
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// platform is the platform family of headers.
func platform(limit, remaining int, reset time.Time) []string {
	return []string{
		datorama.HeaderPlatformLimit, strconv.Itoa(limit),
		datorama.HeaderPlatformRemaining, strconv.Itoa(remaining),
		datorama.HeaderPlatformReset, ms(reset),
	}
}

func testConfig() Config { return Config{}.withDefaults() }

func TestFinishReconciles(t *testing.T) {
	now := t0.Add(10 * time.Second)
	reset := t0.Add(time.Minute)
	midnight := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	// known is a state whose platform window was confirmed: 40 left, 20 sent by us.
	known := func() *state {
		s := newState("tok_test", testConfig(), t0)
		s.Platform = windowState{Limit: 60, Reset: reset, Known: true, Used: 20, Sent: 20}
		s.Daily = dailyState{Limit: 20000, Reset: midnight, Known: true, Used: 5000}
		return s
	}
	fresh := func() *state { return newState("tok_test", testConfig(), now) }
	tests := []struct {
		name      string
		setup     func() *state
		inFlight  int // calls taken before the one that finishes (which is taken last)
		status    int
		rate      datorama.Rate
		check     func(t *testing.T, s *state)
		wantNotes []string // substrings, in any note
	}{
		{
			name: "first answer replaces the guess", setup: fresh, status: 200,
			rate: rate(platform(60, 50, reset)...),
			check: func(t *testing.T, s *state) {
				w := s.Platform
				want := windowState{Limit: 60, Reset: reset, Known: true, Used: 10, Sent: 1, External: 9, LastSend: now}
				if w != want {
					t.Errorf("platform window\n got %+v\nwant %+v", w, want)
				}
			},
		},
		{
			name: "calls still in flight are taken off what the server said", setup: fresh, inFlight: 2, status: 200,
			rate: rate(platform(60, 57, reset)...),
			check: func(t *testing.T, s *state) {
				if got := s.remaining(datorama.Platform); got != 55 {
					t.Errorf("remaining = %d, want 57-2 in flight", got)
				}
				if s.Platform.External != 0 {
					t.Errorf("External = %d, want 0: the server counted 3, we sent 3", s.Platform.External)
				}
			},
		},
		{
			name: "another program's spending lowers what is left", setup: known, status: 200,
			rate: rate(platform(60, 25, reset)...),
			check: func(t *testing.T, s *state) {
				if got := s.remaining(datorama.Platform); got != 25 {
					t.Errorf("remaining = %d, want 25 (headers over local counts)", got)
				}
				if s.Platform.External != 14 {
					t.Errorf("External = %d, want 60-25-21 = 14", s.Platform.External)
				}
			},
		},
		{
			// The server answered it before the answer that said 40 left: it is counted.
			name: "a late answer saying more is left does not raise the count", setup: known, status: 200,
			rate: rate(platform(60, 45, reset)...),
			check: func(t *testing.T, s *state) {
				if got := s.remaining(datorama.Platform); got != 40 || s.Platform.Used != 20 {
					t.Errorf("remaining = %d, used %d; want 40 and 20", got, s.Platform.Used)
				}
			},
		},
		{
			name: "an answer from the next window rolls the window", setup: known, status: 200,
			rate: rate(platform(60, 58, reset.Add(time.Minute))...),
			check: func(t *testing.T, s *state) {
				w := s.Platform
				if !w.Reset.Equal(reset.Add(time.Minute)) || s.remaining(datorama.Platform) != 58 || !w.Known || w.Sent != 1 {
					t.Errorf("window not rolled to the server's: %+v", w)
				}
			},
		},
		{
			name: "an answer about a window already over is ignored", setup: known, status: 200,
			rate: rate(platform(60, 59, t0)...),
			check: func(t *testing.T, s *state) {
				// The call was counted in the window that is over, not in this one.
				if s.remaining(datorama.Platform) != 40 || !s.Platform.Reset.Equal(reset) {
					t.Errorf("window changed by a stale answer: %+v", s.Platform)
				}
			},
		},
		{
			name: "no rate headers: local counts stand and the window counts as confirmed", setup: fresh, status: 200,
			rate: rate(),
			check: func(t *testing.T, s *state) {
				if s.remaining(datorama.Platform) != 59 || !s.Platform.Known {
					t.Errorf("platform window %+v, want 59 left and known", s.Platform)
				}
				if s.Query.Known {
					t.Errorf("query window confirmed by a platform call without headers")
				}
			},
		},
		{
			name: "garbage remaining is ignored with a warning", setup: known, status: 200,
			rate: rate(datorama.HeaderPlatformLimit, "60", datorama.HeaderPlatformRemaining, "lots", datorama.HeaderPlatformReset, ms(reset)),
			check: func(t *testing.T, s *state) {
				if got := s.remaining(datorama.Platform); got != 39 {
					t.Errorf("remaining = %d, want 39: a garbage value must not read as 0", got)
				}
			},
			wantNotes: []string{"X-PlatformRateLimit-Remaining"},
		},
		{
			name: "garbage everywhere changes nothing", setup: known, status: 200,
			rate: rate(datorama.HeaderPlatformLimit, "-5", datorama.HeaderPlatformRemaining, "1e9", datorama.HeaderPlatformReset, "soon",
				datorama.HeaderDailyRemaining, "NaN", datorama.HeaderDailyQuotaRest, "0x10", datorama.HeaderRateLimitReset, "99999999999999999999"),
			check: func(t *testing.T, s *state) {
				if s.remaining(datorama.Platform) != 39 || s.Platform.Limit != 60 || s.dailyRemaining() != 14999 {
					t.Errorf("state changed by garbage: %+v %+v", s.Platform, s.Daily)
				}
			},
			wantNotes: []string{"X-PlatformRateLimit-Limit", "X-PlatformRateLimit-Reset", "X-DailyQuota-Remaining", "X-DailyQuota-Rest", "X-RateLimit-Reset"},
		},
		{
			name: "reset in epoch seconds is read as seconds", setup: known, status: 200,
			rate: rate(datorama.HeaderPlatformLimit, "60", datorama.HeaderPlatformRemaining, "30", datorama.HeaderPlatformReset, strconv.FormatInt(reset.Unix(), 10)),
			check: func(t *testing.T, s *state) {
				if s.remaining(datorama.Platform) != 30 || !s.Platform.Reset.Equal(reset) {
					t.Errorf("window %+v, want 30 left until %v", s.Platform, reset)
				}
			},
			wantNotes: []string{"epoch seconds"},
		},
		{
			name: "a reset far ahead is ignored, the count kept", setup: known, status: 200,
			rate: rate(platform(60, 30, now.Add(3*time.Hour))...),
			check: func(t *testing.T, s *state) {
				if s.remaining(datorama.Platform) != 30 || !s.Platform.Reset.Equal(reset) {
					t.Errorf("window %+v, want 30 left, reset unchanged", s.Platform)
				}
			},
			wantNotes: []string{"more than two windows ahead"},
		},
		{
			name: "remaining above the limit is capped", setup: fresh, status: 200,
			rate: rate(platform(60, 600, reset)...),
			check: func(t *testing.T, s *state) {
				if got := s.remaining(datorama.Platform); got != 59 {
					t.Errorf("remaining = %d, want 59 from the local count", got)
				}
			},
			wantNotes: []string{"more than the limit"},
		},
		{
			name: "a new limit is learned", setup: fresh, status: 200,
			rate: rate(platform(100, 99, reset)...),
			check: func(t *testing.T, s *state) {
				if s.Platform.Limit != 100 || s.remaining(datorama.Platform) != 99 {
					t.Errorf("window %+v, want limit 100 and 99 left", s.Platform)
				}
			},
		},
		{
			name: "a platform answer also reconciles the query window", setup: fresh, status: 200,
			rate: rate(datorama.HeaderQueryLimit, "200", datorama.HeaderQueryRemaining, "150", datorama.HeaderQueryReset, ms(reset)),
			check: func(t *testing.T, s *state) {
				if s.remaining(datorama.Query) != 150 || !s.Query.Known || s.Query.External != 50 {
					t.Errorf("query window %+v, want 150 left, 50 external", s.Query)
				}
			},
		},
		{
			name: "daily headers, reset spelt the documented 429 way", setup: fresh, status: 200,
			rate: rate(datorama.HeaderDailyLimit, "20000", datorama.HeaderDailyRemaining, "1234", datorama.HeaderDailyQuotaRest, ms(midnight)),
			check: func(t *testing.T, s *state) {
				if s.dailyRemaining() != 1234 || !s.Daily.Reset.Equal(midnight) || !s.Daily.Known {
					t.Errorf("daily %+v, want 1234 left until %v", s.Daily, midnight)
				}
			},
		},
		{
			name: "429 with X-RateLimit-Reset closes the window until then", setup: known, status: 429,
			rate: rate(datorama.HeaderRateLimitReset, ms(reset), datorama.HeaderDailyRemaining, "100"),
			check: func(t *testing.T, s *state) {
				if s.remaining(datorama.Platform) != 0 || !s.Platform.Reset.Equal(reset) || !s.Platform.BlockedUntil.IsZero() {
					t.Errorf("window %+v, want closed until %v", s.Platform, reset)
				}
			},
		},
		{
			name: "429 naming the next window rolls to it, closed", setup: known, status: 429,
			rate: rate(platform(60, 0, reset.Add(time.Minute))...),
			check: func(t *testing.T, s *state) {
				if s.remaining(datorama.Platform) != 0 || !s.Platform.Reset.Equal(reset.Add(time.Minute)) {
					t.Errorf("window %+v, want closed until %v", s.Platform, reset.Add(time.Minute))
				}
			},
		},
		{
			name: "429 without headers backs off a bounded, jittered while", setup: known, status: 429,
			rate: rate(),
			check: func(t *testing.T, s *state) {
				if d := s.Platform.BlockedUntil.Sub(now); d < 500*time.Millisecond || d > time.Second {
					t.Errorf("first backoff %v, want within [0.5s, 1s]", d)
				}
			},
		},
		{
			name: "429 while the headers say calls are left backs off", setup: known, status: 429,
			rate: rate(platform(60, 12, reset)...),
			check: func(t *testing.T, s *state) {
				if s.Platform.BlockedUntil.IsZero() || s.remaining(datorama.Platform) != 12 {
					t.Errorf("window %+v, want a backoff and 12 left", s.Platform)
				}
			},
			wantNotes: []string{"although the headers say 12 left"},
		},
		{
			name: "429 with the daily quota at 0 ends the day", setup: known, status: 429,
			rate: rate(datorama.HeaderDailyRemaining, "0", datorama.HeaderDailyQuotaRest, ms(midnight), datorama.HeaderRateLimitReset, ms(reset)),
			check: func(t *testing.T, s *state) {
				if s.dailyRemaining() > 0 || !s.Daily.Reset.Equal(midnight) {
					t.Errorf("daily %+v, want exhausted until %v", s.Daily, midnight)
				}
			},
		},
		{
			name: "no answer at all: the call stays counted, nothing learned", setup: fresh, status: 0,
			rate: rate(),
			check: func(t *testing.T, s *state) {
				if s.remaining(datorama.Platform) != 59 || s.Platform.Known || len(s.InFlight) != 0 {
					t.Errorf("window %+v, in flight %d; want 59 left, unknown, none in flight", s.Platform, len(s.InFlight))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.setup()
			for i := range tt.inFlight {
				s.take(datorama.Platform, flight{ID: "other-" + strconv.Itoa(i), PID: 1}, now)
			}
			s.take(datorama.Platform, flight{ID: "me", PID: 1}, now)
			notes := s.finish("me", datorama.Platform, tt.status, tt.rate, now, 0.5)
			if got := s.inFlight(datorama.Platform, time.Time{}); got != tt.inFlight {
				t.Errorf("%d calls in flight after finish, want %d", got, tt.inFlight)
			}
			tt.check(t, s)
			all := strings.Join(notes, "\n")
			for _, want := range tt.wantNotes {
				if !strings.Contains(all, want) {
					t.Errorf("notes %q lack %q", notes, want)
				}
			}
			if len(tt.wantNotes) == 0 && len(notes) > 0 {
				t.Errorf("unexpected notes %q", notes)
			}
		})
	}
}

func TestBackoffGrowsAndIsBounded(t *testing.T) {
	s := newState("tok_test", testConfig(), t0)
	now := t0
	var last time.Duration
	for i := 1; i <= 10; i++ {
		s.take(datorama.Platform, flight{ID: "c", PID: 1}, now)
		s.finish("c", datorama.Platform, 429, rate(), now, 0.999)
		d := s.Platform.BlockedUntil.Sub(now)
		if d > maxBackoff {
			t.Fatalf("429 #%d: backoff %v beyond the cap", i, d)
		}
		if i <= 5 && d <= last {
			t.Fatalf("429 #%d: backoff %v did not grow from %v", i, d, last)
		}
		last = d
	}
	s.take(datorama.Platform, flight{ID: "ok", PID: 1}, now)
	s.finish("ok", datorama.Platform, 200, rate(), now, 0)
	if s.Platform.Throttled != 0 {
		t.Errorf("Throttled = %d after a success, want 0", s.Platform.Throttled)
	}
}

func TestTidy(t *testing.T) {
	cfg := testConfig()
	reset := t0.Add(time.Minute)
	alive := func(f flight) bool { return f.PID != 666 }
	tests := []struct {
		name  string
		now   time.Time
		setup func(s *state)
		check func(t *testing.T, s *state)
	}{
		{
			name: "calls of dead processes and old calls no longer count", now: t0.Add(30 * time.Second),
			setup: func(s *state) {
				s.InFlight = []flight{
					{ID: "dead", PID: 666, Sent: t0.Add(29 * time.Second), Window: reset},
					{ID: "old", PID: 1, Sent: t0.Add(-31 * time.Second), Window: reset},
					{ID: "live", PID: 1, Sent: t0.Add(29 * time.Second), Window: reset},
				}
			},
			check: func(t *testing.T, s *state) {
				if len(s.InFlight) != 1 || s.InFlight[0].ID != "live" {
					t.Errorf("in flight %+v, want only the live call", s.InFlight)
				}
			},
		},
		{
			name: "within the grace after the reset the window stays", now: reset.Add(100 * time.Millisecond),
			check: func(t *testing.T, s *state) {
				if !s.Platform.Reset.Equal(reset) {
					t.Errorf("rolled during the grace: %+v", s.Platform)
				}
			},
		},
		{
			name: "after the grace the window rolls, keeping calls in flight counted", now: reset.Add(cfg.Safety.Grace),
			setup: func(s *state) {
				s.InFlight = []flight{{ID: "a", PID: 1, Sent: reset.Add(-time.Second), Window: reset}}
			},
			check: func(t *testing.T, s *state) {
				w := s.Platform
				want := windowState{Limit: 60, Reset: reset.Add(time.Minute), Sent: 1, ExternalPrev: 7}
				if w != want {
					t.Errorf("rolled window\n got %+v\nwant %+v", w, want)
				}
			},
		},
		{
			name: "a long idle rolls to the window of now", now: t0.Add(10*time.Minute + 5*time.Second),
			check: func(t *testing.T, s *state) {
				if want := t0.Add(11 * time.Minute); !s.Platform.Reset.Equal(want) || s.remaining(datorama.Platform) != 60 {
					t.Errorf("window %+v, want full until %v", s.Platform, want)
				}
			},
		},
		{
			name: "a new UTC day restores the quota", now: time.Date(2026, 3, 3, 0, 0, 1, 0, time.UTC),
			check: func(t *testing.T, s *state) {
				if s.dailyRemaining() != 20000 || s.Daily.Known || !s.Daily.Reset.Equal(time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)) {
					t.Errorf("daily %+v, want a fresh day", s.Daily)
				}
			},
		},
		{
			name: "values no honest writer leaves are repaired", now: t0.Add(10 * time.Second),
			setup: func(s *state) {
				s.Platform.Reset = t0.Add(1000 * time.Hour)
				s.Platform.BlockedUntil = t0.Add(1000 * time.Hour)
				s.Query.Limit = -3
				s.Query.Used = -99999
				s.Daily.Reset = t0.Add(1000 * time.Hour)
			},
			check: func(t *testing.T, s *state) {
				if !s.Platform.Reset.Equal(reset) || !s.Platform.BlockedUntil.IsZero() {
					t.Errorf("platform %+v not repaired", s.Platform)
				}
				if s.Query.Limit != 200 || s.remaining(datorama.Query) != 200 {
					t.Errorf("query %+v not repaired", s.Query)
				}
				if s.Daily.Reset.After(t0.Add(day)) {
					t.Errorf("daily %+v not repaired", s.Daily)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newState("tok_test", cfg, t0)
			s.Platform.Known, s.Platform.External = true, 7
			if tt.setup != nil {
				tt.setup(s)
			}
			s.tidy(tt.now, cfg, alive)
			tt.check(t, s)
			if s.tidy(tt.now, cfg, alive) {
				t.Errorf("tidy is not idempotent")
			}
		})
	}
}

// FuzzFinish feeds arbitrary header values to the reconciliation: it must never panic,
// and must never claim more left than the limit.
func FuzzFinish(f *testing.F) {
	f.Add("60", "59", ms(t0.Add(time.Minute)), "20000", "100", "", 200)
	f.Add("x", "-1", "1e99", "", "0", ms(t0), 429)
	f.Add("0", "0", "0", "0", "0", "0", 429)
	f.Add("60", "61", strconv.FormatInt(t0.Unix(), 10), "1", "2", "3", 503)
	f.Fuzz(func(t *testing.T, limit, remaining, reset, dlimit, dremaining, rlreset string, status int) {
		s := newState("tok_test", testConfig(), t0)
		s.take(datorama.Platform, flight{ID: "c", PID: 1}, t0)
		r := rate(datorama.HeaderPlatformLimit, limit, datorama.HeaderPlatformRemaining, remaining,
			datorama.HeaderPlatformReset, reset, datorama.HeaderDailyLimit, dlimit,
			datorama.HeaderDailyRemaining, dremaining, datorama.HeaderRateLimitReset, rlreset,
			datorama.HeaderDailyQuotaRest, rlreset)
		s.finish("c", datorama.Platform, status, r, t0.Add(time.Second), 0.3)
		s.tidy(t0.Add(time.Second), testConfig(), func(flight) bool { return true })
		if s.remaining(datorama.Platform) > s.Platform.Limit || s.dailyRemaining() > s.Daily.Limit {
			t.Fatalf("more left than the limit: %+v %+v", s.Platform, s.Daily)
		}
		if s.Platform.BlockedUntil.After(t0.Add(time.Second + maxBackoff)) {
			t.Fatalf("backoff beyond the cap: %v", s.Platform.BlockedUntil)
		}
	})
}
