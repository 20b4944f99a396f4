package extract

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
)

// Plan is what the next crawl with some Options would cost, worked out from the store's
// checkpoints without a single API call. Calls are certain; UpTo adds what the run
// pays if every stream listed last time changed since (the stream lists, read by the run
// itself, decide that).
type Plan struct {
	Full     bool
	Entities []EntityPlan
	Calls    int
	UpTo     int
	// Crawled is false when the store holds no crawl yet: then only the workspace list
	// is certain, and everything below it is unknown until it is read.
	Crawled bool
	// Quota is today's remaining daily quota, when the rate budget knows it.
	Quota      QuotaStatus
	QuotaKnown bool
}

// EntityPlan is one line of a Plan.
type EntityPlan struct {
	Entity string
	Calls  int
	UpTo   int
	Note   string
}

// Plan works out what Run would cost with opts, from the store alone (a nil Sink is an
// empty store). It makes no API call.
func (c *Crawler) Plan(ctx context.Context, opts Options) (Plan, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Full: o.Full}
	if c.Quota != nil {
		p.Quota, p.QuotaKnown = c.Quota()
	}
	read := func(kind string) (map[int64]load.Checkpoint, error) {
		if c.Sink == nil {
			return nil, nil // no store yet: nothing crawled
		}
		cps, err := c.Sink.Checkpoints(ctx, kind)
		if err != nil {
			return nil, fmt.Errorf("planning: reading %s checkpoints: %w", kind, err)
		}
		return cps, nil
	}
	acctCPs, err := read(kindAccount)
	if err != nil {
		return p, err
	}
	acct, _ := decodeState[accountState](o.Logger, acctCPs[0])
	listCPs, err := read(kindStreams)
	if err != nil {
		return p, err
	}
	jobsCPs, err := read(kindJobs)
	if err != nil {
		return p, err
	}
	states := decodeJobStates(o.Logger, jobsCPs)
	// What the jobs checkpoints learned counts as much as the account checkpoint.
	acct.foldJobs(states)
	if o.targeted() {
		return c.planTarget(ctx, o, p, acct, listCPs, states, read)
	}

	add := func(e EntityPlan) {
		if e.UpTo < e.Calls {
			e.UpTo = e.Calls
		}
		p.Entities = append(p.Entities, e)
		p.Calls += e.Calls
		p.UpTo += e.UpTo
	}
	lists := 1
	if c.Pool != nil && len(c.Pool.Fingerprints()) > 1 {
		lists = len(c.Pool.Fingerprints())
	}
	add(EntityPlan{Entity: load.Workspaces, Calls: lists, Note: plural(lists, "workspace list")})
	p.Crawled = len(listCPs) > 0
	if !p.Crawled {
		p.Entities[0].Note += "; nothing crawled yet: the rest is known once it is read"
		return p, nil
	}

	now := o.Clock.Now()
	streamCount, bulk := 0, 0
	for _, cp := range listCPs {
		st, _ := decodeState[listState](o.Logger, cp)
		n := max(st.Count, len(st.IDs))
		streamCount += n
		bulk += (n + datorama.BulkStatusChunk - 1) / datorama.BulkStatusChunk
	}
	if o.needsStreams() {
		add(EntityPlan{Entity: load.Streams, Calls: len(listCPs), Note: plural(len(listCPs), "workspace") + ", " + plural(streamCount, "stream")})
	}
	for _, e := range workspaceLists {
		if !o.wants(e) {
			continue
		}
		cps, err := read(e)
		if err != nil {
			return p, err
		}
		due := 0
		for ws := range listCPs {
			st, ok := decodeState[listState](o.Logger, cps[ws])
			if o.Full || !ok || now.Sub(st.At) >= o.WorkspaceListsEvery {
				due++
			}
		}
		add(EntityPlan{Entity: e, Calls: due, Note: fmt.Sprintf("%d of %d due", due, len(listCPs))})
	}
	if o.wants(load.Jobs) {
		add(planJobs(o, acct, states, streamCount, bulk, now))
	}
	if o.wants(load.Mappings) {
		mapCPs, err := read(kindMappings)
		if err != nil {
			return p, err
		}
		e := EntityPlan{Entity: load.Mappings, UpTo: streamCount, Note: "re-read when a stream's updateTime changed"}
		if o.Full {
			e.Calls, e.Note = streamCount, "every stream"
		} else if missing := streamCount - len(mapCPs); missing > 0 {
			e.Calls, e.Note = missing, plural(missing, "stream")+" never read"
		}
		add(e)
	}
	return p, nil
}

// planJobs estimates the stats calls of the next run. Every listing is assumed
// unchanged; a stream whose listing moved costs at least one page more, which is what
// UpTo adds.
func planJobs(o Options, acct accountState, states map[int64]*jobsState, streams, bulk int, now time.Time) EntityPlan {
	size := acct.pageSize(o.RequestPageSize)
	var full, resume, incr, pending, unchanged, certain, extra int
	for _, st := range states {
		pages := st.Count/size + 1
		listing := st.Listing // as if unchanged
		if st.Pending > 0 {
			listing = st.PendingListing
		}
		switch decideJobs(st, listing, acct.Order, now, o) {
		case readFull:
			full++
			certain += pages
		case readResume:
			resume++
			certain++
			extra += pages // how far the list goes on is unknown
		case readIncremental:
			incr++
			certain++
			extra += min(st.NonFinal, pages) // each job not final may sit on a page of its own
		case readPending:
			pending++
			certain++
		default:
			unchanged++
		}
	}
	newStreams := max(0, streams-len(states))
	certain += newStreams
	if !o.Full && !o.SkipBulkStatus {
		certain += bulk
	}
	extra += unchanged
	if acct.Cap == 0 {
		extra++ // a first page longer than any before needs the cap probe
	}
	return EntityPlan{Entity: load.Jobs, Calls: certain, UpTo: certain + extra,
		Note: fmt.Sprintf("%d full, %d resumed, %d with jobs not final, %d awaiting the cap probe, %d new, %d unchanged unless their listing moved",
			full, resume, incr, pending, newStreams, unchanged)}
}

// planTarget is Plan for a crawl of Options.Workspaces and Options.Streams: the
// targeted workspaces as a whole run would plan them, and for each targeted stream
// outside them its GET, its pages (as if its listing moved) and its mapping.
func (c *Crawler) planTarget(ctx context.Context, o Options, p Plan, acct accountState, listCPs map[int64]load.Checkpoint,
	states map[int64]*jobsState, read func(kind string) (map[int64]load.Checkpoint, error)) (Plan, error) {
	p.Crawled = true
	add := func(e EntityPlan) {
		if e.UpTo < e.Calls {
			e.UpTo = e.Calls
		}
		p.Entities = append(p.Entities, e)
		p.Calls += e.Calls
		p.UpTo += e.UpTo
	}
	if c.Pool != nil && len(c.Pool.Fingerprints()) > 1 {
		n := len(c.Pool.Fingerprints())
		add(EntityPlan{Entity: load.Workspaces, Calls: n, Note: "to learn which token sees what; nothing stored"})
	}
	now := o.Clock.Now()
	inWS := map[int64]bool{}
	streamCount, bulk, unknown := 0, 0, 0
	wsStates := map[int64]*jobsState{}
	for _, ws := range o.Workspaces {
		st, ok := decodeState[listState](o.Logger, listCPs[ws])
		if !ok {
			unknown++
		}
		n := max(st.Count, len(st.IDs))
		streamCount += n
		bulk += (n + datorama.BulkStatusChunk - 1) / datorama.BulkStatusChunk
		for _, id := range st.IDs {
			inWS[id] = true
			if s := states[id]; s != nil {
				wsStates[id] = s
			}
		}
	}
	var alone []int64
	for _, id := range o.Streams {
		if !inWS[id] {
			alone = append(alone, id)
		}
	}
	if o.needsStreams() {
		note := plural(len(o.Workspaces), "workspace") + ", " + plural(len(alone), "stream") + " on its own"
		if unknown > 0 {
			note += fmt.Sprintf("; %s never listed: what is under it is known once it is read", plural(unknown, "workspace"))
		}
		add(EntityPlan{Entity: load.Streams, Calls: len(o.Workspaces) + len(alone), Note: note})
	}
	for _, e := range workspaceLists {
		if !o.wants(e) || len(o.Workspaces) == 0 {
			continue
		}
		cps, err := read(e)
		if err != nil {
			return p, err
		}
		due := 0
		for _, ws := range o.Workspaces {
			st, ok := decodeState[listState](o.Logger, cps[ws])
			if o.Full || !ok || now.Sub(st.At) >= o.WorkspaceListsEvery {
				due++
			}
		}
		add(EntityPlan{Entity: e, Calls: due, Note: fmt.Sprintf("%d of %d due", due, len(o.Workspaces))})
	}
	if o.wants(load.Jobs) {
		e := planJobs(o, acct, wsStates, streamCount, bulk, now)
		e.Calls += len(alone) // every targeted stream costs at least a page
		e.UpTo += len(alone)
		for _, id := range alone {
			if s := states[id]; s != nil {
				e.UpTo += s.Count / acct.pageSize(o.RequestPageSize)
			}
		}
		e.Note += fmt.Sprintf("; %s read as if changed", plural(len(alone), "targeted stream"))
		add(e)
	}
	if o.wants(load.Mappings) {
		mapCPs, err := read(kindMappings)
		if err != nil {
			return p, err
		}
		e := EntityPlan{Entity: load.Mappings, Calls: len(alone), UpTo: streamCount + len(alone), Note: "every targeted stream; the workspaces' when a stream's updateTime changed"}
		for id := range inWS {
			if _, ok := mapCPs[id]; !ok || o.Full {
				e.Calls++
			}
		}
		add(e)
	}
	return p, nil
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// Write prints the plan as a table, then how it compares with the quota left today.
func (p Plan) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "entity\tcalls\tup to\t\n")
	for _, e := range p.Entities {
		fmt.Fprintf(tw, "%s\t%d\t%d\t  %s\n", e.Entity, e.Calls, e.UpTo, e.Note)
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t\n", p.Calls, p.UpTo)
	if err := tw.Flush(); err != nil {
		return err
	}
	var err error
	switch {
	case !p.QuotaKnown:
		_, err = fmt.Fprintln(w, "quota: unknown until the API answers")
	case p.UpTo <= p.Quota.Remaining:
		_, err = fmt.Fprintf(w, "quota: fits in today's remaining %d of %d (resets %s)\n", p.Quota.Remaining, p.Quota.Limit, p.Quota.Reset.UTC().Format(time.RFC3339))
	case p.Calls <= p.Quota.Remaining:
		_, err = fmt.Fprintf(w, "quota: the certain calls fit in today's remaining %d of %d, all %d may not (resets %s)\n",
			p.Quota.Remaining, p.Quota.Limit, p.UpTo, p.Quota.Reset.UTC().Format(time.RFC3339))
	default:
		_, err = fmt.Fprintf(w, "quota: needs more than today's remaining %d of %d; the run stops at the quota and resumes after %s\n",
			p.Quota.Remaining, p.Quota.Limit, p.Quota.Reset.UTC().Format(time.RFC3339))
	}
	return err
}
