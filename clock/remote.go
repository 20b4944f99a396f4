package clock

import (
	"log/slog"
	"sync"
	"time"
)

// Remote is a server's clock as this host estimates it: the host clock plus an offset
// learned from the times the server stamps on its answers (an HTTP Date header), the way
// cloud SDKs correct clock skew. Until something is observed or restored it reads as the
// host clock.
//
// Each observation says the server's time, to the second, lay between the request's send
// and the answer's arrival on the host clock; that bounds the offset to an interval about
// one second plus the round trip wide. The estimate comes from the intersection of those
// intervals (see Skew.Offset): the intersection only narrows while observations agree, so
// one-second rounding does not make the estimate jitter, and a host clock that agrees
// with the server to within that precision is left uncorrected. An observation that contradicts the estimate is held back until a
// second one agrees with it, so a single odd answer (a cache, a proxy) moves nothing,
// while a real jump (a host clock stepped, a simulator advanced) is followed one answer
// later. The first observation of a process replaces a restored estimate at once.
//
// A Remote is safe for concurrent use.
type Remote struct {
	host Clock
	log  *slog.Logger

	mu       sync.Mutex
	known    bool          // cur holds an estimate (observed or restored)
	observed bool          // cur was observed in this process
	cur      Skew          // what the offset is known to be
	pending  *Skew         // an observation that contradicts cur, awaiting a second
	off      time.Duration // cur's middle, cached for Now
	warned   int           // the sign of the skew last warned about; 0: none
}

// Skew bounds how far a remote clock is ahead of the host's (negative: behind): the
// offset lies within [Min, Max]. At is the host time of the latest observation behind it.
type Skew struct {
	Min time.Duration `json:"min"`
	Max time.Duration `json:"max"`
	At  time.Time     `json:"at"`
}

// Offset is the correction to apply to the host clock: none while the host clock agrees
// with every observation (0 within [Min, Max]); otherwise Min, the smallest offset the
// observations allow, so that the estimate never runs ahead of the server's clock. A
// window or a quota that reopens at the server's time is then never taken as open early:
// at worst the estimate lags by the width of [Min, Max], which narrows with every answer.
func (s Skew) Offset() time.Duration {
	if s.Min <= 0 && 0 <= s.Max {
		return 0
	}
	return s.Min
}

func (s Skew) overlaps(o Skew) bool { return s.Min <= o.Max && o.Min <= s.Max }

func (s Skew) intersect(o Skew) Skew {
	return Skew{Min: max(s.Min, o.Min), Max: min(s.Max, o.Max), At: later(s.At, o.At)}
}

// widen allows for the two clocks drifting apart since s was learned.
func (s Skew) widen(now time.Time) Skew {
	if d := now.Sub(s.At); d > 0 {
		w := time.Duration(float64(d) * maxDrift)
		s.Min, s.Max = s.Min-w, s.Max+w
	}
	return s
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

const (
	// maxDrift is how fast two healthy clocks may drift apart (100 ppm, about 9 s a day):
	// an estimate widens by that much over time, so a slow drift never reads as a jump.
	maxDrift = 1e-4
	// DateResolution is the precision of an HTTP Date header: whole seconds, truncated.
	DateResolution = time.Second
	// SkewWarning is the skew beyond which the host clock is worth a warning.
	SkewWarning = time.Minute
)

// NewRemote returns the estimate of a server's clock over host (nil: Real), reading as
// host until it learns better. log (nil: slog.Default()) receives a warning, once per
// direction, when the skew exceeds SkewWarning.
func NewRemote(host Clock, log *slog.Logger) *Remote {
	if host == nil {
		host = Real{}
	}
	if log == nil {
		log = slog.Default()
	}
	return &Remote{host: host, log: log.With("component", "clock")}
}

// Host returns the host clock the estimate is built on. Observations must be timed on it.
func (r *Remote) Host() Clock { return r.host }

// Now is the host's time plus the estimated offset.
func (r *Remote) Now() time.Time {
	r.mu.Lock()
	off := r.off
	r.mu.Unlock()
	return r.host.Now().Add(off)
}

// After and Timer are the host's: a wait of d is d on both clocks. The value received
// is the host's time.
func (r *Remote) After(d time.Duration) <-chan time.Time { return r.host.After(d) }

func (r *Remote) Timer(d time.Duration) (<-chan time.Time, func()) { return r.host.Timer(d) }

// Observe records that the server stamped date (truncated to res, such as DateResolution
// for an HTTP Date header) on an answer to a request sent at sent and answered at received,
// both read from Host(). Observations may arrive in any order and from any goroutine.
func (r *Remote) Observe(sent, received, date time.Time, res time.Duration) {
	if received.Before(sent) {
		sent, received = received, sent
	}
	obs := Skew{Min: date.Sub(received), Max: date.Add(res).Sub(sent), At: received}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case !r.known || !r.observed:
		// Nothing yet, or only what an earlier process saw: this answer is better.
		if r.known && r.cur.widen(received).overlaps(obs) {
			obs = r.cur.widen(received).intersect(obs)
		}
		r.set(obs)
	case r.cur.widen(received).overlaps(obs):
		r.set(r.cur.widen(received).intersect(obs))
	case r.pending != nil && r.pending.overlaps(obs):
		before := r.off
		r.set(r.pending.intersect(obs))
		r.log.Info("the server's clock moved; following it", "offset_before", before.Round(time.Millisecond),
			"offset", r.off.Round(time.Millisecond))
	default:
		r.pending = &obs
		return
	}
	r.observed = true
	r.warn()
}

// set makes s the estimate. Callers hold r.mu.
func (r *Remote) set(s Skew) {
	r.cur, r.known, r.pending = s, true, nil
	r.off = s.Offset()
}

// warn says once per direction that the host clock is far off; after the skew falls
// back under half the threshold it may say so again. Callers hold r.mu.
func (r *Remote) warn() {
	sign := 0
	switch {
	case r.off > SkewWarning:
		sign = 1
	case r.off < -SkewWarning:
		sign = -1
	case r.off.Abs() < SkewWarning/2:
		r.warned = 0
	}
	if sign == 0 || sign == r.warned {
		return
	}
	r.warned = sign
	dir := "ahead of"
	if sign < 0 {
		dir = "behind"
	}
	r.log.Warn("the API's clock is "+dir+" this host's by more than a minute; times are taken from the API's clock",
		"skew", r.off.Round(time.Second), "host_time", r.host.Now().UTC().Format(time.RFC3339),
		"api_time", r.host.Now().Add(r.off).UTC().Format(time.RFC3339))
}

// Skew returns the current estimate, and false when there is none (Now is then the host's).
func (r *Remote) Skew() (Skew, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur, r.known
}

// Observed reports whether an answer observed by this process backs the estimate; a
// restored estimate alone does not count.
func (r *Remote) Observed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.observed
}

// Restore adopts an estimate saved earlier (by this or another process) until this
// process observes the server itself; of several restored, the latest (by At) wins.
// A Skew with Min > Max is ignored.
func (r *Remote) Restore(s Skew) {
	if s.Min > s.Max {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.observed || (r.known && !s.At.After(r.cur.At)) {
		return
	}
	r.set(s)
}
