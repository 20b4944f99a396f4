package extract

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/drextract/drextract/convert"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
)

// workspaces lists the workspaces and stores them. When the list cannot be read, the
// crawl goes on with the workspaces stored before (and the list stays incomplete); ok is
// false only when there is nothing to go on with.
func (r *run) workspaces(ctx context.Context) (ids []int64, ok bool) {
	r.prog.stage(load.Workspaces, 1)
	defer r.prog.step(1)
	wss, complete, err := r.listWorkspaces(ctx)
	if r.done(ctx) {
		return nil, false
	}
	if err != nil {
		r.failed(ctx, "workspaces", err)
		if r.done(ctx) {
			return nil, false
		}
		ids, serr := r.storedWorkspaces(ctx)
		if serr != nil {
			r.halt(serr)
			return nil, false
		}
		if len(ids) == 0 {
			r.halt(fmt.Errorf("no workspace list and none stored: %w", err))
			return nil, false
		}
		r.log.Warn("going on with the workspaces stored before", "workspaces", len(ids))
		return ids, true
	}
	b := load.Batch{Entity: load.Workspaces, ParentID: 0, Complete: complete}
	for i := range wss {
		b.Workspaces = append(b.Workspaces, convert.Workspace(&wss[i]))
		ids = append(ids, wss[i].ID)
		if complete {
			b.AllIDs = append(b.AllIDs, wss[i].ID)
		}
	}
	b.Checkpoint = &load.Checkpoint{Kind: kindWorkspaces, ParentID: 0,
		State: encodeState(listState{At: r.o.Clock.Now(), Count: len(wss)}), UpdatedAt: r.o.Clock.Now()}
	if err := r.write(b); err != nil {
		r.halt(err)
		return nil, false
	}
	r.wsComplete = complete
	slices.Sort(ids)
	return ids, true
}

// listWorkspaces reads the workspace list: once, or with a pool of several tokens once
// per token, merged (complete only when every token's list was read).
func (r *run) listWorkspaces(ctx context.Context) (wss []datorama.Workspace, complete bool, err error) {
	fps := []string(nil)
	if r.c.Pool != nil {
		fps = r.c.Pool.Fingerprints()
	}
	if len(fps) <= 1 {
		if err := r.beforeCall(ctx); err != nil {
			return nil, false, err
		}
		wss, err := r.c.Client.Workspaces.List(ctx)
		return wss, err == nil, err
	}
	seen := map[int64]bool{}
	var firstErr error
	for _, fp := range fps {
		if err := r.beforeCall(ctx); err != nil {
			return nil, false, err
		}
		list, err := r.c.Client.Workspaces.List(ratelimit.WithToken(ctx, fp))
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("token %s: %w", fp, err)
			}
			continue
		}
		ids := make([]int64, len(list))
		for i := range list {
			ids[i] = list[i].ID
			if !seen[list[i].ID] {
				seen[list[i].ID] = true
				wss = append(wss, list[i])
			}
		}
		if err := r.c.Pool.SetVisibility(fp, ids); err != nil {
			return nil, false, err
		}
	}
	if len(seen) == 0 && firstErr != nil {
		return nil, false, firstErr
	}
	if firstErr != nil {
		// A token whose list failed may see workspaces the others do not: keep what was
		// read, infer no deletions.
		r.failed(ctx, "workspaces", firstErr)
	}
	slices.SortFunc(wss, func(a, b datorama.Workspace) int { return cmp.Compare(a.ID, b.ID) })
	return wss, firstErr == nil, nil
}

// storedWorkspaces are the workspaces an earlier run listed streams of.
func (r *run) storedWorkspaces(ctx context.Context) ([]int64, error) {
	cps, err := r.checkpoints(ctx, kindStreams)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, 0, len(cps))
	for id := range cps {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// streams lists the streams of every workspace, stores them and returns the work the
// jobs and mappings stages may do, in stream id order.
func (r *run) streams(ctx context.Context, wss []int64) []*streamWork {
	jobsCPs, err := r.checkpoints(ctx, kindJobs)
	if err != nil {
		r.halt(err)
		return nil
	}
	mapCPs, err := r.checkpoints(ctx, kindMappings)
	if err != nil {
		r.halt(err)
		return nil
	}
	jobStates := decodeJobStates(r.log, jobsCPs)
	r.foldJobsCheckpoints(jobStates)
	listCPs, err := r.checkpoints(ctx, kindStreams)
	if err != nil {
		r.halt(err)
		return nil
	}

	r.prog.stage(load.Streams, len(wss))
	perWS := make([][]*streamWork, len(wss))
	var (
		goneMu sync.Mutex
		gone   []int64 // streams that left a complete listing of their workspace
		goneIn []int64 // workspaces whose checkpoint holds streams to retire
	)
	r.parallel(ctx, len(wss), func(ctx context.Context, i int) {
		defer r.prog.step(1)
		ws := wss[i]
		if err := r.beforeCall(ctx); err != nil {
			r.failed(ctx, "streams of workspace "+itoa(ws), err)
			return
		}
		list, err := r.c.Client.Streams.List(ctx, ws)
		if err != nil {
			r.failed(ctx, "streams of workspace "+itoa(ws), err)
			return
		}
		now := r.o.Clock.Now()
		b := load.Batch{Entity: load.Streams, ParentID: ws, Complete: true, ObservedAt: now}
		work := make([]*streamWork, 0, len(list))
		for j := range list {
			s := &list[j]
			row := convert.Stream(ws, s)
			b.Streams = append(b.Streams, row)
			b.AllIDs = append(b.AllIDs, s.ID)
			work = append(work, newStreamWork(r.log, s, row.WorkspaceID, jobStates, mapCPs))
		}
		st := listState{At: now, Count: len(list), IDs: slices.Sorted(slices.Values(b.AllIDs))}
		if before, ok := decodeState[listState](r.log, listCPs[ws]); ok {
			st.Gone = without(append(before.IDs, before.Gone...), st.IDs)
		}
		b.Checkpoint = &load.Checkpoint{Kind: kindStreams, ParentID: ws, UpdatedAt: now, State: encodeState(st)}
		if err := r.write(b); err != nil {
			r.halt(err)
			return
		}
		if len(st.Gone) > 0 {
			goneMu.Lock()
			gone = append(gone, st.Gone...)
			goneIn = append(goneIn, ws)
			goneMu.Unlock()
		}
		perWS[i] = work
	})
	var all []*streamWork
	for _, w := range perWS {
		all = append(all, w...)
	}
	slices.SortFunc(all, func(a, b *streamWork) int { return cmp.Compare(a.id, b.id) })
	if !r.done(ctx) {
		// A stream listed under another workspace now has moved, not gone.
		listed := make([]int64, len(all))
		for i, w := range all {
			listed[i] = w.id
		}
		more, in := r.goneWorkspaces(ctx, wss, listCPs)
		gone, goneIn = append(gone, more...), append(goneIn, in...)
		if r.retireStreams(without(gone, listed)) {
			r.retired(goneIn)
		}
	}
	return all
}

// retired clears the streams to retire from the stream list checkpoints of wss, once
// they are retired.
func (r *run) retired(wss []int64) {
	cps, err := r.checkpoints(r.parent, kindStreams)
	if err != nil {
		r.halt(err)
		return
	}
	for _, ws := range wss {
		st, ok := decodeState[listState](r.log, cps[ws])
		if !ok || len(st.Gone) == 0 {
			continue
		}
		st.Gone = nil
		if err := r.write(load.Batch{Entity: load.Streams, ParentID: ws,
			Checkpoint: &load.Checkpoint{Kind: kindStreams, ParentID: ws, State: encodeState(st), UpdatedAt: r.o.Clock.Now()}}); err != nil {
			r.halt(err)
			return
		}
	}
}

// newStreamWork is what the crawl knows of a listed stream: its listing and its
// checkpoints.
func newStreamWork(log *slog.Logger, s *datorama.Stream, ws int64, jobStates map[int64]*jobsState, mapCPs map[int64]load.Checkpoint) *streamWork {
	w := &streamWork{id: s.ID, ws: ws, listing: listingFingerprint(s), ran: hasRun(s),
		updateTime: s.UpdateTime.Millis(), jobs: jobStates[s.ID]}
	if cp, ok := mapCPs[s.ID]; ok {
		if ms, ok := decodeState[mappingState](log, cp); ok {
			w.mapping = &ms
		}
	}
	return w
}

// learnVisibility lets a pool of several tokens learn which token sees which workspace
// before a targeted crawl, which does not read (or store) the workspace list otherwise.
func (r *run) learnVisibility(ctx context.Context) bool {
	if r.c.Pool == nil || len(r.c.Pool.Fingerprints()) <= 1 {
		return true
	}
	if _, _, err := r.listWorkspaces(ctx); err != nil {
		r.failed(ctx, "workspaces", err)
		return !r.done(ctx)
	}
	return true
}

// targetStreams reads the streams of Options.Streams that no targeted workspace listed,
// one GET each, stores their rows (and nothing else of their workspaces) and adds them to
// the work, in stream id order.
func (r *run) targetStreams(ctx context.Context, listed []*streamWork) []*streamWork {
	have := make(map[int64]*streamWork, len(listed))
	for _, w := range listed {
		have[w.id] = w
	}
	var ids []int64
	for _, id := range r.o.Streams {
		if w := have[id]; w != nil {
			w.target = true
		} else {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return listed
	}
	jobsCPs, err := r.checkpoints(ctx, kindJobs)
	if err != nil {
		r.halt(err)
		return listed
	}
	mapCPs, err := r.checkpoints(ctx, kindMappings)
	if err != nil {
		r.halt(err)
		return listed
	}
	jobStates := decodeJobStates(r.log, jobsCPs)
	r.foldJobsCheckpoints(jobStates)
	r.prog.stage(load.Streams, len(ids))
	work := make([]*streamWork, len(ids))
	r.parallel(ctx, len(ids), func(ctx context.Context, i int) {
		defer r.prog.step(1)
		id := ids[i]
		parent := "stream " + itoa(id)
		if err := r.beforeCall(ctx); err != nil {
			r.failed(ctx, parent, err)
			return
		}
		s, err := r.c.Client.Streams.Get(ctx, id)
		if err == nil && s.ID != id {
			err = fmt.Errorf("stream %d: the API answered stream %d", id, s.ID)
		}
		if err != nil {
			r.failed(ctx, parent, err)
			return
		}
		row := convert.Stream(0, s)
		if row.WorkspaceID == 0 {
			r.failed(ctx, parent, fmt.Errorf("stream %d: the API's answer names no workspace", id))
			return
		}
		now := r.o.Clock.Now()
		if err := r.write(load.Batch{Entity: load.Streams, ParentID: row.WorkspaceID, ObservedAt: now, Streams: []load.StreamRow{row}}); err != nil {
			r.halt(err)
			return
		}
		w := newStreamWork(r.log, s, row.WorkspaceID, jobStates, mapCPs)
		w.target = true
		work[i] = w
	})
	for _, w := range work {
		if w != nil {
			listed = append(listed, w)
		}
	}
	slices.SortFunc(listed, func(a, b *streamWork) int { return cmp.Compare(a.id, b.id) })
	return listed
}

// workspaceLists reads the workspace-level lists that are due.
func (r *run) workspaceLists(ctx context.Context, wss []int64) {
	type item struct {
		ws     int64
		entity string
	}
	var items []item
	for _, e := range workspaceLists {
		if !r.o.wants(e) {
			continue
		}
		cps, err := r.checkpoints(ctx, e)
		if err != nil {
			r.halt(err)
			return
		}
		now := r.o.Clock.Now()
		for _, ws := range wss {
			if !r.o.Full {
				if st, ok := decodeState[listState](r.log, cps[ws]); ok && now.Sub(st.At) < r.o.WorkspaceListsEvery {
					continue
				}
			}
			items = append(items, item{ws, e})
		}
	}
	if len(items) == 0 {
		return
	}
	r.prog.stage("workspace lists", len(items))
	r.parallel(ctx, len(items), func(ctx context.Context, i int) {
		defer r.prog.step(1)
		it := items[i]
		parent := it.entity + " of workspace " + itoa(it.ws)
		if err := r.beforeCall(ctx); err != nil {
			r.failed(ctx, parent, err)
			return
		}
		b, err := r.fetchWorkspaceList(ctx, it.ws, it.entity)
		if err != nil {
			r.failed(ctx, parent, err)
			return
		}
		now := r.o.Clock.Now()
		b.ObservedAt = now
		b.Complete = true
		b.Checkpoint = &load.Checkpoint{Kind: it.entity, ParentID: it.ws,
			State: encodeState(listState{At: now, Count: b.Rows()}), UpdatedAt: now}
		if err := r.write(b); err != nil {
			r.halt(err)
		}
	})
}

// fetchWorkspaceList reads one workspace-level list into a batch.
func (r *run) fetchWorkspaceList(ctx context.Context, ws int64, entity string) (load.Batch, error) {
	b := load.Batch{Entity: entity, ParentID: ws}
	md := r.c.Client.Metadata
	switch entity {
	case load.Dimensions, load.Measurements:
		get := md.Dimensions
		if entity == load.Measurements {
			get = md.Measurements
		}
		fs, err := get(ctx, ws, "")
		if err != nil {
			return b, err
		}
		b.Fields = convert.Fields(ws, fs)
	case load.HarmonizedDimensions:
		hs, err := md.HarmonizedDimensions(ctx, ws)
		if err != nil {
			return b, err
		}
		b.Harmonized = convert.HarmonizedDimensions(ws, hs)
		for _, h := range hs {
			b.AllIDs = append(b.AllIDs, h.ID)
		}
	case load.Patterns:
		ps, err := md.Patterns(ctx, ws)
		if err != nil {
			return b, err
		}
		b.Patterns = convert.Patterns(ws, ps)
		for _, p := range ps {
			b.AllIDs = append(b.AllIDs, p.ID)
		}
	case load.CalculatedMeasurements:
		cs, err := md.CalculatedMeasurements(ctx, ws)
		if err != nil {
			return b, err
		}
		b.CalcMeas = convert.CalculatedMeasurements(ws, cs)
		for _, c := range cs {
			b.AllIDs = append(b.AllIDs, c.ID)
		}
	default:
		return b, fmt.Errorf("no workspace list %q", entity)
	}
	return b, nil
}

// streamItems reads, for every listed stream, its jobs and its mapping when they are
// due.
func (r *run) streamItems(ctx context.Context, streams []*streamWork) {
	now := r.o.Clock.Now()
	if r.o.wants(load.Jobs) {
		for _, w := range streams {
			listing := w.listing
			if w.target {
				listing = "" // never equal to a stored one: the stream is read
			}
			w.kind = decideJobs(w.jobs, listing, r.account().Order, now, r.o)
		}
		if !r.o.SkipBulkStatus {
			r.inFlight(ctx, streams)
			if r.done(ctx) {
				return
			}
		}
	}
	var todo []*streamWork
	for _, w := range streams {
		w.needMapping = r.o.wants(load.Mappings) && (r.o.Full || w.target || w.mapping == nil || w.mapping.UpdateTime != w.updateTime)
		if w.kind != readSkip || w.needMapping {
			todo = append(todo, w)
		}
	}
	r.log.Info("streams to read", "listed", len(streams), "to_read", len(todo))
	r.prog.stage("jobs and mappings", len(todo))
	r.parallel(ctx, len(todo), func(ctx context.Context, i int) {
		defer r.prog.step(1)
		w := todo[i]
		wctx := datorama.WithWorkspace(ctx, w.ws)
		if w.kind != readSkip {
			r.readJobs(wctx, w)
		}
		if w.needMapping && !r.done(ctx) {
			r.readMapping(wctx, w)
		}
	})
}

// readMapping reads and stores one stream's mapping.
func (r *run) readMapping(ctx context.Context, w *streamWork) {
	parent := "mapping of stream " + itoa(w.id)
	if err := r.beforeCall(ctx); err != nil {
		r.failed(ctx, parent, err)
		return
	}
	m, err := r.c.Client.Mappings.Get(ctx, w.id)
	if err != nil {
		r.failed(ctx, parent, err)
		return
	}
	now := r.o.Clock.Now()
	b := load.Batch{Entity: load.Mappings, ParentID: w.id, ObservedAt: now, Complete: true,
		Mappings:   []load.MappingRow{convert.Mapping(w.ws, w.id, m)},
		Checkpoint: &load.Checkpoint{Kind: kindMappings, ParentID: w.id, State: encodeState(mappingState{UpdateTime: w.updateTime}), UpdatedAt: now}}
	if err := r.write(b); err != nil {
		r.halt(err)
	}
}

// inFlight asks the bulk status endpoint about the streams decideJobs left unread or
// whose parked first page it kept: the listing's last-run fields move only when a run
// finishes, so a run started since the last read shows only in the latest run's status.
// A stream whose status disagrees with its checkpoint (bulkAgrees) is read. A workspace
// whose bulk status fails stays incomplete; an endpoint that refuses the request
// outright (a 4xx) is not asked again during the run.
func (r *run) inFlight(ctx context.Context, streams []*streamWork) {
	byWS := map[int64][]*streamWork{}
	var wss []int64
	order := r.account().Order
	for _, w := range streams {
		if w.kind != readSkip && (w.kind != readPending || !pendingNeedsBulk(w.jobs, order)) {
			continue
		}
		if _, ok := byWS[w.ws]; !ok {
			wss = append(wss, w.ws)
		}
		byWS[w.ws] = append(byWS[w.ws], w)
	}
	slices.Sort(wss)
	for wi, ws := range wss {
		list := byWS[ws]
		for start := 0; start < len(list); start += datorama.BulkStatusChunk {
			chunk := list[start:min(start+datorama.BulkStatusChunk, len(list))]
			ids := make([]int64, len(chunk))
			byID := make(map[int64]*streamWork, len(chunk))
			for i, w := range chunk {
				ids[i], byID[w.id] = w.id, w
			}
			if err := r.beforeCall(ctx); err != nil {
				r.failed(ctx, "bulk status of workspace "+itoa(ws), err)
				return
			}
			sts, err := r.c.Client.Streams.BulkStatus(ctx, ws, ids)
			if err != nil {
				if datorama.IsRefused(err) {
					r.log.Warn("the bulk status endpoint refused the request; runs in flight are seen when they finish", "err", err)
					rest := slices.Clone(list[start:])
					for _, ws := range wss[wi+1:] {
						rest = append(rest, byWS[ws]...)
					}
					for _, w := range rest {
						// Without the endpoint, only a stream whose stored jobs are all final
						// may wait for its listing to move.
						if w.kind == readPending || w.jobs.NonFinal > 0 {
							r.unconfirmed(w)
						}
					}
					return
				}
				r.failed(ctx, "bulk status of workspace "+itoa(ws), err)
				for _, w := range list[start:] {
					if w.kind == readPending {
						r.unconfirmed(w) // a parked page nobody confirmed is not kept
					}
				}
				break
			}
			for _, st := range sts {
				if w := byID[st.ID]; w != nil && !bulkAgrees(w.jobs, st.RunStatus) {
					r.unconfirmed(w)
				}
			}
		}
	}
}

// unconfirmed turns a stream the bulk status did not clear into one that is read.
func (r *run) unconfirmed(w *streamWork) {
	if w.kind == readPending {
		w.kind = readFull // the parked page is stale: read page 1 again
		return
	}
	w.kind = decideJobs(w.jobs, "", r.account().Order, r.o.Clock.Now(), r.o)
}

// goneWorkspaces marks the stream lists and workspace-level lists of workspaces a
// complete workspace list no longer has as empty (the API answers nothing under them any
// more) and returns their streams to retire and the workspaces whose checkpoints hold
// them. wss is what the crawl goes on with; it is the complete list only when the
// workspace list was read cleanly.
func (r *run) goneWorkspaces(ctx context.Context, wss []int64, listCPs map[int64]load.Checkpoint) (streams, in []int64) {
	if !r.wsComplete {
		return nil, nil
	}
	for ws, cp := range listCPs {
		if slices.Contains(wss, ws) || r.done(ctx) {
			continue
		}
		st, ok := decodeState[listState](r.log, cp)
		if !ok || len(st.IDs) == 0 && len(st.Gone) == 0 {
			continue // retired before, or never had streams
		}
		// With Gone alone, an earlier run emptied it and stopped before it was done:
		// the writes below are done again, which changes nothing already done.
		now := r.o.Clock.Now()
		gone := append(st.IDs, st.Gone...)
		batches := []load.Batch{{Entity: load.Streams, ParentID: ws, Complete: true, ObservedAt: now,
			Checkpoint: &load.Checkpoint{Kind: kindStreams, ParentID: ws, UpdatedAt: now, State: encodeState(listState{At: now, Gone: gone})}}}
		for _, e := range workspaceLists {
			batches = append(batches, load.Batch{Entity: e, ParentID: ws, Complete: true, ObservedAt: now})
		}
		for _, b := range batches {
			if err := r.write(b); err != nil {
				r.halt(err)
				return nil, nil
			}
		}
		r.log.Info("workspace left the workspace list; what was under it is marked deleted", "workspace", ws)
		streams, in = append(streams, gone...), append(in, ws)
	}
	return streams, in
}

// retireStreams marks the jobs and mapping of streams that left a complete listing
// deleted, and resets their checkpoints, so a stream that comes back is read afresh.
// It reports whether every one was retired.
func (r *run) retireStreams(ids []int64) bool {
	for _, id := range ids {
		now := r.o.Clock.Now()
		for _, b := range []load.Batch{
			{Entity: load.Jobs, ParentID: id, Complete: true, ObservedAt: now,
				Checkpoint: &load.Checkpoint{Kind: kindJobs, ParentID: id, UpdatedAt: now, State: encodeState(jobsState{})}},
			{Entity: load.Mappings, ParentID: id, Complete: true, ObservedAt: now,
				Checkpoint: &load.Checkpoint{Kind: kindMappings, ParentID: id, UpdatedAt: now, State: encodeState(mappingState{UpdateTime: -1})}},
		} {
			if err := r.write(b); err != nil {
				r.halt(err)
				return false
			}
		}
		r.log.Info("stream left its workspace's listing; its jobs and mapping are marked deleted", "stream", id)
	}
	return true
}

// without returns the ids of a that are not in b.
func without(a, b []int64) []int64 {
	in := make(map[int64]bool, len(b))
	for _, id := range b {
		in[id] = true
	}
	var out []int64
	for _, id := range a {
		if !in[id] {
			out = append(out, id)
		}
	}
	return out
}
