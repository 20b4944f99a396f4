package ratelimit

import (
	"time"

	"github.com/drextract/drextract/datorama"
)

// input is everything decide needs to know about one call: the time, the call's minute
// window and the day as the budget sees them, and the policy.
type input struct {
	Now time.Time
	// Remaining is what the call's window has left, calls in flight taken off; Reset is
	// when it ends; Known says an answer in it confirmed the count.
	Remaining int
	Reset     time.Time
	Known     bool
	// InFlight counts the calls of this kind in flight, sent in this window.
	InFlight int
	// External and ExternalPrev are others' spending seen in this window and the last.
	External, ExternalPrev int
	LastSend               time.Time
	BlockedUntil           time.Time // a backoff after a 429
	DailyRemaining         int
	DailyReset             time.Time
	// Reserve is how many calls of the daily quota the caller's priority may not spend.
	Reserve int
	// Headroom is kept free in each window once others are seen spending the token.
	Headroom int
	// Spread is how many of a window's last calls are spaced evenly.
	Spread int
	Grace  time.Duration
}

// decision says what to do with one call.
type decision struct {
	// Err, when set, fails the call: the daily quota open to it is gone.
	Err *datorama.QuotaError
	// Wait is how long to wait on the clock before asking again; 0 with UntilChange
	// false means send now.
	Wait time.Duration
	// UntilChange means wait until another call finishes rather than for a time.
	UntilChange bool
	// Why names the reason for a wait, for logs and tests.
	Why string
}

// Go reports whether the call may be sent now.
func (d decision) Go() bool { return d.Err == nil && d.Wait <= 0 && !d.UntilChange }

// decide is the budget's whole policy for one call, given what is known now. It is
// pure, so it can be table-tested without waiting; the caller waits and asks again.
func decide(in input) decision {
	if in.DailyRemaining <= 0 {
		return decision{Err: &datorama.QuotaError{Reset: in.DailyReset}, Why: "daily quota exhausted"}
	}
	if in.DailyRemaining <= in.Reserve {
		return decision{Err: &datorama.QuotaError{Reset: in.DailyReset, Reserved: true}, Why: "daily reserve reached"}
	}
	if in.Now.Before(in.BlockedUntil) {
		return decision{Wait: in.BlockedUntil.Sub(in.Now), Why: "backing off after a 429"}
	}
	reopen := in.Reset.Add(in.Grace)
	if !in.Now.Before(in.Reset) {
		// Between the reset and the grace: the server may not have rolled yet.
		return decision{Wait: reopen.Sub(in.Now), Why: "waiting for the next window"}
	}
	if !in.Known {
		// Nothing is known of this window yet: one call goes and its answer tells the
		// rest, whatever was guessed about others' spending (else a wrong guess would
		// never be corrected).
		if in.InFlight > 0 {
			return decision{UntilChange: true, Why: "waiting for the window's first answer"}
		}
		if in.Remaining > 0 {
			return decision{}
		}
	}
	avail := in.Remaining
	if in.External > 0 || in.ExternalPrev > 0 {
		// Another program spends this token: leave it what it spent last window.
		avail -= max(in.ExternalPrev-in.External, 0) + in.Headroom
	}
	if avail <= 0 {
		return decision{Wait: reopen.Sub(in.Now), Why: "window used up"}
	}
	if avail > in.Spread {
		return decision{}
	}
	// Space the last calls evenly over what is left of the window, counting from the
	// last call sent: avail calls in avail+1 equal gaps.
	last := in.LastSend
	if start := in.Reset.Add(-window); last.Before(start) {
		last = start
	}
	next := last.Add(in.Reset.Sub(last) / time.Duration(avail+1))
	if !next.After(in.Now) {
		return decision{}
	}
	return decision{Wait: next.Sub(in.Now), Why: "spreading the window's last calls"}
}
