package clock

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// fired says whether ch has received, without waiting.
func fired(ch <-chan time.Time) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestManualFiresTimersWhenDue(t *testing.T) {
	tests := []struct {
		name    string
		after   time.Duration
		advance []time.Duration
		want    bool
	}{
		{"zero fires at once", 0, nil, true},
		{"negative fires at once", -time.Second, nil, true},
		{"not yet", time.Minute, []time.Duration{59 * time.Second}, false},
		{"exactly due", time.Minute, []time.Duration{time.Minute}, true},
		{"due over two steps", time.Minute, []time.Duration{30 * time.Second, 30 * time.Second}, true},
		{"past due", time.Minute, []time.Duration{time.Hour}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewManual(t0)
			ch := m.After(tc.after)
			for _, d := range tc.advance {
				m.Advance(d)
			}
			if got := fired(ch); got != tc.want {
				t.Errorf("fired %v, want %v", got, tc.want)
			}
		})
	}
}

func TestManualSetNeverGoesBack(t *testing.T) {
	m := NewManual(t0)
	m.Set(t0.Add(-time.Hour))
	if !m.Now().Equal(t0) {
		t.Fatalf("Set backwards moved the clock to %v", m.Now())
	}
	ch := m.After(time.Hour)
	m.Set(t0.Add(2 * time.Hour))
	select {
	case at := <-ch:
		if !at.Equal(t0.Add(2 * time.Hour)) {
			t.Errorf("timer got %v, want the time it was fired at", at)
		}
	default:
		t.Fatal("timer due an hour ago did not fire")
	}
	if m.Pending() != 0 {
		t.Errorf("%d timers pending after all fired", m.Pending())
	}
}

func TestManualStoppedTimerIsGone(t *testing.T) {
	m := NewManual(t0)
	ch, stop := m.Timer(time.Hour)
	keep := m.After(2 * time.Hour)
	stop()
	stop() // twice is harmless
	if m.Pending() != 1 {
		t.Fatalf("%d timers pending, want only the one not stopped", m.Pending())
	}
	m.Advance(3 * time.Hour)
	if fired(ch) {
		t.Error("a stopped timer fired")
	}
	if !fired(keep) {
		t.Error("the other timer did not fire")
	}
}

// TestAutoAdvanceSkipsStoppedTimers is why Timer exists: a wait that ended another way
// (here a context) must not leave a timer for AutoAdvance to jump to. It runs in a
// synctest bubble, where AutoAdvance's idle detection reads the bubble's clock, which
// moves only when every goroutine waits: the test does not depend on the machine's speed.
func TestAutoAdvanceSkipsStoppedTimers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewManual(t0)
		defer m.AutoAdvance(time.Millisecond)()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := Sleep(ctx, m, 24*time.Hour); !errors.Is(err, context.Canceled) {
			t.Fatalf("Sleep with a cancelled context: %v", err)
		}
		if err := Sleep(context.Background(), m, time.Minute); err != nil {
			t.Fatal(err)
		}
		// Long enough for AutoAdvance to have jumped to any timer left behind.
		time.Sleep(time.Second)
		if m.Pending() != 0 {
			t.Errorf("%d timers left pending", m.Pending())
		}
		if got := m.Now(); !got.Equal(t0.Add(time.Minute)) {
			t.Errorf("clock at %v after a one-minute sleep, want %v (it jumped to an abandoned timer)", got, t0.Add(time.Minute))
		}
	})
}

func TestAutoAdvanceJumpsToTheEarliestTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := NewManual(t0)
		defer m.AutoAdvance(time.Millisecond)()
		late := m.After(time.Hour)
		if at := <-m.After(time.Minute); !at.Equal(t0.Add(time.Minute)) {
			t.Errorf("woke at %v, want %v", at, t0.Add(time.Minute))
		}
		if at := <-late; !at.Equal(t0.Add(time.Hour)) {
			t.Errorf("second timer woke at %v, want %v", at, t0.Add(time.Hour))
		}
	})
}

func TestSleepUntilThePast(t *testing.T) {
	m := NewManual(t0)
	if err := SleepUntil(context.Background(), m, t0.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if m.Pending() != 0 {
		t.Errorf("sleeping until the past left %d timers", m.Pending())
	}
}

func TestOffsetAdvances(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var o Offset
		before := time.Now()
		o.Advance(90 * time.Minute)
		o.Advance(-time.Hour) // ignored: the offset only grows
		if got := o.Now().Sub(before); got != 90*time.Minute {
			t.Errorf("offset clock is %v ahead, want 90m", got)
		}
		ch, stop := o.Timer(time.Hour)
		stop()
		at := <-o.After(time.Millisecond)
		if want := before.Add(90*time.Minute + time.Millisecond); !at.Equal(want) {
			t.Errorf("offset After fired at %v, want %v (a millisecond of real time later)", at, want)
		}
		time.Sleep(2 * time.Hour)
		if fired(ch) {
			t.Error("stopped timer fired")
		}
	})
}
