package run

import (
	"context"
	"fmt"
	"strings"

	"github.com/drextract/drextract/action"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/notify"
)

// maxStreamEvents bounds the stream_failing events of one run (the first crawl of an
// account may find many streams failing): the rest are told in one more event.
const maxStreamEvents = 10

// notify is the last step of every run: it tells the Runner's Notifier what went wrong.
// It only queues (Notifier.Notify never waits for a webhook), so the caller's exit code
// and the daemon's next run are never held up, and nothing it does changes the Result. A
// run the caller interrupted is not news. The events:
//
//   - failed, partial, quota_exhausted: how the run ended;
//   - actions_failed: its follow-up decided that action items failed;
//   - stream_failing: a crawl brought streams to notify.stream_failing_after consecutive
//     failed jobs (load.StreamsReachingFailures, which says each once per row).
func (r *Runner) notify(ctx context.Context, st *load.Store, res *Result) {
	if res.Ended.IsZero() {
		res.Ended = r.clock().Now()
	}
	n := r.Notifier
	if n == nil || res.Interrupted || ctx.Err() != nil {
		return
	}
	base := notify.Event{Status: res.Status, Kind: res.Kind, RunID: res.RunID, Schedule: r.schedule(),
		StartedAt: res.Started.UTC(), EndedAt: res.Ended.UTC(), Counts: counts(res)}
	if base.StartedAt.IsZero() {
		base.StartedAt = base.EndedAt
	}
	switch res.Status {
	case load.RunFailed:
		ev := base
		ev.Event, ev.Message = notify.EventFailed, "run reported failure"
		if res.Err != nil {
			ev.Message = res.Err.Error()
		}
		n.Notify(ev)
	case load.RunPartial:
		ev := base
		ev.Event, ev.Message = notify.EventPartial, partialMessage(res)
		n.Notify(ev)
	case load.RunQuotaExhausted:
		ev := base
		ev.Event, ev.Message = notify.EventQuotaExhausted, "the daily API quota is exhausted; the next run resumes after the reset"
		if !res.QuotaReset.IsZero() {
			reset := res.QuotaReset.UTC()
			ev.QuotaReset = &reset
		}
		n.Notify(ev)
	}
	if fu := res.FollowUp; fu != nil && fu.Failed > 0 {
		n.Notify(actionsFailed(base, *fu))
	}
	if res.Crawl != nil && res.RunID != 0 && n.Wants(notify.EventStreamFailing) {
		r.notifyFailingStreams(context.WithoutCancel(ctx), st, res, base)
	}
}

// actionsFailed is the actions_failed event of a follow-up that found failed items.
func actionsFailed(base notify.Event, fu action.FollowUpStats) notify.Event {
	ev := base
	ev.Event = notify.EventActionsFailed
	ev.Counts.ItemsFailed, ev.Counts.ItemsSucceeded, ev.Counts.ItemsPending = fu.Failed, fu.Succeeded, fu.Pending
	ev.Message = fmt.Sprintf("outcomes decided now: %d failed, %d succeeded, %d still pending; select * from action_items where outcome = 'failed'",
		fu.Failed, fu.Succeeded, fu.Pending)
	return ev
}

// KindFollowUp names the follow-up of `drextract actions follow-up` in notifications; it
// writes no runs row.
const KindFollowUp = "follow-up"

// FollowUp fills in the outcomes of earlier action items from the store, as every crawl
// and action run does after its work, and notifies actions_failed when items failed.
func (r *Runner) FollowUp(ctx context.Context, st *load.Store) (action.FollowUpStats, error) {
	start := r.clock().Now()
	fu, err := action.FollowUp(ctx, st.DB())
	if err != nil {
		return fu, fmt.Errorf("following up actions: %w", err)
	}
	if fu.Failed > 0 && r.Notifier != nil && ctx.Err() == nil {
		end := r.clock().Now()
		r.Notifier.Notify(actionsFailed(notify.Event{Status: load.RunOK, Kind: KindFollowUp, Schedule: r.schedule(),
			StartedAt: start.UTC(), EndedAt: end.UTC()}, fu))
	}
	return fu, nil
}

// notifyFailingStreams sends one stream_failing event per stream the crawl brought to the
// threshold, at most maxStreamEvents, and one more for the rest.
func (r *Runner) notifyFailingStreams(ctx context.Context, st *load.Store, res *Result, base notify.Event) {
	after := r.Config.StreamFailingAfter()
	streams, err := st.StreamsReachingFailures(ctx, res.RunID, after)
	if err != nil {
		r.log().Warn("finding the streams that keep failing, for notifications", "run_id", res.RunID, "error", err)
		return
	}
	for i, s := range streams {
		ev := base
		ev.Event = notify.EventStreamFailing
		if i == maxStreamEvents-1 && len(streams) > maxStreamEvents {
			ids := make([]string, 0, len(streams)-i)
			for _, s := range streams[i:] {
				ids = append(ids, fmt.Sprint(s.StreamID))
			}
			ev.Counts.ConsecutiveFailures = after
			ev.Message = fmt.Sprintf("%d more data streams failed at least %d times in a row: %s", len(ids), after, strings.Join(ids, ", "))
			r.Notifier.Notify(ev)
			return
		}
		ev.Counts.ConsecutiveFailures = s.Failures
		ev.Stream = &notify.Stream{ID: s.StreamID, Name: s.Name, WorkspaceID: s.WorkspaceID, LastJobID: s.LastJobID, Reason: s.Reason}
		if !s.LastFailure.IsZero() {
			t := s.LastFailure
			ev.Stream.LastFailure = &t
		}
		if s.Reason != "" {
			ev.Message = "last failure: " + s.Reason
		}
		r.Notifier.Notify(ev)
	}
}

// counts are the numbers of res an event carries.
func counts(res *Result) notify.Counts {
	c := notify.Counts{Calls: res.Calls, Incomplete: len(res.Incomplete)}
	if res.Kind != KindExport { // an export's rows are rows exported, not written
		for _, n := range res.Rows {
			c.Rows += n
		}
	}
	if fu := res.FollowUp; fu != nil {
		c.ItemsFailed, c.ItemsSucceeded, c.ItemsPending = fu.Failed, fu.Succeeded, fu.Pending
	}
	return c
}

// partialMessage says what a partial run left out.
func partialMessage(res *Result) string {
	var parts []string
	if res.Action != nil && res.Action.Report != nil && res.Action.Report.Failed > 0 {
		rep := res.Action.Report
		parts = append(parts, fmt.Sprintf("%d action items failed (drextract actions log --run %d)", rep.Failed, rep.RunID))
	}
	if len(res.Incomplete) > 0 {
		parts = append(parts, "incomplete: "+strings.Join(res.Incomplete, "; "))
	}
	if res.Err != nil {
		parts = append(parts, res.Err.Error())
	}
	if len(parts) == 0 {
		return "some of the run's work was not done"
	}
	return strings.Join(parts, "; ")
}
