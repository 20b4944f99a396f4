package extract

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/drextract/drextract/convert"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
)

// repeatRefetches is how often a page that repeats the previous one is fetched again
// before the stream's listing fails.
const repeatRefetches = 3

// errPending is returned by a reader whose first page needs the cap probe; the reader
// is parked until the end of the jobs stage.
var errPending = errors.New("first page waits for the cap probe")

// stepMode is one part of a stream's read.
type stepMode int

const (
	stepPages stepMode = iota // the listed pages, checked against the stored ids (oldest first)
	stepTail                  // from a page to the end of the list
	stepTop                   // newest first, from page 1 until nothing below can have changed
)

type step struct {
	mode  stepMode
	pages []int // stepPages
	from  int   // stepTail, stepTop
}

// jobsReader reads one stream's jobs. It is used by one goroutine at a time.
type jobsReader struct {
	r     *run
	w     *streamWork
	kind  readKind
	order string // the order the read relies on; "" for a full read
	size  int    // page size of pages 2.. (page 1 is always asked with the requested size)
	cp    jobsState
	steps []step

	storedAsc   []int64            // ids stored when the read began, ascending
	known       []int64            // oldest-first: storedAsc plus ids appended by this read
	status      map[int64]string   // every stored or read job's latest status
	minNonFinal int64              // smallest stored id not final when the read began; 0: none
	seen        map[int64]struct{} // ids read by this read
	fromStart   bool               // the read covers the list from page 1: a clean end infers deletions
	restarted   bool

	prev     []int64 // ids of the last page read, and its number
	prevPage int

	pendLen  int   // length of a parked first page
	pendLast int64 // id of its last job
	// earlier marks a first page parked by an earlier run: jobs may have joined the list
	// since, so the probe is always asked (see resolve).
	earlier bool
}

// readJobs reads one stream's jobs as decided and records the outcome.
func (r *run) readJobs(ctx context.Context, w *streamWork) {
	parent := "jobs of stream " + itoa(w.id)
	jr, err := r.newJobsReader(ctx, w)
	if err == nil {
		if jr.kind == readPending {
			jr.earlier = true
			err = errPending // parked by an earlier run: only the probe is missing
		} else {
			err = jr.run(ctx)
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, errPending):
		// On a fresh account every stream can wait for the probe: holding each one's maps
		// would keep the first pages of the whole account in memory. The store has them;
		// thaw rebuilds the maps when the reader goes on.
		jr.status, jr.seen = nil, nil
		r.pendMu.Lock()
		r.pending = append(r.pending, jr)
		r.pendMu.Unlock()
	default:
		r.failed(ctx, parent, err)
	}
}

func (r *run) newJobsReader(ctx context.Context, w *streamWork) (*jobsReader, error) {
	a := r.account()
	jr := &jobsReader{r: r, w: w, kind: w.kind, size: a.pageSize(r.o.RequestPageSize),
		status: map[int64]string{}, seen: map[int64]struct{}{}}
	if w.jobs != nil {
		jr.cp = *w.jobs
		idx, err := r.jobIndex(ctx, w.id)
		if err != nil {
			return nil, err
		}
		jr.storedAsc = make([]int64, len(idx))
		for i, k := range idx {
			jr.storedAsc[i] = k.ID
			jr.status[k.ID] = k.Status
			if !datorama.IsFinal(k.Status) && jr.minNonFinal == 0 {
				jr.minNonFinal = k.ID
			}
		}
	}
	order := a.Order
	if jr.cp.Order != "" {
		order = jr.cp.Order
	}
	if jr.kind == readResume && (order == "" || jr.cp.PageSize != jr.size) {
		// Without the order, or with another page size, the stored position means
		// nothing: read it all.
		jr.kind = readFull
	}
	switch jr.kind {
	case readFull:
		jr.steps, jr.fromStart = []step{{mode: stepTail, from: 1}}, true
	case readPending:
		jr.pendLen, jr.pendLast = jr.cp.Pending, jr.cp.PendingLast
		jr.steps = []step{{mode: stepTail, from: 2}}
		jr.order = order
		jr.known = slices.Clone(jr.storedAsc)
	case readResume:
		// The pages read before the stop are older than this run's listing: what can have
		// changed on them since is re-read as an incremental read would (newest first:
		// from the top down to final jobs; oldest first: the pages holding jobs not final),
		// so the end of this read may record this run's listing.
		jr.order = order
		if order == orderDesc {
			jr.steps = []step{{mode: stepTop, from: 1}, {mode: stepTail, from: jr.cp.Next}}
			break
		}
		jr.known = slices.Clone(jr.storedAsc)
		final := func(id int64) bool { return datorama.IsFinal(jr.status[id]) }
		if pages := nonFinalPages(jr.storedAsc, final, jr.size, jr.cp.Next); len(pages) > 0 {
			jr.steps = append(jr.steps, step{mode: stepPages, pages: pages})
		}
		jr.steps = append(jr.steps, step{mode: stepTail, from: jr.cp.Next})
	case readIncremental:
		jr.order = order
		if order == orderDesc {
			jr.steps, jr.fromStart = []step{{mode: stepTop, from: 1}}, true
			break
		}
		jr.known = slices.Clone(jr.storedAsc)
		start := ascStartPage(len(jr.storedAsc), jr.size)
		final := func(id int64) bool { return datorama.IsFinal(jr.status[id]) }
		if pages := nonFinalPages(jr.storedAsc, final, jr.size, start); len(pages) > 0 {
			jr.steps = append(jr.steps, step{mode: stepPages, pages: pages})
		}
		jr.steps = append(jr.steps, step{mode: stepTail, from: start})
		jr.fromStart = start == 1
	}
	return jr, nil
}

// run performs the remaining steps. It returns errPending when a first page needs the
// cap probe; resolve continues from there.
func (jr *jobsReader) run(ctx context.Context) error {
	for len(jr.steps) > 0 {
		var err error
		switch st := &jr.steps[0]; st.mode {
		case stepPages:
			err = jr.explicitPages(ctx, st)
		case stepTail:
			err = jr.tail(ctx, st)
		case stepTop:
			err = jr.top(ctx, st)
		}
		if errors.Is(err, errMisaligned) {
			if jr.restarted {
				return fmt.Errorf("stream %d: pages keep disagreeing with what was just read", jr.w.id)
			}
			jr.r.log.Info("stored jobs do not line up with the pages; reading the stream in full", "stream", jr.w.id, "read", jr.kind)
			jr.restartFull()
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// errMisaligned says a page disagrees with the stored ids (after one refetch).
var errMisaligned = errors.New("pages do not line up with the stored jobs")

// restartFull turns the read into a full one from page 1.
func (jr *jobsReader) restartFull() {
	jr.restarted = true
	jr.kind = readFull
	jr.order = ""
	jr.steps = []step{{mode: stepTail, from: 1}}
	jr.fromStart = true
	jr.seen = map[int64]struct{}{}
	jr.known = nil
	jr.prev, jr.prevPage = nil, 0
}

// sizeOf is the page size asked for page p.
func (jr *jobsReader) sizeOf(p int) int {
	if p == 1 {
		return jr.r.o.RequestPageSize
	}
	return jr.size
}

// explicitPages re-reads the listed pages (oldest first), which hold stored jobs not
// final yet.
func (jr *jobsReader) explicitPages(ctx context.Context, st *step) error {
	for len(st.pages) > 0 {
		p := st.pages[0]
		jobs, err := jr.fetchChecked(ctx, p, func(ids []int64) bool {
			// A page before the start page is full of stored jobs.
			return len(ids) == jr.size && alignedAsc(jr.known, (p-1)*jr.size, ids)
		})
		if err != nil {
			return err
		}
		if err := jr.commit(jobs, commitPage, p); err != nil {
			return err
		}
		st.pages = st.pages[1:]
	}
	jr.steps = jr.steps[1:]
	return nil
}

// tail reads from st.from to the end of the list.
func (jr *jobsReader) tail(ctx context.Context, st *step) error {
	for p := st.from; ; p++ {
		st.from = p
		jobs, err := jr.fetchChecked(ctx, p, func(ids []int64) bool {
			if jr.order != orderAsc {
				return true
			}
			return alignedAsc(jr.known, (p-1)*jr.size, ids)
		})
		if err != nil {
			return err
		}
		if err := jr.noteOrder(idsOf(jobs), p); err != nil {
			return err
		}
		switch jr.judge(len(jobs), p) {
		case pageAmbiguous:
			st.from = 2
			return jr.park(jobs)
		case pageEnds:
			jr.steps = jr.steps[1:]
			return jr.commit(jobs, jr.endKind(), p)
		}
		if err := jr.commit(jobs, commitTail, p); err != nil {
			return err
		}
	}
}

// top reads newest first from page 1 until nothing below can have changed.
func (jr *jobsReader) top(ctx context.Context, st *step) error {
	for p := st.from; ; p++ {
		st.from = p
		var stop bool
		jobs, err := jr.fetchChecked(ctx, p, func(ids []int64) bool {
			if o := orderOf(ids); o != "" && o != orderDesc {
				return false
			}
			seen := maps.Clone(jr.seen)
			for _, id := range ids {
				seen[id] = struct{}{}
			}
			if len(ids) == 0 {
				stop = true // an empty page (believed) ends the list
				return true
			}
			var mis bool
			stop, mis = descCheck(jr.storedAsc, seen, ids[len(ids)-1], jr.minNonFinal)
			return !mis
		})
		if err != nil {
			return err
		}
		if err := jr.noteOrder(idsOf(jobs), p); err != nil {
			return err
		}
		switch v := jr.judge(len(jobs), p); {
		case v == pageAmbiguous:
			st.from = 2
			return jr.park(jobs)
		case v == pageEnds:
			// The whole list was read from page 1: nothing else to do.
			jr.steps = nil
			return jr.commit(jobs, commitEnd, p)
		case stop:
			jr.steps = jr.steps[1:]
			kind := commitPage
			if len(jr.steps) == 0 {
				kind = commitStop
			}
			return jr.commit(jobs, kind, p)
		}
		if err := jr.commit(jobs, commitPage, p); err != nil {
			return err
		}
	}
}

// judge folds a page into what is known of the API and says what it means.
func (jr *jobsReader) judge(n, p int) pageVerdict {
	a := jr.r.updateAccount(func(a *accountState) { a.observe(n, jr.sizeOf(p)) })
	if n > jr.cp.MaxPage {
		jr.cp.MaxPage = n
	}
	if p == 1 {
		// Page 1 is asked with the requested size and shows whether the cap still holds;
		// it decides the size of page 2.
		jr.size = a.pageSize(jr.r.o.RequestPageSize)
	}
	return a.verdict(n, jr.sizeOf(p), p == 1)
}

// endKind is how the page that ends a tail is committed.
func (jr *jobsReader) endKind() commitKind {
	if len(jr.steps) == 0 {
		return commitEnd
	}
	return commitPage
}

// noteOrder learns the stats order from a page and checks it against the order the read
// relies on.
func (jr *jobsReader) noteOrder(ids []int64, p int) error {
	o := orderOf(ids)
	if o == "" && len(ids) > 0 && jr.prevPage == p-1 && len(jr.prev) > 0 && !slices.Contains(jr.prev, ids[0]) {
		// One job on this page: compare it with the previous page's last.
		o = orderOf([]int64{jr.prev[len(jr.prev)-1], ids[0]})
	}
	switch o {
	case "":
		return nil
	case "mixed":
		if jr.order != "" {
			return errMisaligned
		}
		return nil
	}
	jr.cp.Order = o
	jr.r.updateAccount(func(a *accountState) {
		if a.Order != o {
			if a.Order != "" {
				jr.r.log.Warn("the stats order changed", "was", a.Order, "now", o, "stream", jr.w.id)
			}
			a.Order = o
		}
	})
	if jr.order != "" && jr.order != o {
		return errMisaligned
	}
	return nil
}

// fetchChecked fetches page p with the content defences: a suspicious empty page and a
// page repeating the previous one are fetched again; a page failing check is fetched
// once more and then reported as errMisaligned.
func (jr *jobsReader) fetchChecked(ctx context.Context, p int, check func(ids []int64) bool) ([]datorama.Job, error) {
	for try := 0; ; try++ {
		jobs, err := jr.fetch(ctx, p, jr.sizeOf(p))
		if err != nil {
			return nil, err
		}
		if check(idsOf(jobs)) {
			return jobs, nil
		}
		if try >= 1 {
			return nil, errMisaligned
		}
	}
}

// fetch asks for one page, believing an empty page only after EmptyPageChecks refetches
// when it is suspicious, and refetching a page that repeats the previous one.
func (jr *jobsReader) fetch(ctx context.Context, p, size int) ([]datorama.Job, error) {
	empties, repeats := 0, 0
	for {
		if err := jr.r.beforeCall(ctx); err != nil {
			return nil, err
		}
		jobs, err := jr.r.c.Client.Jobs.Page(ctx, jr.w.id, size, p)
		if err != nil {
			return nil, err
		}
		ids := idsOf(jobs)
		switch {
		case len(jobs) == 0 && empties < jr.r.o.EmptyPageChecks && (p > 1 || jr.w.ran || len(jr.storedAsc) > 0):
			empties++
			jr.r.log.Debug("empty stats page; confirming", "stream", jr.w.id, "page", p)
			continue
		case p > 1 && jr.prevPage == p-1 && repeatsPage(ids, jr.prev):
			repeats++
			if repeats > repeatRefetches {
				return nil, fmt.Errorf("stream %d: page %d repeated page %d %d times: %w", jr.w.id, p, p-1, repeats, datorama.ErrInconsistentPages)
			}
			jr.r.log.Warn("stats page repeats the previous page; fetching it again", "stream", jr.w.id, "page", p)
			continue
		}
		return jobs, nil
	}
}

// commitKind says what a committed page means for the checkpoint.
type commitKind int

const (
	commitPage    commitKind = iota // a page outside the tail: the resume point stays
	commitTail                      // a tail page with more to come: resume after it
	commitEnd                       // the read reached the end of the list
	commitStop                      // a newest-first read reached stored, final jobs
	commitPending                   // a first page parked for the probe
)

// commit writes a page's jobs with the stream's checkpoint in one batch.
func (jr *jobsReader) commit(jobs []datorama.Job, kind commitKind, p int) error {
	r := jr.r
	now := r.o.Clock.Now()
	b := load.Batch{Entity: load.Jobs, ParentID: jr.w.id, ObservedAt: now, Jobs: make([]load.JobRow, len(jobs))}
	for i := range jobs {
		j := &jobs[i]
		b.Jobs[i] = convert.Job(jr.w.ws, jr.w.id, j)
		jr.status[j.ID] = j.Status
		jr.seen[j.ID] = struct{}{}
		if jr.known != nil || jr.order == orderAsc {
			if n := len(jr.known); n == 0 || j.ID > jr.known[n-1] {
				jr.known = append(jr.known, j.ID)
			}
		}
	}
	jr.prev, jr.prevPage = idsOf(jobs), p

	cp := &jr.cp
	cp.PendingListing = ""
	switch kind {
	case commitTail:
		cp.Done, cp.Next, cp.PageSize, cp.Pending, cp.PendingLast = false, p+1, jr.size, 0, 0
		cp.FullRead = cp.FullRead || jr.kind == readFull
	case commitPage:
		cp.Done, cp.Pending, cp.PendingLast = false, 0, 0
		cp.FullRead = cp.FullRead || jr.kind == readFull
	case commitPending:
		cp.Done, cp.Next, cp.PageSize = false, 0, 0
		cp.Pending, cp.PendingLast, cp.PendingListing = jr.pendLen, jr.pendLast, jr.w.listing
		cp.FullRead = cp.FullRead || jr.kind == readFull
	case commitEnd, commitStop:
		if kind == commitEnd && jr.fromStart {
			b.Complete = true
			b.AllIDs = slices.Sorted(maps.Keys(jr.seen))
			for id := range jr.status {
				if _, ok := jr.seen[id]; !ok {
					delete(jr.status, id)
				}
			}
		}
		if jr.kind == readFull || cp.FullRead {
			cp.SweptAt = now
		}
		cp.Listing, cp.Done, cp.Next, cp.PageSize, cp.Pending, cp.PendingLast, cp.FullRead = jr.w.listing, true, 0, 0, 0, 0, false
	}
	cp.Count, cp.NonFinal, cp.Latest = len(jr.status), 0, ""
	var latest int64
	for id, s := range jr.status {
		if !datorama.IsFinal(s) {
			cp.NonFinal++
		}
		if id > latest {
			latest, cp.Latest = id, s
		}
	}
	b.Checkpoint = &load.Checkpoint{Kind: kindJobs, ParentID: jr.w.id, State: encodeState(cp), UpdatedAt: now}
	return r.write(b)
}

// park stores an ambiguous first page and parks the reader for the probe.
func (jr *jobsReader) park(jobs []datorama.Job) error {
	jr.pendLen = len(jobs)
	if len(jobs) > 0 {
		jr.pendLast = jobs[len(jobs)-1].ID
	}
	if err := jr.commit(jobs, commitPending, 1); err != nil {
		return err
	}
	return errPending
}

// thaw rebuilds the maps a parked reader dropped: the status of every stored job of the
// stream (a first page parked by this run included, as it was committed) and the ids
// read by this read, which are that page's (none for a page parked by an earlier run).
func (jr *jobsReader) thaw(ctx context.Context) error {
	idx, err := jr.r.jobIndex(ctx, jr.w.id)
	if err != nil {
		return err
	}
	jr.status = make(map[int64]string, len(idx))
	for _, k := range idx {
		jr.status[k.ID] = k.Status
	}
	jr.seen = make(map[int64]struct{}, len(jr.prev))
	for _, id := range jr.prev {
		jr.seen[id] = struct{}{}
	}
	return nil
}

// resolvePending decides the parked first pages, longest first: the probe of the
// longest tells the most, and every shorter page is then settled without a call.
func (r *run) resolvePending(ctx context.Context) {
	r.pendMu.Lock()
	pend := r.pending
	r.pending = nil
	r.pendMu.Unlock()
	if len(pend) == 0 {
		return
	}
	slices.SortFunc(pend, func(a, b *jobsReader) int {
		return cmp.Or(cmp.Compare(b.pendLen, a.pendLen), cmp.Compare(a.w.id, b.w.id))
	})
	r.prog.stage("page-size probes", len(pend))
	for i, jr := range pend {
		if r.done(ctx) {
			return
		}
		pend[i] = nil // a settled reader's maps can go
		err := jr.resolve(datorama.WithWorkspace(ctx, jr.w.ws))
		r.prog.step(1)
		if err != nil {
			r.failed(ctx, "jobs of stream "+itoa(jr.w.id), err)
		}
	}
}

// resolve settles a parked first page, probing when what is known does not settle it,
// and continues the read when the page was capped.
func (jr *jobsReader) resolve(ctx context.Context) error {
	r := jr.r
	if err := jr.thaw(ctx); err != nil {
		return err
	}
	a := r.account()
	n := jr.pendLen
	capped := false
	switch {
	case a.Cap > 0 && n >= a.Cap:
		capped = true // the rest is read from page 2, whatever joined since included
	case jr.earlier && (a.Cap > 0 || n < a.Floor):
		// The page was complete when an earlier run read it; the probe tells whether
		// jobs joined since. If they did, page 1 is read again.
		grew, err := jr.probe(ctx)
		if err != nil {
			return err
		}
		if grew {
			r.log.Info("jobs joined the list since its first page was parked; reading it again", "stream", jr.w.id)
			jr.restartFull()
			jr.pendLen, jr.pendLast = 0, 0
			err := jr.run(ctx)
			if errors.Is(err, errPending) {
				return fmt.Errorf("stream %d: first page ambiguous again with a cap known", jr.w.id)
			}
			return err
		}
	case a.Cap > 0, n < a.Floor:
	default:
		var err error
		capped, err = jr.probe(ctx)
		if err != nil {
			return err
		}
		if capped {
			r.updateAccount(func(a *accountState) { a.Cap = n })
			r.saveAccount(ctx)
			r.log.Info("learned the stats page-size cap", "cap", n, "stream", jr.w.id)
		}
	}
	if !capped {
		jr.steps = nil
		return jr.commit(nil, commitEnd, 1)
	}
	jr.cp.Cap = r.account().Cap
	jr.size = r.account().pageSize(r.o.RequestPageSize)
	jr.pendLen, jr.pendLast = 0, 0
	err := jr.run(ctx)
	if errors.Is(err, errPending) {
		return fmt.Errorf("stream %d: first page still ambiguous after the probe", jr.w.id)
	}
	return err
}

// probe tells whether the parked first page was capped (see probeFor).
func (jr *jobsReader) probe(ctx context.Context) (capped bool, err error) {
	size, number := probeFor(jr.pendLen)
	for try := 0; try < 2; try++ {
		if err := jr.r.beforeCall(ctx); err != nil {
			return false, err
		}
		jr.r.addProbe()
		jobs, err := jr.r.c.Client.Jobs.Page(ctx, jr.w.id, size, number)
		if err != nil {
			return false, err
		}
		if capped, ok := probeVerdict(jr.pendLen, jr.pendLast, idsOf(jobs)); ok {
			return capped, nil
		}
		jr.r.log.Warn("page-size probe disagrees with page 1; asking again", "stream", jr.w.id)
	}
	return false, fmt.Errorf("stream %d: the page-size probe disagrees with page 1: %w", jr.w.id, datorama.ErrInconsistentPages)
}

func idsOf(jobs []datorama.Job) []int64 {
	ids := make([]int64, len(jobs))
	for i := range jobs {
		ids[i] = jobs[i].ID
	}
	return ids
}
