package audit

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
)

// Recorder is the datorama.Observer that appends every attempt to a store's API-call
// journal. Its methods are safe for concurrent use. An attempt that cannot be appended
// (a full disk) is counted and logged, and Err reports it: the observer cannot fail the
// call, but its run must not claim a complete audit.
type Recorder struct {
	j        *load.Journal
	syncEach bool
	log      *slog.Logger

	run    atomic.Int64
	calls  atomic.Int64
	failed atomic.Int64

	errMu sync.Mutex
	err   error
}

var _ datorama.Observer = (*Recorder)(nil)

// Options configure a Recorder.
type Options struct {
	// RunID is the runs row the attempts belong to; 0 when the run is not known yet (a
	// crawl records its own: SetRun, or Sink) or there is none (status --probe).
	RunID int64
	// SyncEach makes each record durable before the client goes on with the answer. It
	// is for work that writes what it read without a Sink (actions, reports) or writes
	// nothing (probes), and makes few calls; a crawl leaves it off and syncs before each
	// commit through Sink instead.
	SyncEach bool
	Logger   *slog.Logger
}

// New returns a Recorder appending to j.
func New(j *load.Journal, o Options) *Recorder {
	l := o.Logger
	if l == nil {
		l = slog.Default()
	}
	r := &Recorder{j: j, syncEach: o.SyncEach, log: l.With("component", "audit")}
	r.run.Store(o.RunID)
	return r
}

// SetRun makes the attempts observed from now on belong to run id.
func (r *Recorder) SetRun(id int64) { r.run.Store(id) }

// ObserveCall appends one attempt to the journal. It is called by the client after every
// attempt, before the answer goes back to the caller.
func (r *Recorder) ObserveCall(rec datorama.CallRecord) {
	r.calls.Add(1)
	c := APICall(rec)
	c.AttemptID = rand.Text()
	err := r.j.Append(r.run.Load(), c)
	if err == nil && r.syncEach {
		err = r.j.Sync()
	}
	if err != nil {
		r.fail(err)
	}
}

func (r *Recorder) fail(err error) {
	n := r.failed.Add(1)
	r.errMu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.errMu.Unlock()
	if n == 1 || n%100 == 0 {
		r.log.Error("an API call could not be written to the api_calls journal", "failed", n, "err", err)
	}
}

// Calls is the number of attempts observed.
func (r *Recorder) Calls() int { return int(r.calls.Load()) }

// Err says how many attempts could not be journaled and why; nil when every one was.
func (r *Recorder) Err() error {
	n := r.failed.Load()
	if n == 0 {
		return nil
	}
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return fmt.Errorf("%d of %d API calls could not be written to the api_calls journal: %w", n, r.calls.Load(), r.err)
}

// Sync makes every attempt observed so far durable. It fails when one of them could
// not even be appended: the records it should make durable are not all there.
func (r *Recorder) Sync() error {
	if err := r.Err(); err != nil {
		return err
	}
	return r.j.Sync()
}

// APICall converts a call record into the store's row; absent rate headers become -1,
// as load.APICall wants. The attempt id is left to the caller.
func APICall(r datorama.CallRecord) load.APICall {
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
		ActionRunID:       r.Ref.ActionRunID,
		ActionCallNo:      r.Ref.ActionCallNo,
	}
}

// Sink wraps a crawl's Sink: the run it starts becomes r's run, and every attempt r
// observed is durable before a page (Write) or a group of pages (WriteBatches), and the
// run's end, is committed. Every method that commits rows must be wrapped here. A page's rows are
// always read by attempts observed before its Write, so no committed row has a call the
// journal could lose.
func Sink(s load.Sink, r *Recorder) load.Sink { return &sink{Sink: s, r: r} }

type sink struct {
	load.Sink
	r *Recorder
}

func (s *sink) StartRun(ctx context.Context, rs load.RunStart) (int64, error) {
	id, err := s.Sink.StartRun(ctx, rs)
	if err == nil {
		s.r.SetRun(id)
	}
	return id, err
}

func (s *sink) Write(ctx context.Context, runID int64, b load.Batch) error {
	if err := s.r.Sync(); err != nil {
		return fmt.Errorf("making the API calls that read it durable first: %w", err)
	}
	return s.Sink.Write(ctx, runID, b)
}

func (s *sink) WriteBatches(ctx context.Context, runID int64, bs []load.Batch) error {
	if err := s.r.Sync(); err != nil {
		return fmt.Errorf("making the API calls that read them durable first: %w", err)
	}
	return s.Sink.WriteBatches(ctx, runID, bs)
}

func (s *sink) FinishRun(ctx context.Context, runID int64, e load.RunEnd) error {
	// The run's end records how many calls it made: the journal holds them all by then.
	// A failure here is the Recorder's (Err); the end is recorded anyway.
	if err := s.r.j.Sync(); err != nil {
		s.r.fail(err)
	}
	return s.Sink.FinishRun(ctx, runID, e)
}
