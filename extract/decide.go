package extract

import (
	"slices"
	"sort"
	"time"

	"github.com/drextract/drextract/datorama"
)

// The decisions of the jobs crawl, as pure functions of stored state and page contents.

// streamWork is one listed stream and what the crawl will do with it.
type streamWork struct {
	id, ws     int64
	listing    string // listingFingerprint of the stream as listed now
	ran        bool   // the listing shows it ran: an empty first page is suspicious
	updateTime int64  // epoch ms, decides the mapping
	jobs       *jobsState
	mapping    *mappingState
	target     bool // named by Options.Streams: read as if its listing had moved

	kind        readKind
	needMapping bool
}

// readKind is how a stream's jobs are read.
type readKind int

const (
	readSkip        readKind = iota
	readFull                 // from page 1 to the end; a clean end infers deletions
	readIncremental          // only what can have changed (see the package doc)
	readResume               // continue an interrupted read at jobsState.Next
	readPending              // the first page was read; only the cap probe is missing
)

func (k readKind) String() string {
	return [...]string{"skip", "full", "incremental", "resume", "pending"}[k]
}

// decideJobs says how to read a stream's jobs, given its checkpoint (nil: never read),
// its listing fingerprint now and the known stats order ("" when unknown). A stream it
// skips, and a first page parked by an earlier run, still wait for the bulk status
// (bulkAgrees) before they count as unchanged.
func decideJobs(cp *jobsState, listing, order string, now time.Time, o Options) readKind {
	switch {
	case cp == nil || o.Full:
		return readFull
	case !cp.Done && cp.Pending > 0:
		// The parked first page was read by an earlier run. It still stands only when
		// its jobs cannot have changed since: the listing is the one it was read under
		// and every job on it was final. Oldest first, jobs that joined since come after
		// it, and the probe (always asked for such a page) sees them; newest first, they
		// would come before it, so the bulk status must confirm no run started since
		// (pendingNeedsBulk). Otherwise page 1 is read again.
		if cp.PendingListing == listing && cp.NonFinal == 0 && (!pendingNeedsBulk(cp, order) || !o.SkipBulkStatus) {
			return readPending
		}
		return readFull
	case !cp.Done && cp.Next > 0:
		return readResume
	case o.SweepEvery > 0 && (cp.SweptAt.IsZero() || now.Sub(cp.SweptAt) >= o.SweepEvery):
		return readFull
	case cp.Done && cp.Listing == listing && quiet(cp, o):
		return readSkip
	case cp.Count == 0 || order == "":
		// Nothing to align against, or no order to align with: read it all.
		return readFull
	}
	return readIncremental
}

// pendingNeedsBulk reports whether a first page parked by an earlier run is kept only
// once the bulk status shows no run started since: unless the list is known to run
// oldest first, a job that joined since would sit before it.
func pendingNeedsBulk(cp *jobsState, order string) bool {
	if cp.Order != "" {
		order = cp.Order
	}
	return order != orderAsc
}

// quiet reports whether a stream whose listing did not move since its last read can be
// left unread once the bulk status agrees (bulkAgrees): every stored job is final, or
// the only one that is not is the stream's latest job, running. A run in flight does not
// move the listing, but its end does; and jobs of one stream run one at a time, oldest
// first (the API's lifecycle [I]: later jobs wait in PENDING), so while the listing
// stands still the running job is still running and any newer job would be PENDING.
// Stored PENDING jobs are always read: a job queued behind them, or the head of their
// queue starting, shows neither in the listing nor in the bulk status.
func quiet(cp *jobsState, o Options) bool {
	switch {
	case cp.NonFinal == 0:
		return true
	case o.SkipBulkStatus:
		return false
	}
	return cp.NonFinal == 1 && cp.Latest == datorama.StatusInProgress
}

// bulkAgrees reports whether the latest run status the bulk status endpoint gives for a
// stream ("" when it has none) agrees with its checkpoint, for a stream decideJobs
// skipped or whose parked first page it kept: with every stored job final, the latest
// run must be final too (a newer job would not be); otherwise the latest run must be the
// stored running job, still running (see quiet).
func bulkAgrees(cp *jobsState, runStatus string) bool {
	if cp.NonFinal == 0 {
		return runStatus == "" || datorama.IsFinal(runStatus)
	}
	return runStatus == cp.Latest && cp.Latest == datorama.StatusInProgress
}

// pageOf is the 1-based page holding 0-based position i with pages of size.
func pageOf(i, size int) int { return i/size + 1 }

// ascStartPage is where an oldest-first incremental read starts: the page holding the
// last stored job, so the stored ids on it prove the list did not shift. With nothing
// stored it is page 1.
func ascStartPage(stored, size int) int {
	if stored == 0 {
		return 1
	}
	return pageOf(stored-1, size)
}

// nonFinalPages are the pages before start that hold stored jobs not final yet, for an
// oldest-first read; ids are the stored ids ascending, final tells a stored id's status.
func nonFinalPages(ids []int64, final func(int64) bool, size, start int) []int {
	var pages []int
	for i, id := range ids {
		p := pageOf(i, size)
		if p >= start {
			break
		}
		if !final(id) && (len(pages) == 0 || pages[len(pages)-1] != p) {
			pages = append(pages, p)
		}
	}
	return pages
}

// orderOf tells the order of ids: "asc" or "desc" when strictly monotonic with at least
// two ids, "" when it cannot tell (fewer than two), and "mixed" otherwise.
func orderOf(ids []int64) string {
	if len(ids) < 2 {
		return ""
	}
	asc, desc := true, true
	for i := 1; i < len(ids); i++ {
		asc = asc && ids[i] > ids[i-1]
		desc = desc && ids[i] < ids[i-1]
	}
	switch {
	case asc:
		return orderAsc
	case desc:
		return orderDesc
	}
	return "mixed"
}

// alignedAsc checks an oldest-first page against the known ids (stored ids ascending,
// plus those appended by this read): the page starting at position start must repeat
// the known ids where it overlaps them, continue with larger ids after them, and not be
// empty where known jobs should be.
func alignedAsc(known []int64, start int, ids []int64) bool {
	switch {
	case start > len(known) && len(ids) > 0:
		return false // a gap: positions nobody stored
	case len(ids) == 0 && start < len(known):
		return false // stored jobs should be here
	}
	var last int64
	if start > 0 && start <= len(known) {
		last = known[start-1]
	}
	for j, id := range ids {
		i := start + j
		if i < len(known) {
			if known[i] != id {
				return false
			}
		} else if id <= last {
			return false
		}
		last = id
	}
	return true
}

// descCheck judges a newest-first page read from the top: storedAsc are the ids stored
// when the read began (ascending), seen holds every id read so far in this read
// (including this page), minPage is the smallest id on the page and minNonFinal the
// smallest stored id not final (0: none).
//
// misaligned: a stored id at or above minPage was not seen, so jobs vanished or moved.
// stop: the read reached stored jobs, everything stored at or above minPage was seen
// again, and every stored job below it is final: nothing below can have changed.
func descCheck(storedAsc []int64, seen map[int64]struct{}, minPage, minNonFinal int64) (stop, misaligned bool) {
	if len(storedAsc) == 0 {
		return false, false
	}
	k := sort.Search(len(storedAsc), func(i int) bool { return storedAsc[i] >= minPage })
	for _, id := range storedAsc[k:] {
		if _, ok := seen[id]; !ok {
			return false, true
		}
	}
	reached := minPage <= storedAsc[len(storedAsc)-1]
	return reached && (minNonFinal == 0 || minNonFinal >= minPage), false
}

// repeatsPage reports whether every id of page was on the previous page.
func repeatsPage(page, prev []int64) bool {
	if len(page) == 0 || len(prev) == 0 {
		return false
	}
	for _, id := range page {
		if !slices.Contains(prev, id) {
			return false
		}
	}
	return true
}

// probeFor is the cap probe of a first page of n jobs: page 2 of size n-1 holds, when the
// list had exactly n jobs, only the last job of page 1; when the API capped page 1 at n,
// it holds at least two. Below 3 jobs that trick does not work and page 2 of size n is
// asked instead (empty: exactly n).
func probeFor(n int) (size, number int) {
	if n >= 3 {
		return n - 1, 2
	}
	return n, 2
}

// probeVerdict reads a probe's answer for a first page of n jobs whose last id is last.
// capped: the API capped page 1 at n. ok false: the answer is inconsistent with page 1
// (empty where a job must be, or not starting with page 1's last job).
func probeVerdict(n int, last int64, ids []int64) (capped, ok bool) {
	if n < 3 {
		return len(ids) > 0, true
	}
	if len(ids) == 0 || ids[0] != last {
		return false, false
	}
	return len(ids) >= 2, true
}
