package ratelimit

import (
	"fmt"
	"time"

	"github.com/drextract/drextract/datorama"
)

// stateVersion is the layout of the state, in memory and in the shared file.
const stateVersion = 1

const (
	// sameReset is how far two reset times may differ and still name one window.
	sameReset = time.Second
	// maxBackoff caps the wait after a 429 that names no reset.
	maxBackoff = 32 * time.Second
	day        = 24 * time.Hour
)

// windowState is one minute window of one kind of call as every process sharing the
// token sees it.
type windowState struct {
	Limit int `json:"limit"`
	// Reset is when the current window ends; it began one window earlier.
	Reset time.Time `json:"reset"`
	// Known says a response in this window told us the server's count. Until one does,
	// one call at a time is sent: its answer tells the others what is left.
	Known bool `json:"known"`
	// Used is the most calls the server has been seen to count in this window: the
	// highest Limit-Remaining of any answer (the server's count only grows, so the
	// highest is the latest, and it includes every call already answered), plus one for
	// each answer that came without headers. What is left is Limit-Used less the calls
	// in flight, which the server may not have counted yet.
	Used int `json:"used"`
	// Sent counts the calls sent in this window by every process sharing the state.
	Sent int `json:"sent"`
	// External is a lower bound of the calls the server counted in this window that
	// none of us sent; ExternalPrev is the same for the last window that had answers.
	External     int       `json:"external"`
	ExternalPrev int       `json:"external_prev"`
	LastSend     time.Time `json:"last_send"`
	// BlockedUntil is set by a 429 that named no usable reset: a backoff.
	BlockedUntil time.Time `json:"blocked_until"`
	// Throttled counts 429 answers in a row; it grows the backoff.
	Throttled int `json:"throttled"`
}

// dailyState is the daily quota, shared by both kinds of call; Used as for a window.
type dailyState struct {
	Limit int       `json:"limit"`
	Reset time.Time `json:"reset"`
	Known bool      `json:"known"`
	Used  int       `json:"used"`
}

// flight is one call sent and not yet finished.
type flight struct {
	ID    string        `json:"id"`
	Owner string        `json:"owner"` // the Budget that sent it
	PID   int           `json:"pid"`
	Kind  datorama.Kind `json:"kind"`
	Sent  time.Time     `json:"sent"`
	// Window is the Reset of the window the call was counted in when sent.
	Window time.Time `json:"window"`
}

// state is everything a budget knows about one token. Its methods are pure: they take
// the time and every outside fact as arguments, so the same code runs over the
// in-memory state and over the shared file.
type state struct {
	Version     int         `json:"version"`
	Fingerprint string      `json:"fingerprint"`
	Updated     time.Time   `json:"updated"`
	Platform    windowState `json:"platform"`
	Query       windowState `json:"query"`
	Daily       dailyState  `json:"daily"`
	InFlight    []flight    `json:"in_flight"`
}

// newState is what a budget assumes before any response: the configured limits, all
// of them left, windows aligned to the clock's minutes and the UTC day.
func newState(fp string, cfg Config, now time.Time) *state {
	next := nextMinute(now)
	return &state{
		Version:     stateVersion,
		Fingerprint: fp,
		Platform:    windowState{Limit: cfg.PlatformLimit, Reset: next},
		Query:       windowState{Limit: cfg.QueryLimit, Reset: next},
		Daily:       dailyState{Limit: cfg.DailyQuota, Reset: nextUTCMidnight(now)},
	}
}

func nextMinute(now time.Time) time.Time { return now.UTC().Truncate(window).Add(window) }

func nextUTCMidnight(now time.Time) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, time.UTC)
}

func (s *state) win(k datorama.Kind) *windowState {
	if k == datorama.Query {
		return &s.Query
	}
	return &s.Platform
}

// inFlight counts the calls of kind k in flight; with a non-zero reset, only those
// counted in the window ending then.
func (s *state) inFlight(k datorama.Kind, reset time.Time) int {
	n := 0
	for _, f := range s.InFlight {
		if f.Kind == k && (reset.IsZero() || f.Window.Equal(reset)) {
			n++
		}
	}
	return n
}

// remaining is what calls of kind k may still spend in the current window: calls in
// flight count as spent, whichever window they were sent in, since the server may count
// them in this one.
func (s *state) remaining(k datorama.Kind) int {
	w := s.win(k)
	return w.Limit - w.Used - s.inFlight(k, time.Time{})
}

// dailyRemaining is what both kinds of call may still spend today.
func (s *state) dailyRemaining() int { return s.Daily.Limit - s.Daily.Used - len(s.InFlight) }

// foreignInFlight reports whether a call of kind k in flight in the window ending at reset
// belongs to another process.
func (s *state) foreignInFlight(k datorama.Kind, reset time.Time, pid int) bool {
	for _, f := range s.InFlight {
		if f.Kind == k && f.Window.Equal(reset) && f.PID != pid {
			return true
		}
	}
	return false
}

// tidy brings s up to now: it forgets calls in flight too long or whose process died,
// rolls the windows and the day that ended, and repairs values no honest writer leaves
// (a reset far ahead, a count above its limit). It reports whether s changed.
func (s *state) tidy(now time.Time, cfg Config, alive func(flight) bool) bool {
	before := fmt.Sprint(*s)
	kept := s.InFlight[:0]
	for _, f := range s.InFlight {
		if now.Sub(f.Sent) < cfg.Safety.InFlightTTL && !f.Sent.After(now.Add(window)) && alive(f) {
			kept = append(kept, f)
		}
	}
	s.InFlight = kept
	for _, k := range []datorama.Kind{datorama.Platform, datorama.Query} {
		w := s.win(k)
		if w.Limit <= 0 {
			w.Limit = cfg.PlatformLimit
			if k == datorama.Query {
				w.Limit = cfg.QueryLimit
			}
		}
		switch {
		case w.Reset.IsZero() || w.Reset.After(now.Add(2*window)):
			w.rollTo(nextMinute(now), s.inFlight(k, time.Time{}))
		case !now.Before(w.Reset.Add(cfg.Safety.Grace)):
			n := now.Sub(w.Reset)/window + 1
			w.rollTo(w.Reset.Add(n*window), s.inFlight(k, time.Time{}))
		}
		w.Used = min(max(w.Used, 0), w.Limit)
		if w.BlockedUntil.After(now.Add(2 * maxBackoff)) {
			w.BlockedUntil = time.Time{}
		}
	}
	d := &s.Daily
	if d.Limit <= 0 {
		d.Limit = cfg.DailyQuota
	}
	if d.Reset.IsZero() || d.Reset.After(now.Add(2*day)) || !now.Before(d.Reset.Add(cfg.Safety.Grace)) {
		d.Reset = nextUTCMidnight(now)
		d.Known = false
		d.Used = 0
	}
	d.Used = min(max(d.Used, 0), d.Limit)
	return fmt.Sprint(*s) != before
}

// rollTo starts the window ending at reset. Calls still in flight may land in it, so
// they are counted as sent in it.
func (w *windowState) rollTo(reset time.Time, inFlight int) {
	if w.Known {
		w.ExternalPrev = w.External
	}
	w.External = 0
	w.Reset = reset
	w.Known = false
	w.Used = 0
	w.Sent = inFlight
}

// take records a call of kind k sent now by f's owner; f's time and window are set here.
func (s *state) take(k datorama.Kind, f flight, now time.Time) {
	w := s.win(k)
	w.Sent++
	w.LastSend = now
	f.Kind, f.Sent, f.Window = k, now, w.Reset
	s.InFlight = append(s.InFlight, f)
}

// finish records the end of call id of kind k, and reconciles s with its answer: the
// HTTP status (0 when none arrived) and its rate headers. jitter in [0,1) spreads
// backoffs. It returns notes worth a warning.
func (s *state) finish(id string, k datorama.Kind, status int, r datorama.Rate, now time.Time, jitter float64) []string {
	for i, f := range s.InFlight {
		if f.ID == id {
			s.InFlight = append(s.InFlight[:i], s.InFlight[i+1:]...)
			break
		}
	}
	notes := append([]string(nil), r.Warnings...)
	w := s.win(k)
	if status == 0 {
		// No answer: the server may or may not have counted the call; count it.
		w.Used++
		s.Daily.Used++
		return notes
	}
	for _, kk := range []datorama.Kind{datorama.Platform, datorama.Query} {
		s.reconcileWindow(kk, r.Bucket(kk), kk == k, now, &notes)
	}
	s.reconcileDaily(r, now, &notes)
	if status != 429 {
		w.Throttled = 0
		return notes
	}
	w.Throttled++
	if r.Daily.HasRemaining && r.Daily.Remaining == 0 {
		// The day is spent: Acquire now fails fast with the reset rather than wait.
		if t := r.DailyReset(); t.IsZero() || (t.After(now) && t.Before(now.Add(2*day))) {
			s.Daily.Used = s.Daily.Limit
			s.Daily.Known = true
			if !t.IsZero() {
				s.Daily.Reset = t
			}
		}
		return notes
	}
	bucket := r.Bucket(k)
	reset := r.RateLimitReset
	if reset.IsZero() && bucket.HasRemaining && bucket.Remaining == 0 {
		reset = bucket.Reset
	}
	switch {
	case bucket.HasRemaining && bucket.Remaining > 0:
		notes = append(notes, fmt.Sprintf("429 on a %s call although the headers say %d left; backing off", k, bucket.Remaining))
		w.backoff(now, jitter)
	case reset.After(now) && reset.Before(now.Add(2*window)):
		if reset.After(w.Reset.Add(sameReset)) {
			w.rollTo(reset, s.inFlight(k, time.Time{}))
		}
		w.Reset, w.Used, w.Known = reset, w.Limit, true
	default:
		w.backoff(now, jitter)
	}
	return notes
}

// backoff closes the window for a bounded, growing, jittered while: the answer to a 429
// that says nothing usable about when to come back.
func (w *windowState) backoff(now time.Time, jitter float64) {
	d := time.Second << min(max(w.Throttled-1, 0), 5)
	d = min(d, maxBackoff)
	d = d/2 + time.Duration(jitter*float64(d/2))
	w.BlockedUntil = now.Add(d)
}

// reconcileWindow takes one family of minute-window headers into account. own says the
// answered call was of this kind: an answer without this family's headers then counts
// the call locally and confirms the window, local counts being all there is to go on.
func (s *state) reconcileWindow(k datorama.Kind, h datorama.Window, own bool, now time.Time, notes *[]string) {
	w := s.win(k)
	if !h.Known || !h.HasRemaining {
		if own {
			w.Used++
			w.Known = true
		}
		if h.Limit > 0 {
			w.Limit = h.Limit
		}
		return
	}
	if h.Limit > 0 {
		w.Limit = h.Limit
	}
	if h.Remaining > w.Limit {
		*notes = append(*notes, fmt.Sprintf("ignoring the %s window's %d left: more than the limit %d", k, h.Remaining, w.Limit))
		if own {
			w.Used++
		}
		return
	}
	used := w.Limit - h.Remaining
	reset := h.Reset
	if !reset.IsZero() {
		if reset.After(now.Add(2 * window)) {
			*notes = append(*notes, fmt.Sprintf("ignoring the %s window reset %s: more than two windows ahead", k, reset.Format(time.RFC3339)))
			reset = time.Time{}
		} else if !reset.After(now) {
			return // about a window that is already over
		}
	}
	switch {
	case reset.IsZero() || (w.Known && reset.Sub(w.Reset).Abs() <= sameReset):
		w.Used = max(w.Used, used)
	case !w.Known:
		// Our own guess at the window gives way to the server's.
		w.Used = max(w.Used, used)
	case reset.After(w.Reset):
		// The server opened a window we have not rolled to yet.
		w.rollTo(reset, s.inFlight(k, time.Time{})+1)
		w.Used = used
	default:
		return // an older window, answered late
	}
	if !reset.IsZero() {
		w.Reset = reset
	}
	w.Known = true
	// The server counted Used calls; we sent at most Sent of them.
	w.External = max(w.External, w.Used-w.Sent)
}

// reconcileDaily takes the daily-quota headers into account.
func (s *state) reconcileDaily(r datorama.Rate, now time.Time, notes *[]string) {
	d := &s.Daily
	h := r.Daily
	if h.Limit > 0 {
		d.Limit = h.Limit
	}
	if !h.HasRemaining {
		d.Used++
		return
	}
	if h.Remaining > d.Limit {
		*notes = append(*notes, fmt.Sprintf("ignoring the daily quota's %d left: more than the limit %d", h.Remaining, d.Limit))
		d.Used++
		return
	}
	used := d.Limit - h.Remaining
	reset := r.DailyReset()
	if !reset.IsZero() {
		if reset.After(now.Add(2 * day)) {
			*notes = append(*notes, fmt.Sprintf("ignoring the daily reset %s: more than two days ahead", reset.Format(time.RFC3339)))
			reset = time.Time{}
		} else if !reset.After(now) {
			return
		}
	}
	switch {
	case reset.IsZero() || !d.Known || (reset.Sub(d.Reset).Abs() <= sameReset):
		d.Used = max(d.Used, used)
	case reset.After(d.Reset):
		d.Used = used
	default:
		return
	}
	if !reset.IsZero() {
		d.Reset = reset
	}
	d.Known = true
}
