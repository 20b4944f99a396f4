package clock

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// server answers a request sent at host time sent, arriving after latency, with the
// Date header a server whose clock is skew ahead of the host's would stamp: its time at
// the middle of the round trip, truncated to the second.
func server(skew time.Duration) func(sent time.Time, latency time.Duration) (received, date time.Time) {
	return func(sent time.Time, latency time.Duration) (time.Time, time.Time) {
		stamped := sent.Add(latency / 2).Add(skew)
		return sent.Add(latency), stamped.Truncate(time.Second)
	}
}

func TestRemoteReadsAsTheHostUntilItLearns(t *testing.T) {
	m := NewManual(t0)
	r := NewRemote(m, discardLog())
	if got := r.Now(); !got.Equal(t0) {
		t.Errorf("Now = %v before any observation, want the host's %v", got, t0)
	}
	if _, ok := r.Skew(); ok || r.Observed() {
		t.Error("an estimate before any observation")
	}
	if r.Host() != Clock(m) {
		t.Error("Host is not the clock given")
	}
}

// TestRemoteConvergesWithoutJitter: observations at every sub-second phase narrow the
// estimate to within the round trip, and the estimate never leaves the interval it had
// before: one-second rounding makes it settle, never oscillate.
func TestRemoteConvergesWithoutJitter(t *testing.T) {
	for _, skew := range []time.Duration{0, 3700 * time.Millisecond, -90 * time.Minute, 24*time.Hour + 250*time.Millisecond} {
		t.Run(skew.String(), func(t *testing.T) {
			m := NewManual(t0)
			r := NewRemote(m, discardLog())
			answer := server(skew)
			const latency = 40 * time.Millisecond
			var prev Skew
			for i := range 40 {
				m.Advance(time.Second + 137*time.Millisecond) // a new sub-second phase each time
				sent := m.Now()
				received, date := answer(sent, latency)
				r.Observe(sent, received, date, DateResolution)
				s, ok := r.Skew()
				if !ok || !r.Observed() {
					t.Fatal("no estimate after an observation")
				}
				if s.Min > skew || s.Max < skew {
					t.Fatalf("observation %d: the true skew %v lies outside [%v, %v]", i, skew, s.Min, s.Max)
				}
				// The estimate only moves within what was already known, give or take
				// the drift allowed since (0.1 ms a second).
				if drift := time.Millisecond; i > 0 && (s.Offset() < prev.Min-drift || s.Offset() > prev.Max) {
					t.Fatalf("observation %d: the estimate jumped to %v, outside the earlier [%v, %v]", i, s.Offset(), prev.Min, prev.Max)
				}
				if s.Offset() > skew {
					t.Fatalf("observation %d: the estimate %v runs ahead of the true skew %v", i, s.Offset(), skew)
				}
				prev = s
			}
			// 40 answers at phases about 25 ms apart: the round trip plus that spacing.
			const tolerance = 100 * time.Millisecond
			if err := (prev.Offset() - skew).Abs(); err > tolerance {
				t.Errorf("estimate %v after 40 observations, %v off the true %v; want within %v", prev.Offset(), err, skew, tolerance)
			}
			if got, want := r.Now(), m.Now().Add(skew); (got.Sub(want)).Abs() > tolerance {
				t.Errorf("Now = %v, want about %v", got, want)
			}
		})
	}
}

// TestRemoteIgnoresOneOutlierButFollowsAJump: a single answer with a wrong date moves
// nothing; two in a row that agree (a clock stepped, a simulator advanced) are followed.
func TestRemoteIgnoresOneOutlierButFollowsAJump(t *testing.T) {
	m := NewManual(t0)
	r := NewRemote(m, discardLog())
	const latency = 20 * time.Millisecond
	observe := func(skew time.Duration) {
		m.Advance(time.Second + 311*time.Millisecond)
		sent := m.Now()
		received, date := server(skew)(sent, latency)
		r.Observe(sent, received, date, DateResolution)
	}
	for range 10 {
		observe(0)
	}
	settled, _ := r.Skew()

	observe(time.Hour) // a stale cache's answer
	if s, _ := r.Skew(); s.Offset() != settled.Offset() {
		t.Fatalf("one outlier moved the estimate from %v to %v", settled.Offset(), s.Offset())
	}
	observe(0)
	observe(time.Hour) // not two in a row: an honest answer came between
	within := func(s Skew) bool { return s.Offset() >= settled.Min && s.Offset() <= settled.Max }
	if s, _ := r.Skew(); !within(s) {
		t.Fatalf("two outliers separated by an honest answer moved the estimate to %v", s.Offset())
	}

	observe(24 * time.Hour)
	if s, _ := r.Skew(); !within(s) {
		t.Fatalf("the first answer after the jump moved the estimate to %v", s.Offset())
	}
	observe(24 * time.Hour)
	if s, _ := r.Skew(); (s.Offset() - 24*time.Hour).Abs() > time.Second {
		t.Fatalf("after two answers agreeing on the jump the estimate is %v, want 24h", s.Offset())
	}
}

func TestRemoteRestore(t *testing.T) {
	m := NewManual(t0)
	r := NewRemote(m, discardLog())
	saved := Skew{Min: 24*time.Hour - time.Second, Max: 24*time.Hour + time.Second, At: t0.Add(-time.Hour)}
	r.Restore(Skew{Min: time.Second, Max: -time.Second}) // not an interval: ignored
	r.Restore(saved)
	r.Restore(Skew{Min: time.Hour, Max: time.Hour, At: t0.Add(-2 * time.Hour)}) // older: ignored
	if got := r.Now(); !got.Equal(t0.Add(24*time.Hour - time.Second)) {
		t.Errorf("Now after Restore = %v, want the host time plus the saved 24h, less its uncertainty", got)
	}
	if r.Observed() {
		t.Error("a restored estimate counts as observed")
	}
	// The first answer of this process replaces what an earlier one saw, even at once
	// and even when it contradicts it: the server may have been replaced.
	sent := m.Now()
	received, date := server(0)(sent, 10*time.Millisecond)
	r.Observe(sent, received, date, DateResolution)
	if s, _ := r.Skew(); s.Offset().Abs() > time.Second || !r.Observed() {
		t.Errorf("after one answer the estimate is %v (observed %v), want about 0", s.Offset(), r.Observed())
	}
	r.Restore(saved) // once observed, restored estimates are ignored
	if s, _ := r.Skew(); s.Offset().Abs() > time.Second {
		t.Errorf("Restore after an observation moved the estimate to %v", s.Offset())
	}
}

// TestRemoteWarnsOncePerDirection: a skew beyond a minute is logged once, not per answer;
// again when it changes direction, or comes back after it was fixed.
func TestRemoteWarnsOncePerDirection(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	m := NewManual(t0)
	r := NewRemote(m, log)
	phases := []struct {
		skew time.Duration
		want int // warnings logged so far
	}{
		{30 * time.Second, 0},
		{2 * time.Minute, 1},
		{-5 * time.Minute, 2},
		{0, 2},
		{-5 * time.Minute, 3},
	}
	for _, p := range phases {
		for range 5 {
			m.Advance(1500 * time.Millisecond)
			sent := m.Now()
			received, date := server(p.skew)(sent, 10*time.Millisecond)
			r.Observe(sent, received, date, DateResolution)
		}
		out := buf.String()
		if got := strings.Count(out, "level=WARN"); got != p.want {
			t.Fatalf("after a skew of %v: %d warnings, want %d\n%s", p.skew, got, p.want, out)
		}
	}
	out := buf.String()
	for _, want := range []string{"component=clock", "ahead of", "behind", "skew=", "api_time="} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

func TestRemoteWaitsOnTheHostClock(t *testing.T) {
	m := NewManual(t0)
	r := NewRemote(m, discardLog())
	r.Restore(Skew{Min: time.Hour, Max: time.Hour, At: t0})
	ch, stop := r.Timer(time.Minute)
	defer stop()
	after := r.After(2 * time.Minute)
	m.Advance(time.Minute)
	if !fired(ch) {
		t.Error("a one-minute timer did not fire after a minute of host time")
	}
	if fired(after) {
		t.Error("a two-minute wait fired after one")
	}
}

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
