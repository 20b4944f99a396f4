package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/drextract/drextract/clock"
)

// Options configure a simulator. The zero value of every field is a sensible default, so
// sim.New(sim.Options{Seed: 1}) is a small realistic account on the wall clock.
type Options struct {
	Seed          int64
	Workspaces    int // default 3
	Streams       int // total across workspaces, default 30
	JobsPerStream int // average jobs of history per stream, default 20; negative means none
	// Tokens is the number of user tokens, default 1. Token 1 sees every workspace; each
	// other token sees an overlapping, strict subset (when there are 2+ workspaces).
	Tokens        int
	PlatformLimit int // calls per minute, default 60
	QueryLimit    int // calls per minute, default 200
	DailyQuota    int // calls per UTC day, shared by platform and query calls, default 20000
	// Clock is the simulator's time. Default clock.Real{}; tests pass *clock.Manual, the
	// standalone command a *clock.Offset.
	Clock clock.Clock
	// TokenValues, when set, are the secrets of tokens 1, 2, … in order (Tokens grows to
	// hold them all); the other tokens keep their generated secrets. Tests that hunt for
	// a token in every output use it to make the token recognisable. Empty and repeated
	// values are ignored.
	TokenValues []string

	// The switchable unknowns of the facts file ([I]/[U]). The zero value is the most
	// likely behaviour.

	// StatsOrder is the order of the stats listing across pages: "asc" (default: oldest
	// first, by id, as the one real sample shows) or "desc" (newest first).
	StatsOrder string
	// MaxPageSize silently caps the stats pageSize (default 1000, the size an internal
	// endpoint is seen using). A request for more gets MaxPageSize items per page.
	MaxPageSize int
	// LastRunStatus is the type of a stream's lastRunStatus: "bool" (default: true = the
	// last finished run succeeded, the one client that tests it reads a boolean) or
	// "string" (the stat status, e.g. "FAILURE").
	LastRunStatus string
	// RerunNewIDs: nil or true (default, the real data hints at it) makes a rerun create a
	// new stat with a new id and leave the old one as it was; false makes it reset the
	// listed stats to PENDING in place, keeping their ids.
	RerunNewIDs *bool
	// ErrorBody is the body of a 4xx/5xx answer: "json" (default: {"errors":["msg"]}) or
	// "text" (the message as text/plain).
	ErrorBody string
	// QueryBatch: nil or true (default) serves POST /v1/query-batch; false answers 404.
	QueryBatch *bool
	// CountFailedCalls makes answers with status 400–599 (other than 429) count against
	// the minute bucket and the daily quota. Default false: only successful answers
	// count, and a 429 never does (the call was refused). Whether the real API counts
	// failed calls is unknown; a client that reads the headers is right either way, and
	// tests of the budget should run both ways.
	CountFailedCalls bool
	// BulkStatusMaxIDs caps the ids of one bulk status call (more answer 400). Default 0:
	// no cap (the real maximum is unknown).
	BulkStatusMaxIDs int
	// LastNDaysIncludesToday makes the Query API's LAST_N_DAYS ranges end today instead of
	// yesterday (the default, as most marketing tools count them).
	LastNDaysIncludesToday bool
	// QueryMaxRows is the most rows a query may produce before the Query API answers HTTP
	// 200 with a non-empty errors property (a runtime error). Default 600000, the
	// documented limit; tests set it low to provoke the error.
	QueryMaxRows int
	// ViewerTokens makes tokens 2..N lower-role users: their answers carry null for
	// config, dataSourceAuthenticationId and the user names of entity history ("certain
	// attributes … may return with null"). Default false: every token is an admin.
	ViewerTokens bool
	// DownloadMaxLines caps the data lines of a job's raw-data download (default 200) so
	// a job of a million rows does not make a megabyte body.
	DownloadMaxLines int

	// Faults injects failures; see Faults. Change them at run time with SetFaults.
	Faults Faults
	// Logger receives the simulator's own diagnostics. Default: discard.
	Logger *slog.Logger
}

// Validate reports option values the simulator does not understand. New applies
// defaults and falls back to them for invalid values; callers that take options from a
// user (the CLI) call Validate first to report mistakes.
func (o Options) Validate() error {
	var errs []error
	switch o.StatsOrder {
	case "", "asc", "desc":
	default:
		errs = append(errs, fmt.Errorf("stats order %q: want asc or desc", o.StatsOrder))
	}
	switch o.LastRunStatus {
	case "", "bool", "string":
	default:
		errs = append(errs, fmt.Errorf("lastRunStatus type %q: want bool or string", o.LastRunStatus))
	}
	switch o.ErrorBody {
	case "", "json", "text":
	default:
		errs = append(errs, fmt.Errorf("error body %q: want json or text", o.ErrorBody))
	}
	for _, v := range []struct {
		name string
		n    int
	}{
		{"workspaces", o.Workspaces}, {"streams", o.Streams}, {"tokens", o.Tokens},
		{"platform limit", o.PlatformLimit}, {"query limit", o.QueryLimit},
		{"daily quota", o.DailyQuota}, {"max page size", o.MaxPageSize},
		{"bulk status max ids", o.BulkStatusMaxIDs}, {"query max rows", o.QueryMaxRows},
	} {
		if v.n < 0 {
			errs = append(errs, fmt.Errorf("%s %d: must not be negative", v.name, v.n))
		}
	}
	if o.Tokens > 1000 {
		errs = append(errs, fmt.Errorf("tokens %d: at most 1000", o.Tokens))
	}
	if err := o.Faults.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// withDefaults returns o with every zero or invalid field replaced by its default.
func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Workspaces, 3)
	def(&o.Streams, 30)
	if o.JobsPerStream == 0 {
		o.JobsPerStream = 20
	}
	if o.JobsPerStream < 0 {
		o.JobsPerStream = 0
	}
	def(&o.Tokens, 1)
	o.Tokens = max(o.Tokens, len(o.TokenValues))
	if o.Tokens > 1000 {
		o.Tokens = 1000
	}
	def(&o.PlatformLimit, 60)
	def(&o.QueryLimit, 200)
	def(&o.DailyQuota, 20000)
	def(&o.MaxPageSize, 1000)
	def(&o.QueryMaxRows, 600000)
	def(&o.DownloadMaxLines, 200)
	if o.BulkStatusMaxIDs < 0 {
		o.BulkStatusMaxIDs = 0
	}
	if o.StatsOrder != "desc" {
		o.StatsOrder = "asc"
	}
	if o.LastRunStatus != "string" {
		o.LastRunStatus = "bool"
	}
	if o.ErrorBody != "text" {
		o.ErrorBody = "json"
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Faults = o.Faults.withDefaults()
	return o
}

func (o Options) rerunNewIDs() bool { return o.RerunNewIDs == nil || *o.RerunNewIDs }
func (o Options) queryBatch() bool  { return o.QueryBatch == nil || *o.QueryBatch }

// Bool returns a pointer to v, for the *bool options.
func Bool(v bool) *bool { return &v }

// defaultSlowDelay is how long a "slow" fault holds its answer: long enough to pass any
// sane client timeout in a test, short enough not to stall a test run.
const defaultSlowDelay = 2 * time.Second

// defaultHugePageBytes is the length of a hugepage answer: the 240 MB stats page of the
// report that found the client's memory unbounded.
const defaultHugePageBytes = 240 << 20
