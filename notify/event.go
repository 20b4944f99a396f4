package notify

import (
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Events a webhook may subscribe to (notify.webhooks[].events). config.NotifyEvents
// lists the same names; a test keeps them equal.
const (
	EventFailed         = "failed"          // a run ended failed
	EventPartial        = "partial"         // a run ended partial
	EventQuotaExhausted = "quota_exhausted" // a run stopped on the daily quota
	EventActionsFailed  = "actions_failed"  // a follow-up found action items that failed again
	EventStreamFailing  = "stream_failing"  // a stream reached N consecutive failed jobs
)

// EventTest is the sample `drextract notify test` sends to every webhook, whatever it
// subscribes to.
const EventTest = "test"

// Events are the events a webhook may subscribe to, in the documented order.
var Events = []string{EventFailed, EventPartial, EventQuotaExhausted, EventActionsFailed, EventStreamFailing}

// Event is one notification: the JSON body of one POST. Every field is always present
// except Stream and QuotaReset, so receivers can rely on the shape.
type Event struct {
	Event string `json:"event"` // one of Events, or EventTest
	// Status is the run's status: ok, partial, quota_exhausted, failed, or dry_run.
	Status    string    `json:"status"`
	Kind      string    `json:"kind"`   // extract, extract-full, action, export, report
	RunID     int64     `json:"run_id"` // the runs row; 0 when the run could not be recorded
	Schedule  string    `json:"schedule"`
	StartedAt time.Time `json:"started_at"`
	EndedAt   time.Time `json:"ended_at"`
	// Message says what happened in a sentence: the run's error, what stayed
	// incomplete, which items failed.
	Message string `json:"message"`
	Counts  Counts `json:"counts"`
	// Stream is the stream of a stream_failing event.
	Stream *Stream `json:"stream,omitempty"`
	// QuotaReset is when the exhausted daily quota comes back (quota_exhausted).
	QuotaReset *time.Time `json:"quota_reset,omitempty"`
	// Text is a one-line human summary; built from the rest when left empty.
	Text string `json:"text"`
}

// Counts are the run's numbers.
type Counts struct {
	Calls      int `json:"calls"`      // API calls the run made
	Rows       int `json:"rows"`       // rows written, all tables together
	Incomplete int `json:"incomplete"` // parents whose listing failed
	// What the run's follow-up of earlier actions decided: items that failed, that
	// succeeded, that are still pending.
	ItemsFailed    int `json:"items_failed"`
	ItemsSucceeded int `json:"items_succeeded"`
	ItemsPending   int `json:"items_pending"`
	// ConsecutiveFailures of the stream (stream_failing).
	ConsecutiveFailures int `json:"consecutive_failures"`
}

// Stream is the stream of a stream_failing event.
type Stream struct {
	ID          int64      `json:"id"`
	Name        string     `json:"name"`
	WorkspaceID int64      `json:"workspace_id"`
	LastJobID   int64      `json:"last_job_id"`
	LastFailure *time.Time `json:"last_failure,omitempty"`
	Reason      string     `json:"reason"` // status reason of the newest failed job
}

// Limits on what one event carries, so a huge error does not make a huge post.
const (
	maxMessage = 1000 // runes
	maxText    = 500
)

// summary is the one-line text of e.
func (e *Event) summary() string {
	var b strings.Builder
	b.WriteString("drextract: ")
	run := e.Kind + " run"
	if e.RunID != 0 {
		run = fmt.Sprintf("%s run %d", e.Kind, e.RunID)
	}
	if e.Schedule != "" && e.Schedule != "cli" {
		run += fmt.Sprintf(" (schedule %s)", e.Schedule)
	}
	switch e.Event {
	case EventFailed:
		fmt.Fprintf(&b, "%s failed", run)
	case EventPartial:
		fmt.Fprintf(&b, "%s ended partial", run)
	case EventQuotaExhausted:
		fmt.Fprintf(&b, "%s stopped: daily API quota exhausted", run)
		if e.QuotaReset != nil {
			fmt.Fprintf(&b, ", resets %s", e.QuotaReset.UTC().Format(time.RFC3339))
		}
	case EventActionsFailed:
		by := run
		if e.RunID == 0 {
			by = "a follow-up"
		}
		fmt.Fprintf(&b, "%d action items failed again (found by %s; drextract actions log)", e.Counts.ItemsFailed, by)
	case EventStreamFailing:
		if s := e.Stream; s != nil {
			fmt.Fprintf(&b, "data stream %d %q (workspace %d) failed %d times in a row", s.ID, s.Name, s.WorkspaceID, e.Counts.ConsecutiveFailures)
		}
	case EventTest:
		b.WriteString("test notification")
	default:
		fmt.Fprintf(&b, "%s: %s", run, e.Event)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return clip(oneLine(b.String()), maxText)
}

// oneLine keeps a text on one line: control characters become spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}

// clip bounds s to n runes, marking the cut.
func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
