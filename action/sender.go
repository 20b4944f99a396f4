package action

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/ratelimit"
)

// Sender sends calls to Datorama. Send gets a batch of calls (a single one for calls
// that start jobs) and returns one Result per call, in order. An error for which
// OutcomeUnknown is true means that request may have taken effect; any other error
// means it certainly did not. Send is called by one goroutine at a time.
type Sender interface {
	Send(ctx context.Context, calls []*Call) []Result
}

// Result is what one call of a batch came to.
type Result struct {
	Answer *Answer
	Err    error
}

// Answer is what a call produced.
type Answer struct {
	Jobs  []datorama.Job  // jobs the API says the call created
	Body  json.RawMessage // the answer, for the audit (bounded)
	Bytes int64           // downloads: bytes written
	// Sent is false when nothing reached the API (a dry run).
	Sent bool
	// The record the API answered, when the call answers one: the stream changed or
	// created, the mapping written, the pattern or calculated measurement created. The
	// write-back stores it; a nil record is read with one GET when one is needed.
	Stream  *datorama.Stream
	Mapping *datorama.Mapping
	Pattern *datorama.Pattern
	Calc    *datorama.CalculatedMeasurement
	// CreatedID is the id of what a creation created.
	CreatedID int64
}

// ErrNotAttempted is matched by the error of a call of a batch that was never tried,
// because an earlier call of the batch found the quota gone or the context ended.
var ErrNotAttempted = errors.New("not attempted")

// EachCall makes a Sender of a function that sends one call: the calls of a batch go
// one by one, and once the quota is gone or the context has ended the rest are not
// attempted. Tests build fault injectors with it.
func EachCall(send func(ctx context.Context, c *Call) (*Answer, error)) Sender { return eachCall(send) }

type eachCall func(ctx context.Context, c *Call) (*Answer, error)

func (f eachCall) Send(ctx context.Context, calls []*Call) []Result {
	out := make([]Result, len(calls))
	var stop error
	for i, c := range calls {
		if stop == nil && ctx.Err() != nil {
			stop = ctx.Err()
		}
		if stop != nil {
			out[i] = Result{Err: definite(fmt.Errorf("%w: %w", ErrNotAttempted, stop))}
			continue
		}
		ans, err := f(ctx, c)
		out[i] = Result{Answer: ans, Err: err}
		if err != nil && (errors.Is(err, datorama.ErrQuotaExhausted) || ctx.Err() != nil) {
			stop = err
		}
	}
	return out
}

// sendOne sends a single call through s.
func sendOne(ctx context.Context, s Sender, c *Call) (*Answer, error) {
	r := s.Send(ctx, []*Call{c})
	return r[0].Answer, r[0].Err
}

// OutcomeUnknown reports whether err leaves open whether the request took effect: the
// client said so (datorama.ErrOutcomeUnknown: a 5xx, a connection lost after sending),
// or the context ended while the request was out, or the error is of a kind nothing
// vouches for. A definite refusal (an API error status, a 429, the quota gate saying no
// before sending, a call never attempted) is not unknown. Unknown calls are reconciled
// from the API, never resent blindly.
func OutcomeUnknown(err error) bool {
	if err == nil {
		return false
	}
	var de *errDefinite
	if errors.As(err, &de) {
		return false
	}
	if errors.Is(err, datorama.ErrOutcomeUnknown) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var (
		ae *datorama.APIError
		re *datorama.RateLimitError
		rt *datorama.RetryError
	)
	switch {
	case errors.Is(err, datorama.ErrQuotaExhausted), errors.As(err, &ae), errors.As(err, &re), errors.As(err, &rt):
		return false
	}
	return true
}

// errDefinite marks a failure that certainly changed nothing at Datorama: a local error
// before the request, a read that failed, a call never attempted.
type errDefinite struct{ err error }

func (e *errDefinite) Error() string { return e.err.Error() }
func (e *errDefinite) Unwrap() error { return e.err }

func definite(err error) error {
	if err == nil {
		return nil
	}
	return &errDefinite{err}
}

// maxAnswerBody bounds an answer kept in the audit.
const maxAnswerBody = 64 << 10

// apiSender sends calls with the datorama client, at interactive priority (actions are a
// person waiting, and may use the daily reserve), always naming the workspace and, for
// the api_calls audit, the action call (runID, call no) each request carries out.
type apiSender struct {
	c     *datorama.Client
	runID int64
}

func (s *apiSender) send(ctx context.Context, c *Call) (*Answer, error) {
	ctx = ratelimit.WithPriority(ctx, ratelimit.Interactive)
	ctx = datorama.WithWorkspace(ctx, c.WorkspaceID)
	ctx = datorama.WithCallRef(ctx, datorama.CallRef{ActionRunID: s.runID, ActionCallNo: c.No})
	if c.Op.Creates() {
		return s.create(ctx, c)
	}
	if len(c.StreamIDs) == 0 {
		return nil, definite(fmt.Errorf("call %d has no stream", c.No))
	}
	sid := c.StreamIDs[0]
	switch c.Op {
	case OpRerun:
		return jobsAnswer(s.c.Jobs.Rerun(ctx, sid, c.JobIDs))
	case OpRerunAll:
		return jobsAnswer(s.c.Jobs.RerunAll(ctx, sid))
	case OpProcess:
		if len(c.StreamIDs) == 1 {
			return jobsAnswer(s.c.Jobs.Process(ctx, sid, c.Start, c.End))
		}
		return jobsAnswer(s.c.Jobs.ProcessMany(ctx, c.StreamIDs, c.Start, c.End, false))
	case OpRename, OpPatch, OpEnable, OpDisable:
		fields, err := decodeObject(c.Body)
		if err != nil {
			return nil, definite(err)
		}
		st, err := s.c.Streams.Patch(ctx, sid, fields)
		if err != nil {
			return nil, writeError(err)
		}
		return streamAnswer(st), nil
	case OpPut:
		cur, err := s.c.Streams.Get(ctx, sid)
		if err != nil {
			return nil, definite(err)
		}
		merged, err := MergePatch(cur.Raw, c.Body)
		if err != nil {
			return nil, definite(fmt.Errorf("merging the changes into stream %d: %w", sid, err))
		}
		st, err := s.c.Streams.Put(ctx, sid, merged)
		if err != nil {
			return nil, writeError(err)
		}
		return streamAnswer(st), nil
	case OpMapping:
		cur, err := s.c.Mappings.Get(ctx, sid)
		if err != nil {
			return nil, definite(err)
		}
		merged, err := MergePatch(cur.Raw, c.Body)
		if err != nil {
			return nil, definite(fmt.Errorf("merging the changes into the mapping of stream %d: %w", sid, err))
		}
		m, err := s.c.Mappings.Put(ctx, sid, merged)
		if err != nil {
			return nil, writeError(err)
		}
		a := &Answer{Sent: true, Mapping: m}
		if m != nil {
			a.Body = bounded(m.Raw)
		}
		return a, nil
	case OpDelete:
		if err := s.c.Streams.Delete(ctx, sid); err != nil {
			return nil, writeError(err)
		}
		return &Answer{Sent: true}, nil
	case OpDownload:
		return s.download(ctx, c)
	}
	return nil, definite(fmt.Errorf("call %d: unknown action %q", c.No, c.Op))
}

// create sends a creation. It is not idempotent: the client never resends it after it
// may have reached the API, and an unknown outcome is settled by looking for the entity.
func (s *apiSender) create(ctx context.Context, c *Call) (*Answer, error) {
	switch c.Op {
	case OpCreateStream:
		st, err := s.c.Streams.Create(ctx, c.Body)
		if err != nil {
			return nil, err
		}
		return &Answer{Sent: true, Stream: st, CreatedID: st.ID, Body: bounded(st.Raw)}, nil
	case OpCreatePattern:
		p, err := s.c.Metadata.CreatePattern(ctx, c.Body)
		if err != nil {
			return nil, err
		}
		return &Answer{Sent: true, Pattern: p, CreatedID: p.ID, Body: bounded(p.Raw)}, nil
	case OpCreateCalc:
		m, err := s.c.Metadata.CreateCalculatedMeasurement(ctx, c.WorkspaceID, c.Body)
		if err != nil {
			return nil, err
		}
		return &Answer{Sent: true, Calc: m, CreatedID: m.ID, Body: bounded(m.Raw)}, nil
	}
	return nil, definite(fmt.Errorf("call %d: unknown creation %q", c.No, c.Op))
}

// download writes to a temporary file next to the target and renames it into place, so
// an interrupted download never leaves a file that looks complete.
func (s *apiSender) download(ctx context.Context, c *Call) (*Answer, error) {
	if len(c.JobIDs) != 1 || c.OutPath == "" {
		return nil, definite(fmt.Errorf("call %d: a download needs one job and a target file", c.No))
	}
	dir := filepath.Dir(c.OutPath)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, definite(err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(c.OutPath)+".*.part")
	if err != nil {
		return nil, definite(err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	var n int64
	if c.TotalConnect {
		n, err = s.c.Jobs.DownloadTotalConnect(ctx, c.JobIDs[0], f)
	} else {
		n, err = s.c.Jobs.Download(ctx, c.JobIDs[0], f)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, definite(err) // reading twice is harmless: never "unknown"
	}
	if err := os.Rename(tmp, c.OutPath); err != nil {
		return nil, definite(err)
	}
	body, _ := json.Marshal(map[string]any{"file": c.OutPath, "bytes": n})
	return &Answer{Sent: true, Bytes: n, Body: body}, nil
}

// writeError classifies the failure of an idempotent write (PATCH, PUT, DELETE): the
// client retried it, so after several transient failures any one attempt may have applied it.
// That is an unknown outcome, which reconciliation settles by reading the record.
func writeError(err error) error {
	var rt *datorama.RetryError
	if errors.As(err, &rt) && !errors.Is(err, datorama.ErrOutcomeUnknown) {
		return fmt.Errorf("%w: %w", datorama.ErrOutcomeUnknown, err)
	}
	return err
}

func jobsAnswer(jobs []datorama.Job, err error) (*Answer, error) {
	if err != nil {
		return nil, err
	}
	a := &Answer{Sent: true, Jobs: jobs}
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, j := range jobs {
		if i > 0 {
			buf.WriteByte(',')
		}
		if len(j.Raw) > 0 {
			buf.Write(j.Raw)
		} else {
			b, _ := json.Marshal(j)
			buf.Write(b)
		}
	}
	buf.WriteByte(']')
	a.Body = bounded(buf.Bytes())
	return a, nil
}

func streamAnswer(st *datorama.Stream) *Answer {
	a := &Answer{Sent: true, Stream: st}
	if st != nil {
		a.Body = bounded(st.Raw)
	}
	return a
}

// bounded keeps an answer for the audit, replacing one too large with a note (a
// truncated JSON document would not be JSON).
func bounded(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	if len(b) > maxAnswerBody {
		out, _ := json.Marshal(map[string]any{"truncated": true, "bytes": len(b)})
		return out
	}
	if !json.Valid(b) {
		out, _ := json.Marshal(map[string]string{"text": string(b)})
		return out
	}
	return append(json.RawMessage(nil), b...)
}

func decodeObject(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decoding the patch: %w", err)
	}
	if m == nil {
		return nil, errors.New("the patch is not an object")
	}
	return m, nil
}

// MergePatch applies patch to doc as a JSON merge patch (RFC 7386): objects merge
// recursively, null removes a key, anything else replaces. Numbers keep their text.
func MergePatch(doc, patch []byte) (json.RawMessage, error) {
	var d, p any
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if len(bytes.TrimSpace(doc)) == 0 {
		d = map[string]any{}
	} else if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("current record: %w", err)
	}
	dec = json.NewDecoder(bytes.NewReader(patch))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("patch: %w", err)
	}
	out, err := json.Marshal(mergeValue(d, p))
	if err != nil {
		return nil, err
	}
	return out, nil
}

func mergeValue(doc, patch any) any {
	pm, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	dm, ok := doc.(map[string]any)
	if !ok {
		dm = map[string]any{}
	}
	for k, v := range pm {
		if v == nil {
			delete(dm, k)
			continue
		}
		dm[k] = mergeValue(dm[k], v)
	}
	return dm
}

// dryRunSender sends nothing: it describes each call to w. It is the whole stack of a
// dry run, so nothing below it (the audit, the API) ever runs.
type dryRunSender struct {
	w io.Writer
}

func (d *dryRunSender) Send(_ context.Context, calls []*Call) []Result {
	out := make([]Result, len(calls))
	for i, c := range calls {
		if d.w != nil {
			m, p := c.Endpoint()
			fmt.Fprintf(d.w, "would send %s %s %s\n", m, p, clipBody(c.RequestBody()))
		}
		out[i] = Result{Answer: &Answer{Sent: false}}
	}
	return out
}

func clipBody(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
