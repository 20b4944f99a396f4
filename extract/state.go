package extract

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
)

// Checkpoint kinds the crawler owns. Entity names double as kinds for the per-workspace
// lists; these are the others.
const (
	kindAccount    = "account"    // parent 0: what the crawler learned about the API
	kindWorkspaces = "workspaces" // parent 0: when the workspace list was read
	kindStreams    = "streams"    // per workspace: when its stream list was read
	kindJobs       = "jobs"       // per stream: jobsState
	kindMappings   = "mappings"   // per stream: mappingState
)

// Stats orders.
const (
	orderAsc  = "asc"
	orderDesc = "desc"
)

// accountState is the "account" checkpoint: facts about this account's API that cost
// calls to learn. The cap and the floor also follow from the jobs checkpoints (each keeps
// the longest page its stream returned), so a kill between learning and storing them
// loses nothing.
type accountState struct {
	// Order is the stats order across pages: "asc", "desc" or "" (not seen yet).
	Order string `json:"order,omitempty"`
	// Cap is the page size the API was seen to cap requests at; 0 while none was seen.
	Cap int `json:"cap,omitempty"`
	// Floor is the longest page ever returned: the cap, if any, is at least this.
	Floor int `json:"floor,omitempty"`
	// Probes counts the cap-learning calls spent on this account, all runs together.
	Probes int `json:"probes,omitempty"`
}

// pageSize is the page size to ask for, given the size the caller wants.
func (a accountState) pageSize(requested int) int {
	if a.Cap > 0 && a.Cap < requested {
		return a.Cap
	}
	return requested
}

// verdict says what a page of n jobs, asked with size, means for the list. Page 1 is
// always asked with the requested size, later pages with pageSize(requested). A page as
// long as asked, or page 1 exactly as long as a known cap, means more pages follow. A
// shorter page ends the list unless it is page 1, no cap is known and it is at least as
// long as every page seen so far (observe must have seen it): then it is ambiguous, and
// only a probe can tell a capped page from a complete list.
func (a accountState) verdict(n, size int, first bool) pageVerdict {
	switch {
	case n >= size:
		return pageMore
	case n == 0 || !first:
		return pageEnds
	case a.Cap > 0 && n == a.Cap:
		return pageMore
	case a.Cap > 0 || n < a.Floor:
		return pageEnds
	}
	return pageAmbiguous
}

// pageVerdict is what a page means for the rest of the list.
type pageVerdict int

const (
	pageMore      pageVerdict = iota // more pages follow
	pageEnds                         // the list ends with this page
	pageAmbiguous                    // a first page that may have been capped
)

// observe folds a page of n jobs, asked with size, into what is known: every page
// length is a floor for the cap, and a page longer than the known cap (or as long as
// asked) shows the cap is gone or above the request.
func (a *accountState) observe(n, size int) {
	if n > a.Floor {
		a.Floor = n
	}
	if a.Cap > 0 && (n > a.Cap || n >= size && size > a.Cap) {
		a.Cap = 0
	}
}

// jobsState is a stream's "jobs" checkpoint. It is written with every page of the
// stream's jobs, in the same transaction.
type jobsState struct {
	// Listing is the fingerprint of the stream's run-related listing fields that the run
	// which brought the stored jobs up to date saw before it read them. It advances only
	// when a read reaches the end of the list, and only to a listing seen by the same
	// run before every page that can have changed since was read (see the package doc).
	Listing string `json:"listing,omitempty"`
	// Done says the last read reached the end of the list; when false, Next and
	// PageSize say where it stopped (Next 0: not in its tail yet).
	Done     bool `json:"done"`
	Next     int  `json:"next,omitempty"`
	PageSize int  `json:"pageSize,omitempty"`
	// FullRead marks an interrupted read that was a full one (a sweep).
	FullRead bool `json:"fullRead,omitempty"`
	// Pending is the length of a first page waiting for the cap probe, PendingLast the
	// id of its last job, PendingListing the listing fingerprint of the run that read it
	// (a later run keeps the page only while the listing still shows it).
	Pending        int    `json:"pending,omitempty"`
	PendingLast    int64  `json:"pendingLast,omitempty"`
	PendingListing string `json:"pendingListing,omitempty"`
	// Count and NonFinal are the stream's stored jobs and how many are not final;
	// Latest is the status of the stored job with the highest id.
	Count    int    `json:"count"`
	NonFinal int    `json:"nonFinal"`
	Latest   string `json:"latest,omitempty"`
	// MaxPage is the longest page this stream ever returned.
	MaxPage int `json:"maxPage,omitempty"`
	// Cap is the page-size cap this stream's probe found (0: none found here).
	Cap int `json:"cap,omitempty"`
	// Order is the stats order seen on this stream's pages.
	Order string `json:"order,omitempty"`
	// SweptAt is when the last full read ended.
	SweptAt time.Time `json:"sweptAt,omitempty"`
}

// mappingState is a stream's "mappings" checkpoint.
type mappingState struct {
	UpdateTime int64 `json:"updateTime"` // the stream's updateTime when the mapping was read
}

// listState is the checkpoint of a listing read on a cadence (workspaces, streams and
// the workspace-level lists).
type listState struct {
	At    time.Time `json:"at"`
	Count int       `json:"count"`
	// IDs are the listed ids, kept for stream lists: a stream that leaves its
	// workspace's complete listing has its jobs and mapping retired too.
	IDs []int64 `json:"ids,omitempty"`
	// Gone are streams that left this list and whose jobs and mapping are not retired
	// yet: they are written with the list that dropped them, so a run stopped before
	// retiring them leaves the work to the next one.
	Gone []int64 `json:"gone,omitempty"`
}

// listingFingerprint summarises the fields of a stream's listing that change when it
// runs. Equal fingerprints mean no run finished since.
func listingFingerprint(s *datorama.Stream) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%d|%d|%s|%d", s.LastRunStatus.Text(), int64(s.LastRowsRetrieved),
		int64(s.ProcessedRows), s.LastDataDate.String(), s.LastUpdate.Millis())
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// hasRun reports whether a stream's listing shows it has ever run, which makes an empty
// first stats page suspicious.
func hasRun(s *datorama.Stream) bool {
	return !s.LastUpdate.IsZero() || s.LastRunStatus.Raw != nil || s.ProcessedRows > 0 ||
		s.LastRowsRetrieved > 0 || !s.LastDataDate.IsZero() || s.HasData
}

func encodeState(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		// The state types hold only strings, numbers, booleans and times.
		panic("extract: encoding checkpoint state: " + err.Error())
	}
	return b
}

// decodeState reads a checkpoint's state; a missing one is absent. An unreadable one is
// logged (to log, when not nil) and counts as absent too: the parent is then read as if
// never seen, which is always safe, but someone should know why it costs calls.
func decodeState[T any](log *slog.Logger, cp load.Checkpoint) (T, bool) {
	var v T
	if len(cp.State) == 0 {
		return v, false
	}
	if err := json.Unmarshal(cp.State, &v); err != nil {
		if log != nil {
			log.Warn("a checkpoint does not decode; its parent is read as if never crawled",
				"kind", cp.Kind, "parent", cp.ParentID, "err", err)
		}
		return v, false
	}
	return v, true
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
