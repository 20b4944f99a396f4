package datorama

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/drextract/drextract/clock"
)

// call is one logical API request, which may take several attempts.
type call struct {
	kind   Kind
	method string
	route  route
	query  url.Values
	body   []byte // nil: no body
	accept string // "" means application/json
	ws     int64  // workspace for the gate when the path names none (Query API)
	// idempotent says resending the request after it may have reached the server is
	// harmless. Reads, PUT, PATCH (which sets fields) and DELETE are; process, rerun,
	// rerun-all and the creates are not.
	idempotent bool
	// goneOK makes a 404 that follows an attempt which may have taken effect a success:
	// a retried DELETE finds the record already gone.
	goneOK bool
	// maxBody bounds the answer's body; 0 means the default of the call's kind (see
	// bodyLimit).
	maxBody int64
}

// bodyLimit is the most bytes cl's answer may have.
func (cl *call) bodyLimit() int64 {
	switch {
	case cl.maxBody > 0:
		return cl.maxBody
	case cl.kind == Query:
		return maxQueryBody
	}
	return maxPlatformBody
}

// mutates reports whether the request changes state. Idempotent writes (PUT, PATCH,
// DELETE) are retried like reads, but when they fail after an attempt that may have
// reached the server, their error still says the outcome is unknown.
func (cl *call) mutates() bool {
	switch cl.method {
	case http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return !cl.idempotent
}

// failure classifies how an attempt went wrong.
type failure int

const (
	okay          failure = iota
	failTransport         // no complete answer: dial error, reset, timeout, EOF mid-body
	failStatus            // an answer with a non-2xx status
	failDecode            // a 2xx answer that cannot be read (HTML, malformed or truncated JSON)
	failPermanent         // nothing a retry can fix: TLS, bad URL, body too large, partial download
)

// outcome is what one attempt produced.
type outcome struct {
	status int // 0 when no answer arrived
	rate   Rate
	class  failure
	err    error
	sent   bool // the request was written completely: the server may have acted on it
}

// handler reads an answer's body into the caller's result and records failures in o.
// It runs inside the attempt, so a body that cannot be read is retried like any other
// transient failure.
type handler func(resp *http.Response, o *outcome, a *attemptInfo)

var errAttemptTimeout = errors.New("no answer within the attempt timeout")

// verdict is shouldRetry's decision.
type verdict int

const (
	vDone        verdict = iota // return the outcome (success or error)
	vRetry                      // transient: retry after a backoff; bounded by WithRetries
	vRateLimited                // 429: retry after the window reopens; bounded by maxRateLimited
	vQuota                      // 429 with no daily quota left: return a *QuotaError at once
)

type decision struct {
	verdict verdict
	reason  string
	// uncertain: a state-changing request may have taken effect; the error says so
	// (ErrOutcomeUnknown) instead of the request being resent.
	uncertain bool
}

// shouldRetry is the one place that decides what happens after an attempt. In order:
//
//   - success: done.
//   - the caller's context ended: done; nothing is retried for a caller that left.
//   - 429 Too Many Requests, any method: the API refuses before doing any work, so even
//     a process or rerun is safe to resend. If the daily quota header says 0 left, the
//     wait would be hours: return a *QuotaError instead.
//   - the request never left (dial error, connection refused or reset before the
//     request was written), any method: retry; the server cannot have acted on it.
//   - TLS/certificate errors, bad URLs, a redirect to another host, a body over the
//     size bound, a download that already wrote bytes the writer cannot take back:
//     done, retrying cannot help.
//   - 408, 500, 502, 503, 504: transient.
//   - other 4xx and other statuses: done; the request itself is wrong or refused.
//   - a transport failure after sending (reset, timeout, EOF mid-body): transient.
//   - a 2xx whose body is HTML or malformed/truncated JSON: transient.
//   - a transient failure of a request that is not idempotent (process, rerun,
//     rerun-all, create): done, marked uncertain. It may have reached the server, and
//     resending it could start the work twice; the caller reconciles from the job list.
//   - any other transient failure: retry.
func shouldRetry(ctx context.Context, cl *call, o *outcome) decision {
	if o.class == okay {
		return decision{verdict: vDone}
	}
	if ctx.Err() != nil {
		return decision{verdict: vDone, reason: "context done"}
	}
	if o.status == http.StatusTooManyRequests {
		if o.rate.Daily.HasRemaining && o.rate.Daily.Remaining == 0 {
			return decision{verdict: vQuota, reason: "daily quota exhausted"}
		}
		return decision{verdict: vRateLimited, reason: "429 Too Many Requests"}
	}
	if o.class == failTransport && !o.sent {
		return decision{verdict: vRetry, reason: "request not sent: " + o.err.Error()}
	}
	transient := false
	reason := ""
	switch o.class {
	case failStatus:
		switch o.status {
		case http.StatusRequestTimeout, http.StatusInternalServerError, http.StatusBadGateway,
			http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			transient, reason = true, fmt.Sprintf("status %d", o.status)
		}
	case failTransport:
		transient, reason = isTransientTransport(o.err), "transport: "+o.err.Error()
	case failDecode:
		transient, reason = true, "unreadable answer: "+o.err.Error()
	}
	if !transient {
		return decision{verdict: vDone}
	}
	if !cl.idempotent {
		return decision{verdict: vDone, reason: reason, uncertain: true}
	}
	return decision{verdict: vRetry, reason: reason}
}

// isTransientTransport reports whether a transport error may go away on its own. Most
// do (resets, timeouts, EOFs, refused connections); the exceptions are configuration
// errors that a retry cannot fix.
func isTransientTransport(err error) bool {
	var ue *url.Error
	if errors.As(err, &ue) {
		// url.Error claims to be a net.Error whatever it wraps; judge what it wraps.
		err = ue.Err
	}
	var (
		certErr     *tls.CertificateVerificationError
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalidCert x509.CertificateInvalidError
		recordErr   tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr),
		errors.As(err, &invalidCert), errors.As(err, &recordErr), errors.Is(err, errRedirectElsewhere),
		errors.Is(err, errTooManyRedirects):
		return false
	case errors.Is(err, errAttemptTimeout), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE):
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	// New admits only http and https base URLs and redirects stay on the same host and
	// scheme, so a request never reaches net/http with a scheme it cannot send.
	return !errors.Is(err, errTooManyRedirects) && !errors.Is(err, context.Canceled)
}

// backoff is the wait before the n-th retry (n ≥ 1): exponential from 500ms, capped at
// 30s, with equal jitter so that many clients do not retry in step.
func backoff(n int) time.Duration {
	d := 500 * time.Millisecond
	for i := 1; i < n && d < 30*time.Second; i++ {
		d *= 2
	}
	d = min(d, 30*time.Second)
	return d/2 + rand.N(d/2+1)
}

// maxRateWait caps a wait for a minute window. A minute window never reopens more than a
// minute ahead on the server's clock; anything longer is clock skew, and the bound on
// 429s in a row keeps trying.
const maxRateWait = 2 * time.Minute

// rateWait is how long to wait after the n-th 429 in a row when no gate does the
// waiting: until the window the headers name reopens (X-RateLimit-Reset, or the reset of
// the call's own bucket when it shows 0 remaining), else a backoff.
func rateWait(r Rate, k Kind, now time.Time, n int) time.Duration {
	at := r.RateLimitReset
	if b := r.Bucket(k); b.HasRemaining && b.Remaining == 0 && b.Reset.After(at) {
		at = b.Reset
	}
	if at.IsZero() || !at.After(now) {
		return backoff(n)
	}
	return min(at.Sub(now), maxRateWait)
}

// retryResetOf is when a refused call's window reopens, for *RateLimitError.
func retryResetOf(r Rate, k Kind) time.Time {
	if b := r.Bucket(k); b.HasRemaining && b.Remaining == 0 && b.Reset.After(r.RateLimitReset) {
		return b.Reset
	}
	return r.RateLimitReset
}

// send performs cl, attempt after attempt, until shouldRetry says done. handle reads a
// 2xx body; it is called once per attempt that got an answer.
func (c *Client) send(ctx context.Context, cl *call, handle handler) error {
	var transient, limited int
	mayHaveApplied := false
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s %s: %w", cl.method, cl.route.tmpl, err)
		}
		permit, err := c.acquire(ctx, cl, n)
		if err != nil {
			return fmt.Errorf("%s %s: %w", cl.method, cl.route.tmpl, err)
		}
		o := c.attempt(ctx, cl, n, permit, handle)
		if cl.goneOK && mayHaveApplied && o.status == http.StatusNotFound {
			return nil
		}
		earlier := mayHaveApplied
		if o.class != okay && o.sent {
			mayHaveApplied = true
		}
		if o.status != http.StatusTooManyRequests {
			limited = 0
		}
		d := shouldRetry(ctx, cl, &o)
		switch d.verdict {
		case vDone:
			if o.class == okay {
				return nil
			}
			if d.uncertain {
				c.log.WarnContext(ctx, "state-changing call failed after it may have reached the server; not resending",
					"method", cl.method, "path", cl.route.tmpl, "attempt", n, "reason", d.reason)
				return fmt.Errorf("%w: %w", ErrOutcomeUnknown, o.err)
			}
			if cl.mutates() && earlier {
				return fmt.Errorf("%w: %w", ErrOutcomeUnknown, o.err)
			}
			return o.err
		case vQuota:
			return fmt.Errorf("%s %s: %w", cl.method, cl.route.tmpl, &QuotaError{Reset: o.rate.DailyReset()})
		case vRateLimited:
			limited++
			if limited >= maxRateLimited {
				return &RateLimitError{Method: cl.method, PathTemplate: cl.route.tmpl, Attempts: limited,
					Rate: o.rate, Reset: retryResetOf(o.rate, cl.kind)}
			}
			if c.gate != nil {
				// The gate saw the 429 through Permit.Done; its next Acquire waits.
				c.log.DebugContext(ctx, "rate limited; the gate waits", "method", cl.method, "path", cl.route.tmpl, "attempt", n)
				continue
			}
			wait := rateWait(o.rate, cl.kind, c.api.Now(), limited) // the headers' resets are API time
			c.log.InfoContext(ctx, "rate limited; waiting for the window", "method", cl.method,
				"path", cl.route.tmpl, "attempt", n, "wait", wait)
			if err := clock.Sleep(ctx, c.clk, wait); err != nil {
				return fmt.Errorf("%s %s: waiting out a 429: %w", cl.method, cl.route.tmpl, err)
			}
		case vRetry:
			transient++
			if transient > c.maxRetries {
				err := error(&RetryError{Method: cl.method, PathTemplate: cl.route.tmpl, Attempts: n, Err: o.err})
				if cl.mutates() && mayHaveApplied {
					err = fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
				}
				return err
			}
			wait := backoff(transient)
			c.log.WarnContext(ctx, "transient failure; retrying", "method", cl.method, "path", cl.route.tmpl,
				"attempt", n, "reason", d.reason, "wait", wait)
			if err := clock.Sleep(ctx, c.clk, wait); err != nil {
				return fmt.Errorf("%s %s: backing off: %w", cl.method, cl.route.tmpl, err)
			}
		}
	}
}

// acquire asks the gate for attempt n; without a gate every attempt may go.
func (c *Client) acquire(ctx context.Context, cl *call, n int) (Permit, error) {
	if c.gate == nil {
		return noPermit{}, nil
	}
	ws := cl.ws
	if ws == 0 {
		ws = workspaceOf(ctx, cl.route)
	}
	return c.gate.Acquire(ctx, Call{Kind: cl.kind, Method: cl.method, PathTemplate: cl.route.tmpl, WorkspaceID: ws, Attempt: n})
}

// noPermit is the permit of the unlimited gate.
type noPermit struct{}

func (noPermit) Token() string                 { return "" }
func (noPermit) Fingerprint() string           { return "" }
func (noPermit) Done(int, Rate, time.Duration) {}

// attemptInfo is what a handler may need of its attempt: the token sent (to keep it out
// of error text) and the timer bounding the attempt in real time, which downloads push
// forward on every read so that it bounds silence rather than the length of the file.
type attemptInfo struct {
	token string
	t     *time.Timer
	d     time.Duration
}

func (a *attemptInfo) touch() { a.t.Reset(a.d) }

// attemptTimeout bounds one attempt of cl.
func (c *Client) attemptTimeout(cl *call) time.Duration {
	if cl.kind == Query {
		return c.qtimeout
	}
	return c.timeout
}

// attempt sends cl once and reports it to the permit and the observer, whatever happened.
func (c *Client) attempt(ctx context.Context, cl *call, n int, permit Permit, handle handler) outcome {
	token, fp := permit.Token(), permit.Fingerprint()
	if token == "" {
		token = c.token
	}
	if fp == "" {
		fp = Fingerprint(token)
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	limit := c.attemptTimeout(cl)
	timer := &attemptInfo{token: token, t: time.AfterFunc(limit, func() { cancel(errAttemptTimeout) }), d: limit}
	defer timer.t.Stop()

	var sent atomic.Bool
	trace := &httptrace.ClientTrace{WroteRequest: func(i httptrace.WroteRequestInfo) {
		if i.Err == nil {
			sent.Store(true)
		}
	}}
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	var o outcome
	start := c.clk.Now()
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(actx, trace), cl.method, c.url(cl.route.path, cl.query), body)
	if err != nil {
		o.class, o.err = failPermanent, fmt.Errorf("%s %s: building request: %w", cl.method, cl.route.tmpl, err)
	} else {
		req.Header.Set("Authorization", token)
		accept := cl.accept
		if accept == "" {
			accept = "application/json"
		}
		req.Header.Set("Accept", accept)
		if cl.body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("User-Agent", c.userAgent)
		if c.sandbox {
			req.Header.Set("sandbox-mode", "true")
		}
		sentAt := c.api.Host().Now()
		resp, err := c.hc.Do(req)
		if resp != nil {
			c.observeDate(ctx, resp.Header, sentAt)
		}
		if err != nil {
			o.class, o.err = failTransport, c.transportError(ctx, actx, cl, err, token)
			if !isTransientTransport(err) { // an error of the request itself, not the network
				o.class = failPermanent
			}
			if resp != nil {
				// A refused redirect: the redirect itself was answered, with rate headers.
				o.status, o.rate = resp.StatusCode, ParseRate(resp.Header)
			}
		} else {
			o.status = resp.StatusCode
			o.rate = ParseRate(resp.Header)
			if resp.StatusCode < 200 || resp.StatusCode > 299 {
				msg, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
				if len(msg) == maxErrorBody {
					// The read may have cut a token in two; drop what could be its first half.
					msg = msg[:len(msg)-min(len(msg), max(len(token), len(c.token)))]
				}
				o.class = failStatus
				o.err = &APIError{Status: resp.StatusCode, Method: cl.method, PathTemplate: cl.route.tmpl,
					Message: errorMessage(msg, token, c.token)}
			} else {
				handle(resp, &o, timer)
				if o.class == failTransport {
					o.err = c.transportError(ctx, actx, cl, o.err, token)
				}
			}
			resp.Body.Close()
		}
	}
	o.sent = sent.Load()
	latency := c.clk.Now().Sub(start)
	if c.gate == nil {
		// A gate gets the warnings with the rate (Permit.Done) and reports them itself,
		// throttled; logging them here too would say each one twice per call.
		for _, w := range o.rate.Warnings {
			c.log.WarnContext(ctx, "ignoring a rate header", "problem", w, "path", cl.route.tmpl)
		}
	}
	permit.Done(o.status, o.rate, latency)
	if c.observer != nil {
		rec := CallRecord{Time: start, Fingerprint: fp, Kind: cl.kind, Method: cl.method, PathTemplate: cl.route.tmpl,
			Path: cl.route.path, Status: o.status, Latency: latency, Rate: o.rate, Attempt: n, Ref: CallRefFrom(ctx)}
		if o.err != nil {
			rec.Err = c.scrub(o.err.Error(), token)
		}
		c.observer.ObserveCall(rec)
	}
	c.log.DebugContext(ctx, "datorama call", "method", cl.method, "path", cl.route.path, "status", o.status,
		"attempt", n, "token", fp, "latency", latency)
	return o
}

// observeDate feeds the API clock estimate with an answer's Date header (RFC 9110
// §6.6.1: whole seconds, GMT) and the host time its request was sent at; it is called as
// soon as the answer's headers arrived. An answer without a Date header is ignored; an
// unreadable one is ignored and logged once per client, by its length only, since an
// answer's headers are not ours to print.
func (c *Client) observeDate(ctx context.Context, h http.Header, sent time.Time) {
	received := c.api.Host().Now()
	v := h.Get("Date")
	if v == "" {
		return
	}
	date, err := http.ParseTime(v)
	if err != nil {
		if !c.badDate.Swap(true) {
			c.log.WarnContext(ctx, "ignoring an unreadable Date header; the API's clock is estimated from the others",
				"length", len(v))
		}
		return
	}
	c.api.Observe(sent, received, date, clock.DateResolution)
}

// transportError names a failed exchange. A timeout of the attempt is reported as
// errAttemptTimeout, not as the cancellation that implemented it, so that callers
// checking errors.Is(err, context.Canceled) see only their own cancellations.
func (c *Client) transportError(ctx, actx context.Context, cl *call, err error, token string) error {
	if ctx.Err() == nil && errors.Is(context.Cause(actx), errAttemptTimeout) {
		return fmt.Errorf("%s %s: %w (%s)", cl.method, cl.route.tmpl, errAttemptTimeout, c.attemptTimeout(cl))
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w", cl.method, cl.route.tmpl, ctx.Err())
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		// url.Error repeats the whole URL; the template says the same more briefly.
		err = ue.Err
	}
	return fmt.Errorf("%s %s: %w", cl.method, cl.route.tmpl, err)
}

// snippet is the start of a body for an error message: token removed before it is cut,
// so that no part of a token survives the cut.
func (c *Client) snippet(body []byte, token string) string {
	const n = 80
	// Any token overlapping the first n bytes lies wholly inside head.
	head := c.scrub(string(body[:min(len(body), n+len(token)+len(c.token))]), token)
	return clean(cutUTF8(head, n), n)
}

// scrub removes any token from s: the attempt's and the client's own.
func (c *Client) scrub(s, token string) string {
	for _, t := range []string{token, c.token} {
		if t != "" {
			s = strings.ReplaceAll(s, t, "[token]")
		}
	}
	return s
}

// jsonHandler reads a 2xx JSON body, bounded by bodyLimit, and hands it to decode. A
// body that is HTML, or that decode cannot read, fails the attempt as unreadable (a
// transient failure); one whose records decode refuses (an impossible record, a repeated
// id) fails a read for good, since the same request gets the same records.
func (c *Client) jsonHandler(cl *call, decode func(body []byte) error) handler {
	return func(resp *http.Response, o *outcome, a *attemptInfo) {
		limit := cl.bodyLimit()
		body, err := readBounded(resp.Body, resp.ContentLength, limit)
		if err != nil {
			var tl *BodyTooLargeError
			if errors.As(err, &tl) {
				tl.Method, tl.PathTemplate = cl.method, cl.route.tmpl
				o.class, o.err = failPermanent, tl
				return
			}
			o.class, o.err = failTransport, fmt.Errorf("reading the answer: %w", err)
			return
		}
		err = checkJSONAnswer(resp.Header, body)
		if err == nil {
			err = decode(body)
		}
		if err == nil {
			return
		}
		de := &DecodeError{Status: resp.StatusCode, Method: cl.method, PathTemplate: cl.route.tmpl, Err: err}
		o.class, o.err = failDecode, de
		if re := (*RecordError)(nil); errors.As(err, &re) {
			re.scrub(a.token, c.token)
		}
		if refused(err) {
			if !cl.mutates() {
				o.class = failPermanent
			}
			return
		}
		de.Snippet = c.snippet(body, a.token)
	}
}

// readBounded reads a body of at most limit bytes. A body announced larger is refused
// unread; one of known length is read into one buffer of that length, so decoding works
// on the only copy there is.
func readBounded(r io.Reader, contentLength, limit int64) ([]byte, error) {
	if contentLength > limit {
		return nil, &BodyTooLargeError{Limit: limit, Size: contentLength}
	}
	if contentLength >= 0 {
		buf := make([]byte, contentLength)
		if _, err := io.ReadFull(r, buf); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		return buf, nil
	}
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, &BodyTooLargeError{Limit: limit, Size: -1}
	}
	return body, nil
}

var errHTMLAnswer = errors.New("an HTML page instead of JSON")

// checkJSONAnswer rejects an HTML error page, whatever its Content-Type says.
func checkJSONAnswer(h http.Header, body []byte) error {
	if looksHTML(body) {
		return errHTMLAnswer
	}
	if mt, _, err := mime.ParseMediaType(h.Get("Content-Type")); err == nil && mt == "text/html" {
		return errHTMLAnswer
	}
	return nil
}

// doJSON performs cl and decodes its 2xx answer with decode.
func (c *Client) doJSON(ctx context.Context, cl *call, decode func(body []byte) error) error {
	return c.send(ctx, cl, c.jsonHandler(cl, decode))
}

// rewinder is a writer a failed download can be taken back from, such as *os.File.
type rewinder interface {
	io.Seeker
	Truncate(size int64) error
}

// doDownload performs cl and streams its 2xx body into w. A failure before any byte was
// written is retried like any GET; after bytes were written it is retried only when w
// can be rewound (a rewinder), else it ends the call with the count written so far.
func (c *Client) doDownload(ctx context.Context, cl *call, w io.Writer) (int64, error) {
	var written int64
	var origin int64 = -1
	if rw, ok := w.(rewinder); ok {
		if pos, err := rw.Seek(0, io.SeekCurrent); err == nil {
			origin = pos
		}
	}
	err := c.send(ctx, cl, func(resp *http.Response, o *outcome, a *attemptInfo) {
		if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err == nil && mt == "text/html" {
			head, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			o.class, o.err = failDecode, &DecodeError{Status: resp.StatusCode, Method: cl.method,
				PathTemplate: cl.route.tmpl, Err: errHTMLAnswer, Snippet: c.snippet(head, a.token)}
			return
		}
		cw := &countingWriter{w: w}
		_, err := io.Copy(cw, &touchReader{r: resp.Body, a: a})
		written = cw.n
		switch {
		case err == nil:
			return
		case cw.err != nil:
			o.class, o.err = failPermanent, fmt.Errorf("%s %s: writing the download: %w", cl.method, cl.route.tmpl, cw.err)
			return
		}
		o.class, o.err = failTransport, fmt.Errorf("reading the download after %d bytes: %w", cw.n, err)
		if cw.n == 0 {
			return
		}
		rw, ok := w.(rewinder)
		if !ok || origin < 0 {
			o.class = failPermanent
			return
		}
		if _, serr := rw.Seek(origin, io.SeekStart); serr != nil {
			o.class = failPermanent
			return
		}
		if terr := rw.Truncate(origin); terr != nil {
			o.class = failPermanent
			return
		}
		written = 0
	})
	return written, err
}

type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil {
		c.err = err
	}
	return n, err
}

// touchReader pushes the attempt timer forward on every read that made progress.
type touchReader struct {
	r io.Reader
	a *attemptInfo
}

func (t *touchReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.a.touch()
	}
	return n, err
}
