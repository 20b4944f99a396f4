package action

import (
	"context"
	"fmt"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/ratelimit"
)

// resolveJobStreams fills in the stream of rows that name a job but no stream (`rerun
// --job J`): from the store when it has the job, else with one lookup call per job
// (GET /v1/data-stream-stat/{id}), whose answer is stored too when the store knows the
// stream's workspace. Without a client (a dry run) a job the store lacks is refused:
// nothing calls the API before --yes.
func (e *Engine) resolveJobStreams(ctx context.Context, rows []Row) error {
	var ids []int64
	for _, r := range rows {
		if r.StreamID == 0 && r.JobID != 0 {
			ids = append(ids, r.JobID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	stored, err := lookupJobs(ctx, e.DB, ids)
	if err != nil {
		return err
	}
	found := map[int64]int64{} // job → stream
	for i := range rows {
		r := &rows[i]
		if r.StreamID != 0 || r.JobID == 0 {
			continue
		}
		if j, ok := stored[r.JobID]; ok {
			r.StreamID = j.StreamID
			continue
		}
		if sid, ok := found[r.JobID]; ok {
			r.StreamID = sid
			continue
		}
		if e.Client == nil {
			return badInput(fmt.Errorf("job %d is not in the store, and a dry run makes no API call to look it up: give its --stream, or send with --yes (one call finds the stream)", r.JobID))
		}
		sid, err := e.lookupJob(ctx, r.JobID)
		if err != nil {
			return err
		}
		found[r.JobID], r.StreamID = sid, sid
	}
	return nil
}

// lookupJob asks the API for one job, stores it when the store knows its stream, and
// returns its stream.
func (e *Engine) lookupJob(ctx context.Context, id int64) (int64, error) {
	j, err := e.Client.Jobs.Get(ratelimit.WithPriority(ctx, ratelimit.Interactive), id)
	switch {
	case datorama.IsNotFound(err):
		return 0, badInput(fmt.Errorf("job %d: the API knows no such job (or this token cannot see its workspace)", id))
	case err != nil:
		return 0, fmt.Errorf("looking up job %d at the API: %w", id, err)
	}
	sid := int64(j.DataStreamID)
	if sid == 0 {
		return 0, badInput(fmt.Errorf("job %d: the API's record names no stream; give its --stream", id))
	}
	streams, err := lookupStreams(ctx, e.DB, []int64{sid})
	if err != nil {
		return 0, err
	}
	if s := streams[sid]; s != nil {
		// The plan does not need the row; a failure is reported with the run's result.
		e.unstoredIf(ctx, fmt.Sprintf("looked-up job %d", id), e.storeJobs(ctx, s.WorkspaceID, sid, []datorama.Job{*j}))
	}
	e.log().InfoContext(ctx, "looked a job up at the API", "job", id, "stream", sid)
	return sid, nil
}
