package action

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/drextract/drextract/convert"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/ratelimit"
)

// The write-back: once a call took effect, the rows it changed are written to the store
// from the API's answer (or, when the answer holds no record, from one GET), so that a
// query right after the action shows it (issue 14 point 3). The rows go through the same
// load.Sink the crawler writes with, in batches that are never Complete (a Complete
// batch of a parent marks what it lacks deleted), so history versions and job status
// changes are recorded exactly as a crawl would record them, stamped with the action
// run's runs row. A deletion is the one exception: it marks the stream, its jobs and its
// mapping deleted, with batches shaped like the crawler's own retirement of a stream.
//
// The crawler's checkpoints are not touched. A stream's "jobs" checkpoint keeps the
// listing fingerprint and the counts of its last read, so the next crawl decides exactly
// as it would have without the write-back: a stream whose run fields change (its new job
// finished) is read again, and one whose latest run is not final is read because the
// bulk status says so; the jobs stored here are then among the stored jobs that read
// compares its pages with (still-pending ones make it re-read their pages). If a stored
// job leaves a gap in the ids the crawl expects (a job created by someone else between
// the last crawl and the action), the read finds its pages misaligned and reads the
// stream in full: more calls, never a missed job. A mapping written here does not move
// the "mappings" checkpoint either: the stream's updateTime changed with the write, so
// the next crawl reads the mapping again.

// storeAfter writes back what a sent call changed. A failure to store is no failure of
// the call, which took effect: it is reported with the run (Report.Unstored) and the next
// crawl stores the rows.
func (e *Engine) storeAfter(ctx context.Context, op Op, ws int64, streams []int64, ans *Answer) {
	if !e.storing() || ans == nil || !ans.Sent {
		return
	}
	ctx = ratelimit.WithPriority(ctx, ratelimit.Interactive)
	ctx = datorama.WithWorkspace(ctx, ws)
	var err error
	switch {
	case op.CreatesJobs():
		err = e.storeAnswerJobs(ctx, ws, streams, ans.Jobs)
	case op == OpRename, op == OpPatch, op == OpPut, op == OpEnable, op == OpDisable:
		err = e.storeStream(ctx, ws, streams[0], ans.Stream)
	case op == OpMapping:
		err = e.storeMapping(ctx, ws, streams[0], ans.Mapping)
	case op == OpDelete:
		err = e.storeDeleted(ctx, ws, streams[0])
	case op.Creates():
		err = e.storeCreated(ctx, ws, ans)
	}
	what := fmt.Sprintf("%s in workspace %d", op, ws)
	if len(streams) > 0 {
		what = fmt.Sprintf("%s of stream %d", op, streams[0])
	}
	e.unstoredIf(ctx, what, err)
}

func (e *Engine) storing() bool { return e.Sink != nil && e.RunID != 0 }

// unstoredIf notes a write-back that failed, for the run's result.
func (e *Engine) unstoredIf(ctx context.Context, what string, err error) {
	if err == nil {
		return
	}
	e.log().WarnContext(ctx, "the store does not show what an action did; the next crawl will", "what", what, "err", err)
	e.unstored = append(e.unstored, fmt.Sprintf("%s: %v", what, err))
}

// write stores one batch, also when the caller's context has ended: the call it records
// took effect.
func (e *Engine) write(ctx context.Context, b load.Batch) error {
	b.ObservedAt = e.clock().Now()
	return e.Sink.Write(context.WithoutCancel(ctx), e.RunID, b)
}

// storeAnswerJobs stores the jobs a rerun or process answered, by stream. A job that
// names no stream belongs to the call's only stream; in a batch call such a job cannot
// be placed and is left to the next crawl. A job the answer gives no status is PENDING,
// which is what every new job starts as.
func (e *Engine) storeAnswerJobs(ctx context.Context, ws int64, streams []int64, jobs []datorama.Job) error {
	byStream := map[int64][]datorama.Job{}
	for _, j := range jobs {
		sid := int64(j.DataStreamID)
		if sid == 0 && len(streams) == 1 {
			sid = streams[0]
		}
		if sid == 0 || !slices.Contains(streams, sid) {
			continue
		}
		if j.Status == "" {
			j.Status = datorama.StatusPending
		}
		byStream[sid] = append(byStream[sid], j)
	}
	var errs []error
	for _, sid := range sortedKeys(byStream) {
		errs = append(errs, e.storeJobs(ctx, ws, sid, byStream[sid]))
	}
	return errors.Join(errs...)
}

// storeJobs writes jobs of one stream.
func (e *Engine) storeJobs(ctx context.Context, ws, sid int64, jobs []datorama.Job) error {
	if !e.storing() || len(jobs) == 0 {
		return nil
	}
	b := load.Batch{Entity: load.Jobs, ParentID: sid, Jobs: make([]load.JobRow, len(jobs))}
	for i := range jobs {
		b.Jobs[i] = convert.Job(ws, sid, &jobs[i])
	}
	return e.write(ctx, b)
}

// storeStream writes a stream as answered, or as one GET reads it when the answer held
// no record.
func (e *Engine) storeStream(ctx context.Context, ws, sid int64, st *datorama.Stream) error {
	if st == nil {
		var err error
		if st, err = e.Client.Streams.Get(ctx, sid); err != nil {
			return err
		}
	}
	row := convert.Stream(ws, st)
	return e.write(ctx, load.Batch{Entity: load.Streams, ParentID: row.WorkspaceID, Streams: []load.StreamRow{row}})
}

// storeMapping writes a mapping as answered, or as one GET reads it.
func (e *Engine) storeMapping(ctx context.Context, ws, sid int64, m *datorama.Mapping) error {
	if m == nil || len(m.Raw) == 0 {
		var err error
		if m, err = e.Client.Mappings.Get(ctx, sid); err != nil {
			return err
		}
	}
	return e.write(ctx, load.Batch{Entity: load.Mappings, ParentID: sid, Mappings: []load.MappingRow{convert.Mapping(ws, sid, m)}})
}

// storeDeleted marks a stream the API deleted, with its jobs and mapping, deleted, their
// history closed. The Sink marks rows deleted only for a Complete batch of their
// parent, so the stream's is one that lists every other live stream of its workspace
// (as the store holds them): only the deleted one is missing. Its jobs and mapping are
// retired with empty Complete batches, as the crawler retires a stream that left its
// workspace's listing.
func (e *Engine) storeDeleted(ctx context.Context, ws, sid int64) error {
	live, err := liveStreamsOf(ctx, e.DB, ws)
	if err != nil {
		return err
	}
	others := slices.DeleteFunc(live, func(id int64) bool { return id == sid })
	for _, b := range []load.Batch{
		{Entity: load.Streams, ParentID: ws, Complete: true, AllIDs: others},
		{Entity: load.Jobs, ParentID: sid, Complete: true},
		{Entity: load.Mappings, ParentID: sid, Complete: true},
	} {
		if err := e.write(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// storeCreated writes what a creation created, as answered.
func (e *Engine) storeCreated(ctx context.Context, ws int64, ans *Answer) error {
	switch {
	case ans.Stream != nil:
		return e.storeStream(ctx, ws, ans.Stream.ID, ans.Stream)
	case ans.Pattern != nil:
		return e.write(ctx, load.Batch{Entity: load.Patterns, ParentID: ws, Patterns: convert.Patterns(ws, []datorama.Pattern{*ans.Pattern})})
	case ans.Calc != nil:
		return e.write(ctx, load.Batch{Entity: load.CalculatedMeasurements, ParentID: ws,
			CalcMeas: convert.CalculatedMeasurements(ws, []datorama.CalculatedMeasurement{*ans.Calc})})
	}
	return errors.New("the answer held no created record")
}
