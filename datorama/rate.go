package datorama

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Kind says which per-minute bucket a call counts against. Both count against the daily
// quota.
type Kind int

const (
	Platform Kind = iota // 60/min
	Query                // 200/min
)

func (k Kind) String() string {
	if k == Query {
		return "query"
	}
	return "platform"
}

// Window is what one family of rate headers said about one bucket.
type Window struct {
	Known     bool // false when the response carried none of this family's headers
	Limit     int
	Remaining int
	Reset     time.Time // when the window reopens; zero if not sent
	// HasRemaining says Remaining was sent and valid: a Remaining of 0 is then "empty",
	// not "missing or garbage".
	HasRemaining bool
}

// Rate is every rate header of one response, parsed. A header that is missing leaves its
// field zero; a header with a garbage value is ignored and noted in Warnings, never a
// panic and never an error.
type Rate struct {
	Platform Window
	Query    Window
	Daily    Window
	// RateLimitReset is X-RateLimit-Reset, which the docs name on 429 answers: when the
	// minute bucket that tripped reopens.
	RateLimitReset time.Time
	// DailyQuotaRest is X-DailyQuota-Rest (sic), the documented 429 spelling of the daily
	// reset.
	DailyQuotaRest time.Time
	Warnings       []string
}

// Any reports whether the response carried at least one rate header.
func (r Rate) Any() bool {
	return r.Platform.Known || r.Query.Known || r.Daily.Known || !r.RateLimitReset.IsZero() || !r.DailyQuotaRest.IsZero()
}

// Bucket returns the minute window for kind k.
func (r Rate) Bucket(k Kind) Window {
	if k == Query {
		return r.Query
	}
	return r.Platform
}

// DailyReset returns the daily reset from whichever header carried it.
func (r Rate) DailyReset() time.Time {
	if !r.Daily.Reset.IsZero() {
		return r.Daily.Reset
	}
	return r.DailyQuotaRest
}

// Header names, as the facts file gives them (§4).
const (
	HeaderPlatformLimit     = "X-PlatformRateLimit-Limit"
	HeaderPlatformRemaining = "X-PlatformRateLimit-Remaining"
	HeaderPlatformReset     = "X-PlatformRateLimit-Reset"
	HeaderQueryLimit        = "X-QueryRateLimit-Limit"
	HeaderQueryRemaining    = "X-QueryRateLimit-Remaining"
	HeaderQueryReset        = "X-QueryRateLimit-Reset"
	HeaderDailyLimit        = "X-DailyQuota-Limit"
	HeaderDailyRemaining    = "X-DailyQuota-Remaining"
	HeaderDailyReset        = "X-DailyQuota-Reset"
	HeaderRateLimitReset    = "X-RateLimit-Reset" // 429 only
	HeaderDailyQuotaRest    = "X-DailyQuota-Rest" // 429 only, misspelt in the docs
)

// ParseRate reads every rate header of h.
func ParseRate(h http.Header) Rate {
	var r Rate
	r.Platform = parseWindow(h, HeaderPlatformLimit, HeaderPlatformRemaining, HeaderPlatformReset, &r.Warnings)
	r.Query = parseWindow(h, HeaderQueryLimit, HeaderQueryRemaining, HeaderQueryReset, &r.Warnings)
	r.Daily = parseWindow(h, HeaderDailyLimit, HeaderDailyRemaining, HeaderDailyReset, &r.Warnings)
	r.RateLimitReset, _ = parseMillis(h, HeaderRateLimitReset, &r.Warnings)
	r.DailyQuotaRest, _ = parseMillis(h, HeaderDailyQuotaRest, &r.Warnings)
	return r
}

func parseWindow(h http.Header, limit, remaining, reset string, warn *[]string) Window {
	var w Window
	if v, ok := parseInt(h, limit, warn); ok {
		w.Limit, w.Known = v, true
	}
	if v, ok := parseInt(h, remaining, warn); ok {
		w.Remaining, w.HasRemaining, w.Known = v, true, true
	}
	if t, ok := parseMillis(h, reset, warn); ok {
		w.Reset, w.Known = t, true
	}
	return w
}

func parseInt(h http.Header, name string, warn *[]string) (int, bool) {
	s := strings.TrimSpace(h.Get(name))
	if s == "" {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v > 1<<30 {
		*warn = append(*warn, fmt.Sprintf("ignoring %s: %q is not a count", name, clip(s)))
		return 0, false
	}
	return v, true
}

// parseMillis reads epoch milliseconds. A value that looks like epoch seconds (before
// 2001 as milliseconds) is taken as seconds, with a warning.
func parseMillis(h http.Header, name string, warn *[]string) (time.Time, bool) {
	s := strings.TrimSpace(h.Get(name))
	if s == "" {
		return time.Time{}, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v <= 0 || v > 1e14 {
		*warn = append(*warn, fmt.Sprintf("ignoring %s: %q is not epoch milliseconds", name, clip(s)))
		return time.Time{}, false
	}
	if v < 1e12 {
		*warn = append(*warn, fmt.Sprintf("%s: %d looks like epoch seconds, read as seconds", name, v))
		return time.Unix(v, 0).UTC(), true
	}
	return time.UnixMilli(v).UTC(), true
}

func clip(s string) string { return truncate([]byte(s), 32) }

// Call describes one request to the gate before it is sent.
type Call struct {
	Kind         Kind
	Method       string
	PathTemplate string // e.g. "/v1/data-streams/api/{id}/stats"
	// WorkspaceID is the workspace the call concerns: from the path when it has one, else
	// from WithWorkspace on the context; 0 when unknown.
	WorkspaceID int64
	Attempt     int // 1 for the first try, 2.. for retries of the same request
}

// Gate is what every request passes through: the ratelimit package implements it. The
// client calls Acquire before each attempt and Permit.Done after it, whatever happened,
// so the gate sees every response's rate headers, 429s and errors included.
type Gate interface {
	// Acquire blocks until the call may be sent, or returns an error without sending:
	// the context's error, or a *QuotaError when the quota left for the caller's
	// priority is gone.
	Acquire(ctx context.Context, c Call) (Permit, error)
}

// Permit is one granted attempt.
type Permit interface {
	// Token is the API token to send; "" means the client's own token.
	Token() string
	// Fingerprint identifies the token in logs and tables ("" for the client's own,
	// which the client then fingerprints itself).
	Fingerprint() string
	// Done reports the attempt's outcome: the HTTP status (0 when no response arrived),
	// the parsed rate headers and how long it took. Called exactly once.
	Done(status int, rate Rate, latency time.Duration)
}

// Observer sees every attempt after it finished; the audit (api_calls) plugs in here.
type Observer interface {
	ObserveCall(CallRecord)
}

// CallRecord is one attempt as the audit stores it. It never holds the token.
type CallRecord struct {
	Time         time.Time
	Fingerprint  string
	Kind         Kind
	Method       string
	PathTemplate string
	Path         string // with ids filled in; no query secrets
	Status       int    // 0 on transport error
	Latency      time.Duration
	Rate         Rate
	Attempt      int
	Err          string // transport or decode error text, token-free
	Ref          CallRef
}

// CallRef says what a request was made for, as far as the audit tells calls apart: the
// bulk-action call it carries out. The caller sets it with WithCallRef; the zero value
// names nothing.
type CallRef struct {
	ActionRunID  int64 // the action run (action_runs.id)
	ActionCallNo int   // its call (action_calls.call_no)
}

type callRefKey struct{}

// WithCallRef tags the requests made with ctx: each attempt's CallRecord carries ref.
func WithCallRef(ctx context.Context, ref CallRef) context.Context {
	return context.WithValue(ctx, callRefKey{}, ref)
}

// CallRefFrom returns the ref set by WithCallRef, or the zero CallRef.
func CallRefFrom(ctx context.Context) CallRef {
	ref, _ := ctx.Value(callRefKey{}).(CallRef)
	return ref
}

// ErrQuotaExhausted is matched (errors.Is) by every error that means "no daily quota
// left for this caller until the reset".
var ErrQuotaExhausted = errors.New("daily quota exhausted")

// QuotaError says the daily quota (or the part of it open to the caller's priority) is
// gone until Reset.
type QuotaError struct {
	Reset    time.Time
	Reserved bool // true when quota is left but held back by the reserve
}

func (e *QuotaError) Error() string {
	when := ""
	if !e.Reset.IsZero() {
		when = ", resets at " + e.Reset.UTC().Format(time.RFC3339)
	}
	return "quota exhausted" + when + ": " + e.Why()
}

// Why says what stopped the call: the API's daily quota, or drextract's reserve holding
// the rest of it back for interactive commands.
func (e *QuotaError) Why() string {
	if e.Reserved {
		return "drextract's reserve (budget.reserve) keeps the rest of today's quota for interactive commands; scheduled and backfill work waits for the reset"
	}
	return "the API's daily quota is used up"
}

func (e *QuotaError) Is(target error) bool { return target == ErrQuotaExhausted }

// QuotaReset reports whether err means the daily quota is gone and, when the error says,
// when it comes back (zero otherwise).
func QuotaReset(err error) (reset time.Time, ok bool) {
	var qe *QuotaError
	if errors.As(err, &qe) {
		return qe.Reset, true
	}
	return time.Time{}, errors.Is(err, ErrQuotaExhausted)
}

type workspaceKey struct{}

// WithWorkspace tells the gate which workspace calls made with ctx concern, for calls
// whose path does not name it (stream, job and mapping calls). A token pool routes on it.
func WithWorkspace(ctx context.Context, id int64) context.Context {
	return context.WithValue(ctx, workspaceKey{}, id)
}

// WorkspaceFrom returns the id set by WithWorkspace, or 0.
func WorkspaceFrom(ctx context.Context) int64 {
	id, _ := ctx.Value(workspaceKey{}).(int64)
	return id
}
