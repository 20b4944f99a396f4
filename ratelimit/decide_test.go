package ratelimit

import (
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func TestDecide(t *testing.T) {
	midnight := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	reset := t0.Add(time.Minute) // the window [t0, t0+1m)
	base := input{
		Now: t0.Add(10 * time.Second), Remaining: 60, Reset: reset, Known: true,
		DailyRemaining: 500, DailyReset: midnight,
		Reserve: 100, Headroom: 1, Spread: 15, Grace: 250 * time.Millisecond,
	}
	const used = 50*time.Second + 250*time.Millisecond // from t0+10s to the reset and grace
	tests := []struct {
		name string
		in   func(in *input)
		// want
		goNow       bool
		wait        time.Duration
		untilChange bool
		quota       bool
		reserved    bool
	}{
		{name: "plenty left goes at once", in: func(in *input) {}, goNow: true},
		{name: "daily quota gone", in: func(in *input) { in.DailyRemaining = 0 }, quota: true},
		{name: "daily quota overspent by calls in flight", in: func(in *input) { in.DailyRemaining = -2 }, quota: true},
		{name: "scheduled call stops at the reserve", in: func(in *input) { in.DailyRemaining = 100 }, quota: true, reserved: true},
		{name: "scheduled call just above the reserve goes", in: func(in *input) { in.DailyRemaining = 101 }, goNow: true},
		{name: "interactive call may spend the reserve", in: func(in *input) {
			in.DailyRemaining = 1
			in.Reserve = 0
		}, goNow: true},
		{name: "quota checked before the window", in: func(in *input) {
			in.Remaining = 0
			in.DailyRemaining = 0
		}, quota: true},
		{name: "backoff after a 429 without reset", in: func(in *input) { in.BlockedUntil = in.Now.Add(3 * time.Second) }, wait: 3 * time.Second},
		{name: "window over but within the grace", in: func(in *input) { in.Now = reset.Add(100 * time.Millisecond) }, wait: 150 * time.Millisecond},
		{name: "unknown window with its first call in flight", in: func(in *input) {
			in.Known = false
			in.InFlight = 1
		}, untilChange: true},
		{name: "unknown window, nothing in flight: one call probes", in: func(in *input) { in.Known = false }, goNow: true},
		{name: "unknown window probes even if others' share of the last would leave nothing", in: func(in *input) {
			in.Known = false
			in.ExternalPrev = 60
		}, goNow: true},
		{name: "known window with calls in flight goes", in: func(in *input) { in.InFlight = 5 }, goNow: true},
		{name: "window used up waits for the reset and grace", in: func(in *input) { in.Remaining = 0 }, wait: used},
		{name: "calls in flight overspent the window", in: func(in *input) { in.Remaining = -3 }, wait: used},
		{name: "spreading: last calls spaced over the rest of the window", in: func(in *input) {
			// 3 left, 50s to go, last call just now: gaps of 50s/4.
			in.Remaining, in.LastSend = 3, in.Now
		}, wait: 12500 * time.Millisecond},
		{name: "spreading: the gap since the last call has passed", in: func(in *input) {
			// last call at t0+5s, 55s before the reset: next = last + 55s/4 = t0+18.75s.
			in.Now = t0.Add(20 * time.Second)
			in.Remaining, in.LastSend = 3, t0.Add(5*time.Second)
		}, goNow: true},
		{name: "spreading counts from the window start when the last call was earlier", in: func(in *input) {
			// 1 left: next = start + 60s/2 = t0+30s; now is t0+10s.
			in.Remaining, in.LastSend = 1, t0.Add(-5*time.Minute)
		}, wait: 20 * time.Second},
		{name: "above the spread share nothing is spaced", in: func(in *input) { in.Remaining, in.LastSend = 16, in.Now }, goNow: true},
		{name: "no spreading configured: the last call goes at once", in: func(in *input) {
			in.Spread = 0
			in.Remaining, in.LastSend = 1, in.Now
		}, goNow: true},
		{name: "external spending: its share of last window is left to it", in: func(in *input) {
			// 40 left; it spent 20 last window and 5 so far: hold 15 + headroom 1 → 24 ours.
			in.Remaining, in.ExternalPrev, in.External = 40, 20, 5
		}, goNow: true},
		{name: "external spending: holding its share leaves nothing", in: func(in *input) {
			in.Remaining, in.ExternalPrev, in.External = 16, 20, 5
		}, wait: used},
		{name: "external spending: only the headroom is held once it spent its share", in: func(in *input) {
			// 2 left, it already spent more than last time: hold the headroom → 1 ours, spaced.
			in.Remaining, in.ExternalPrev, in.External, in.LastSend = 2, 20, 25, in.Now
		}, wait: 25 * time.Second},
		{name: "no external spending seen: no headroom", in: func(in *input) {
			in.Spread = 0
			in.Remaining = 1
		}, goNow: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			tt.in(&in)
			d := decide(in)
			if got := d.Go(); got != tt.goNow {
				t.Fatalf("Go() = %v, want %v (decision %+v)", got, tt.goNow, d)
			}
			if (d.Err != nil) != tt.quota {
				t.Fatalf("quota error = %v, want %v", d.Err, tt.quota)
			}
			if d.Err != nil {
				if d.Err.Reserved != tt.reserved {
					t.Errorf("Reserved = %v, want %v", d.Err.Reserved, tt.reserved)
				}
				if !d.Err.Reset.Equal(midnight) {
					t.Errorf("Reset = %v, want %v", d.Err.Reset, midnight)
				}
			}
			if d.UntilChange != tt.untilChange {
				t.Errorf("UntilChange = %v, want %v", d.UntilChange, tt.untilChange)
			}
			if d.Wait != tt.wait {
				t.Errorf("Wait = %v, want %v (%s)", d.Wait, tt.wait, d.Why)
			}
			if !d.Go() && d.Err == nil && d.Why == "" {
				t.Errorf("a wait without a reason")
			}
		})
	}
}

// TestDecideSpreadsEvenly plays one window through decide alone: with the whole window
// spread, 60 calls land one per 60s/61, and every call of the window is used.
func TestDecideSpreadsEvenly(t *testing.T) {
	tests := []struct {
		name      string
		spread    int
		wantBurst int // calls sent at the window's start
	}{
		{"whole window paced", 60, 0},
		{"last quarter paced", 15, 45},
		{"no pacing", 0, 60},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input{Remaining: 60, Reset: t0.Add(time.Minute), Known: true, DailyRemaining: 100, Spread: tt.spread, Grace: time.Second}
			now := t0
			var sends []time.Time
			for range 200 {
				in.Now = now
				d := decide(in)
				if d.Err != nil || d.UntilChange {
					t.Fatalf("unexpected decision %+v", d)
				}
				if d.Go() {
					sends = append(sends, now)
					in.Remaining--
					in.DailyRemaining--
					in.LastSend = now
					continue
				}
				if !now.Add(d.Wait).Before(in.Reset) {
					break // the window is spent; the next one would open
				}
				now = now.Add(d.Wait)
			}
			if len(sends) != 60 {
				t.Fatalf("sent %d calls in the window, want all 60", len(sends))
			}
			burst := 0
			for _, s := range sends {
				if s.Equal(t0) {
					burst++
				}
			}
			if burst != tt.wantBurst && !(tt.wantBurst == 0 && burst == 0) {
				t.Errorf("%d calls at the window's start, want %d", burst, tt.wantBurst)
			}
			last := sends[len(sends)-1]
			if !last.Before(in.Reset) {
				t.Errorf("last call at %v, not before the reset", last)
			}
			if tt.spread > 0 {
				// The paced calls are evenly spaced: every gap equals the first (to a ms).
				paced := sends[len(sends)-tt.spread:]
				gap := paced[1].Sub(paced[0])
				for i := 2; i < len(paced); i++ {
					if g := paced[i].Sub(paced[i-1]); (g - gap).Abs() > time.Millisecond {
						t.Fatalf("gap %d is %v, first gap %v", i, g, gap)
					}
				}
			}
		})
	}
}
