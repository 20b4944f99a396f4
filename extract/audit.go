package extract

import (
	"sync/atomic"

	"github.com/drextract/drextract/datorama"
)

// Audit is the datorama.Observer a crawl counts its API attempts with: Result.Calls and
// the MaxCalls cap count attempts, retries included. Wire it into the Client
// (datorama.WithObserver) and hand it to the Crawler. The api_calls rows of the attempts
// are not the crawl's business: the client's other observer (audit.Recorder) journals
// them. ObserveCall is safe for concurrent use.
type Audit struct {
	calls atomic.Int64
}

var _ datorama.Observer = (*Audit)(nil)

// NewAudit returns an audit that has counted nothing.
func NewAudit() *Audit { return &Audit{} }

// ObserveCall counts one attempt.
func (a *Audit) ObserveCall(datorama.CallRecord) { a.calls.Add(1) }

// Calls is the number of attempts observed since the audit was made.
func (a *Audit) Calls() int { return int(a.calls.Load()) }
