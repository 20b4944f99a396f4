package extract

import (
	"fmt"
	drsql "github.com/drextract/drextract/sql"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/load"
)

// Defaults of Options.
const (
	// DefaultRequestPageSize is the stats page size asked for. The API's maximum is
	// unknown and it caps silently; the crawler learns the cap (see the package doc).
	DefaultRequestPageSize = 10000
	// DefaultWorkspaceListsEvery is how often workspace-level lists are read again.
	DefaultWorkspaceListsEvery = 24 * time.Hour
	// DefaultSweepEvery is how often every stream's jobs are read in full, as a safety net
	// for changes the incremental read cannot see (a deleted old job).
	DefaultSweepEvery = 7 * 24 * time.Hour
	// DefaultWorkers is how many streams are read at once. One token's 60 calls a
	// minute leave a single worker idle most of the time; more workers pay off only with
	// a pool of tokens. A kill repeats at most the page each worker had in flight.
	DefaultWorkers = 1
	// DefaultEmptyPageChecks is how often a suspicious empty page is fetched again. With
	// one check a fault that empties one page in fifty loses a page one time in 2,500;
	// with two, one in 125,000. The price is two calls per stream whose job count is a
	// multiple of the page size.
	DefaultEmptyPageChecks = 2
)

// Entities lists every entity a crawl can read, in crawl order. They are also the names
// of the store's current-state tables.
var Entities = drsql.Entities

// workspaceLists are the entities read once per workspace on their own cadence.
var workspaceLists = []string{
	load.Dimensions, load.Measurements, load.HarmonizedDimensions, load.Patterns, load.CalculatedMeasurements,
}

// Options tune one crawl. The zero value is an incremental crawl of every entity.
type Options struct {
	// Full re-reads everything: every stream's jobs from page 1, every mapping and every
	// workspace-level list.
	Full bool
	// Entities restricts the crawl to these entities (see Entities); empty means all. The
	// workspace list and the stream lists are read whenever anything below them is, since
	// they say what exists.
	Entities []string
	// Workspaces, when set, restricts the crawl to these workspaces: each one's stream
	// list, its streams' jobs and mappings and its workspace-level lists, decided as any
	// run decides them (with Full, all of them). The workspace list is not read, so no
	// workspace is marked deleted; a stream that left a targeted workspace's list is, as
	// in any run. With a pool of several tokens, each token lists its workspaces first,
	// only to learn which token sees what (nothing is stored from those lists).
	Workspaces []int64
	// Streams, when set, restricts the crawl to these streams (besides those of
	// Workspaces). Each costs one GET of the stream (its record and run fields, in place
	// of its workspace's list), its job pages, read as if its listing had moved (so one
	// page when nothing changed and the list fits a page), and its mapping. Only the
	// stream's own rows and checkpoints change; a stream the API does not answer leaves
	// the run partial and nothing marked deleted.
	Streams []int64
	// RequestPageSize is the stats page size asked for until a cap is learned.
	RequestPageSize int
	// WorkspaceListsEvery is the cadence of the workspace-level lists.
	WorkspaceListsEvery time.Duration
	// SweepEvery is the cadence of the safety-net full read of each stream's jobs;
	// negative turns it off.
	SweepEvery time.Duration
	// MaxCalls stops the crawl cleanly once this many API attempts were made (the run
	// ends partial); 0 means no cap.
	MaxCalls int
	// Workers is how many streams are read concurrently.
	Workers int
	// SkipBulkStatus turns off the bulk status call (one per workspace and 100 unchanged
	// streams) that finds runs started since the last crawl but not finished yet, which
	// the stream listing does not show; their jobs are then stored once the runs finish.
	SkipBulkStatus bool
	// EmptyPageChecks is how often a suspicious empty stats page is fetched again before
	// it is believed; negative means never.
	EmptyPageChecks int
	// Schedule names the schedule the run belongs to ("cli" when empty).
	Schedule string
	// Progress receives a live progress line when it is a terminal; otherwise progress
	// goes to Logger as plain lines. Nil means no progress output.
	Progress io.Writer
	// Clock is the crawler's time (observed-at stamps, cadences). Default clock.Real.
	Clock clock.Clock
	// Logger receives diagnostics; the crawler adds component=extract.
	Logger *slog.Logger
}

// withDefaults fills every unset field and validates the entity names.
func (o Options) withDefaults() (Options, error) {
	if o.RequestPageSize <= 0 {
		o.RequestPageSize = DefaultRequestPageSize
	}
	if o.WorkspaceListsEvery <= 0 {
		o.WorkspaceListsEvery = DefaultWorkspaceListsEvery
	}
	if o.SweepEvery == 0 {
		o.SweepEvery = DefaultSweepEvery
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.EmptyPageChecks == 0 {
		o.EmptyPageChecks = DefaultEmptyPageChecks
	}
	if o.EmptyPageChecks < 0 {
		o.EmptyPageChecks = 0
	}
	if o.Schedule == "" {
		o.Schedule = "cli"
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	o.Logger = o.Logger.With("component", "extract")
	ents, err := ParseEntities(o.Entities)
	if err != nil {
		return o, err
	}
	o.Entities = ents
	if o.Workspaces, err = targetIDs("workspace", o.Workspaces); err != nil {
		return o, err
	}
	if o.Streams, err = targetIDs("stream", o.Streams); err != nil {
		return o, err
	}
	return o, nil
}

// targetIDs checks the ids of a target and returns them sorted, without repeats.
func targetIDs(what string, ids []int64) ([]int64, error) {
	for _, id := range ids {
		if id <= 0 {
			return nil, fmt.Errorf("%s id %d: must be positive", what, id)
		}
	}
	out := slices.Clone(ids)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// targeted reports whether the crawl reads only some workspaces or streams.
func (o Options) targeted() bool { return len(o.Workspaces) > 0 || len(o.Streams) > 0 }

// ParseEntities checks entity names (also accepting comma-separated lists and hyphens for
// underscores) and returns them in crawl order without repeats; nil or empty means all.
func ParseEntities(names []string) ([]string, error) {
	want := map[string]bool{}
	for _, n := range names {
		for _, part := range strings.Split(n, ",") {
			part = strings.ReplaceAll(strings.ToLower(strings.TrimSpace(part)), "-", "_")
			if part == "" {
				continue
			}
			if part == "all" {
				return slices.Clone(Entities), nil
			}
			if !slices.Contains(Entities, part) {
				return nil, fmt.Errorf("unknown entity %q: want one of %s", part, strings.Join(Entities, ", "))
			}
			want[part] = true
		}
	}
	if len(want) == 0 {
		return slices.Clone(Entities), nil
	}
	var out []string
	for _, e := range Entities {
		if want[e] {
			out = append(out, e)
		}
	}
	return out, nil
}

func (o Options) wants(entity string) bool { return slices.Contains(o.Entities, entity) }

// needsStreams reports whether the stream lists must be read: for themselves or for
// what hangs below them.
func (o Options) needsStreams() bool {
	return o.wants(load.Streams) || o.wants(load.Jobs) || o.wants(load.Mappings)
}

// kind is the runs.kind of a crawl.
func (o Options) kind() string {
	if o.Full {
		return "extract-full"
	}
	return "extract"
}

// Result is how a crawl ended.
type Result struct {
	RunID  int64
	Status string // load.RunOK, RunPartial, RunQuotaExhausted or RunFailed
	// Calls is the number of API attempts made during the run (retries included).
	Calls int
	// Rows is the number of rows written per table.
	Rows map[string]int
	// Incomplete names the parents whose listing failed, e.g. "jobs of stream 123".
	Incomplete []string
	// QuotaReset is when the daily quota reopens, set when Status is RunQuotaExhausted.
	QuotaReset time.Time
	// ProbeCalls is how many of Calls were spent learning the page-size cap.
	ProbeCalls int
	// Err is the error that ended a failed run, or the *datorama.QuotaError that stopped
	// a quota_exhausted one (nil otherwise).
	Err error
}
