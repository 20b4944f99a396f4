package datorama

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestParseRate(t *testing.T) {
	ms := func(v int64) time.Time { return time.UnixMilli(v).UTC() }
	tests := []struct {
		name     string
		header   map[string]string
		check    func(t *testing.T, r Rate)
		warnings int
	}{
		{
			name:   "missing headers",
			header: nil,
			check: func(t *testing.T, r Rate) {
				if r.Any() || r.Platform.Known || r.Daily.HasRemaining || !r.DailyReset().IsZero() {
					t.Errorf("no headers gave %+v", r)
				}
			},
		},
		{
			name: "all nine, epoch ms",
			header: map[string]string{
				HeaderPlatformLimit: "60", HeaderPlatformRemaining: "57", HeaderPlatformReset: "1626178860000",
				HeaderQueryLimit: "200", HeaderQueryRemaining: "200", HeaderQueryReset: "1626178860000",
				HeaderDailyLimit: "20000", HeaderDailyRemaining: "18422", HeaderDailyReset: "1626220800000",
			},
			check: func(t *testing.T, r Rate) {
				if r.Platform != (Window{Known: true, Limit: 60, Remaining: 57, HasRemaining: true, Reset: ms(1626178860000)}) {
					t.Errorf("platform %+v", r.Platform)
				}
				if r.Bucket(Query).Remaining != 200 || r.Bucket(Query).Limit != 200 {
					t.Errorf("query %+v", r.Query)
				}
				if r.Daily.Remaining != 18422 || !r.DailyReset().Equal(ms(1626220800000)) {
					t.Errorf("daily %+v", r.Daily)
				}
			},
		},
		{
			name: "429 with the documented misspelling X-DailyQuota-Rest and no daily family",
			header: map[string]string{
				HeaderRateLimitReset: "1626178860000", "X-DailyQuota-Rest": "1626220800000",
			},
			check: func(t *testing.T, r Rate) {
				if !r.Any() || r.Daily.Known {
					t.Errorf("got %+v", r)
				}
				if !r.RateLimitReset.Equal(ms(1626178860000)) || !r.DailyReset().Equal(ms(1626220800000)) {
					t.Errorf("resets %v %v", r.RateLimitReset, r.DailyReset())
				}
			},
		},
		{
			name:   "remaining 0 is empty, not missing",
			header: map[string]string{HeaderDailyRemaining: "0"},
			check: func(t *testing.T, r Rate) {
				if !r.Daily.HasRemaining || r.Daily.Remaining != 0 {
					t.Errorf("daily %+v", r.Daily)
				}
			},
		},
		{
			name:     "epoch seconds are read as seconds, with a warning",
			header:   map[string]string{HeaderPlatformReset: "1626178860"},
			warnings: 1,
			check: func(t *testing.T, r Rate) {
				if !r.Platform.Reset.Equal(time.Unix(1626178860, 0)) {
					t.Errorf("reset %v", r.Platform.Reset)
				}
			},
		},
		{
			name: "garbage values are ignored with warnings",
			header: map[string]string{
				HeaderPlatformLimit: "sixty", HeaderPlatformRemaining: "-3", HeaderPlatformReset: "tomorrow",
				HeaderQueryRemaining: "1.5", HeaderDailyReset: "-1626220800000", HeaderRateLimitReset: "99999999999999999999999",
				"X-DailyQuota-Rest": strings.Repeat("9", 500),
			},
			warnings: 7,
			check: func(t *testing.T, r Rate) {
				if r.Platform.Known || r.Query.Known || r.Daily.Known || r.Any() {
					t.Errorf("garbage read as data: %+v", r)
				}
				for _, w := range r.Warnings {
					if len(w) > 200 {
						t.Errorf("warning not bounded: %d bytes", len(w))
					}
				}
			},
		},
		{
			name:   "surrounding spaces are tolerated",
			header: map[string]string{HeaderQueryRemaining: " 17 "},
			check: func(t *testing.T, r Rate) {
				if r.Query.Remaining != 17 || !r.Query.HasRemaining {
					t.Errorf("query %+v", r.Query)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			r := ParseRate(h)
			if len(r.Warnings) != tt.warnings {
				t.Errorf("warnings %d, want %d: %q", len(r.Warnings), tt.warnings, r.Warnings)
			}
			tt.check(t, r)
		})
	}
}

func TestRateWait(t *testing.T) {
	now := time.Date(2021, 7, 13, 12, 20, 30, 0, time.UTC)
	reset := now.Add(30 * time.Second)
	tests := []struct {
		name     string
		rate     Rate
		kind     Kind
		min, max time.Duration
	}{
		{"X-RateLimit-Reset", Rate{RateLimitReset: reset}, Platform, 30 * time.Second, 30 * time.Second},
		{"own bucket empty", Rate{Query: Window{Known: true, HasRemaining: true, Reset: reset.Add(5 * time.Second)}}, Query, 35 * time.Second, 35 * time.Second},
		{"other bucket empty is not ours", Rate{Query: Window{Known: true, HasRemaining: true, Reset: reset}}, Platform, 250 * time.Millisecond, 500 * time.Millisecond},
		{"no headers: backoff", Rate{}, Platform, 250 * time.Millisecond, 500 * time.Millisecond},
		{"reset in the past: backoff", Rate{RateLimitReset: now.Add(-time.Second)}, Platform, 250 * time.Millisecond, 500 * time.Millisecond},
		{"skewed reset is capped", Rate{RateLimitReset: now.Add(time.Hour)}, Platform, maxRateWait, maxRateWait},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 20 {
				got := rateWait(tt.rate, tt.kind, now, 1)
				if got < tt.min || got > tt.max {
					t.Fatalf("rateWait = %v, want in [%v, %v]", got, tt.min, tt.max)
				}
			}
		})
	}
}

// TestBackoffBounded: the n-th retry waits a random time in the written-out window
// [d/2, d] where d doubles from 500ms and stops at 30s, and the jitter spreads over the
// window rather than sitting at one end.
func TestBackoffBounded(t *testing.T) {
	ms := time.Millisecond
	for _, tt := range []struct {
		n      int
		lo, hi time.Duration
	}{
		{1, 250 * ms, 500 * ms},
		{2, 500 * ms, time.Second},
		{3, time.Second, 2 * time.Second},
		{4, 2 * time.Second, 4 * time.Second},
		{6, 8 * time.Second, 16 * time.Second},
		{7, 15 * time.Second, 30 * time.Second}, // 32s capped at 30s
		{12, 15 * time.Second, 30 * time.Second},
		{100, 15 * time.Second, 30 * time.Second},
	} {
		var low, high bool
		for range 400 {
			d := backoff(tt.n)
			if d < tt.lo || d > tt.hi {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", tt.n, d, tt.lo, tt.hi)
			}
			mid := tt.lo + (tt.hi-tt.lo)/2
			low, high = low || d < mid, high || d > mid
		}
		if !low || !high {
			t.Errorf("backoff(%d): 400 draws all in one half of [%v, %v]; no jitter", tt.n, tt.lo, tt.hi)
		}
	}
}
