package action

import (
	"fmt"
	"time"
)

// BudgetView is what the rate budget says now, for the plan's time estimate. The CLI
// fills it from the ratelimit budget's Status; a zero BudgetView means "unknown" and the
// documented limits are assumed.
type BudgetView struct {
	PerMinute       int       // platform calls per minute (60)
	MinuteRemaining int       // left in the current window
	MinuteReset     time.Time // when the window reopens
	DailyRemaining  int       // left today for interactive calls (the reserve included)
	DailyReset      time.Time
	Known           bool
}

// Estimate is how long a plan's calls take at the current budget.
type Estimate struct {
	Calls    int
	Duration time.Duration
	// OverQuota is set when the calls exceed what is left of today's quota; the run
	// then stops at the quota and resumes after DailyReset.
	OverQuota  bool
	DailyLeft  int
	DailyReset time.Time
	Assumed    bool // no budget state: the documented 60/min was assumed
}

func (e Estimate) String() string {
	s := fmt.Sprintf("%d API calls, about %s", e.Calls, roundDur(e.Duration))
	if e.Assumed {
		s += " at the documented 60 calls/min"
	} else {
		s += " at the current budget"
	}
	if e.OverQuota {
		s += fmt.Sprintf("; more than the %d calls left today (resets %s)", e.DailyLeft, e.DailyReset.UTC().Format(time.RFC3339))
	}
	return s
}

// perCallLatency is a typical round trip, for plans that fit in the current window.
const perCallLatency = 300 * time.Millisecond

// estimate is pure: calls at b's pace from now. Waits for the pending cap are not
// included; they depend on how fast Datorama runs the jobs.
func estimate(calls int, b BudgetView, now time.Time) Estimate {
	e := Estimate{Calls: calls}
	if !b.Known || b.PerMinute <= 0 {
		e.Assumed = true
		b = BudgetView{PerMinute: 60, MinuteRemaining: 60, MinuteReset: now.Add(time.Minute)}
	}
	rem := max(0, b.MinuteRemaining)
	lat := time.Duration(calls) * perCallLatency
	switch {
	case calls <= rem:
		e.Duration = lat
	default:
		toReset := max(0, b.MinuteReset.Sub(now))
		windows := ceilDiv(calls-rem, b.PerMinute)
		e.Duration = max(lat, toReset+time.Duration(windows-1)*time.Minute+time.Duration((calls-rem)-(windows-1)*b.PerMinute)*perCallLatency)
	}
	if b.Known && calls > b.DailyRemaining {
		e.OverQuota, e.DailyLeft, e.DailyReset = true, b.DailyRemaining, b.DailyReset
	}
	return e
}

func roundDur(d time.Duration) string {
	switch {
	case d < time.Second:
		return "1s"
	case d < time.Minute:
		return d.Round(time.Second).String()
	default:
		return d.Round(time.Minute).String()
	}
}
