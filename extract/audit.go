package extract

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
)

// Audit is the datorama.Observer that turns every API attempt into an api_calls row.
// Wire it into the client (datorama.WithObserver) and hand it to the Crawler; the
// crawler tells it the run id and flushes it. It also counts the attempts, which is how
// a run knows its calls.
//
// ObserveCall is safe for concurrent use and never blocks on the store: records are
// buffered and written in batches by Flush, which the crawler calls between writes.
// Records observed before a run begins are kept and written with that run.
type Audit struct {
	calls atomic.Int64

	mu    sync.Mutex
	buf   []load.APICall
	runID int64
}

var _ datorama.Observer = (*Audit)(nil)

// NewAudit returns an empty audit.
func NewAudit() *Audit { return &Audit{} }

// ObserveCall records one attempt.
func (a *Audit) ObserveCall(r datorama.CallRecord) {
	a.calls.Add(1)
	row := apiCall(r)
	a.mu.Lock()
	a.buf = append(a.buf, row)
	a.mu.Unlock()
}

// Calls is the number of attempts observed since the audit was made.
func (a *Audit) Calls() int { return int(a.calls.Load()) }

// begin sets the run the following records belong to.
func (a *Audit) begin(runID int64) {
	a.mu.Lock()
	a.runID = runID
	a.mu.Unlock()
}

// Flush writes the buffered records through sink when at least min of them wait. On
// failure the records stay buffered for the next flush.
func (a *Audit) Flush(ctx context.Context, sink load.Sink, min int) error {
	a.mu.Lock()
	if len(a.buf) == 0 || len(a.buf) < min || a.runID == 0 {
		a.mu.Unlock()
		return nil
	}
	rows, runID := a.buf, a.runID
	a.buf = nil
	a.mu.Unlock()
	if err := sink.RecordCalls(ctx, runID, rows); err != nil {
		a.mu.Lock()
		a.buf = append(rows, a.buf...)
		a.mu.Unlock()
		return fmt.Errorf("recording %d API calls: %w", len(rows), err)
	}
	return nil
}

// apiCall converts a call record; absent rate headers become -1, as load.APICall wants.
func apiCall(r datorama.CallRecord) load.APICall {
	remaining := func(w datorama.Window) int {
		if !w.Known {
			return -1
		}
		return w.Remaining
	}
	return load.APICall{
		Time:              r.Time,
		Fingerprint:       r.Fingerprint,
		Method:            r.Method,
		PathTemplate:      r.PathTemplate,
		Status:            r.Status,
		Latency:           r.Latency,
		Attempt:           r.Attempt,
		PlatformRemaining: remaining(r.Rate.Platform),
		QueryRemaining:    remaining(r.Rate.Query),
		DailyRemaining:    remaining(r.Rate.Daily),
		PlatformReset:     r.Rate.Platform.Reset,
		DailyReset:        r.Rate.DailyReset(),
		Error:             r.Err,
	}
}
