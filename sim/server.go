package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drextract/drextract/clock"
)

// Sim is the simulator: an http.Handler serving the whole API plus /_sim/. It is safe
// for concurrent use; requests are applied one at a time under one lock (except for the
// real-time wait of a slow fault, which holds no lock).
type Sim struct {
	opts Options
	clk  clock.Clock
	log  *slog.Logger
	lim  limits
	api  *http.ServeMux
	ctl  *http.ServeMux

	mu     sync.Mutex
	st     *State
	byTok  map[string]*token
	faults faultState
	calls  callCounter
}

// New generates the account of o.Seed as of o.Clock's Now and returns the simulator.
// The same options and the same clock time give byte-identical truth.
func New(o Options) *Sim {
	o = o.withDefaults()
	s := &Sim{
		opts: o,
		clk:  o.Clock,
		log:  o.Logger.With("component", "sim"),
		lim:  limits{minute: [2]int{o.PlatformLimit, o.QueryLimit}, daily: o.DailyQuota},
	}
	s.st = generate(o, o.Clock.Now().UnixMilli())
	s.byTok = make(map[string]*token, len(s.st.tokens))
	for _, t := range s.st.tokens {
		s.byTok[t.secret] = t
	}
	s.faults = newFaultState(o.Faults, o.Seed)
	s.calls.reset()
	s.routes()
	s.log.Debug("account generated", "workspaces", len(s.st.workspaces), "streams", len(s.st.streams), "jobs", len(s.st.jobs))
	return s
}

// Tokens returns the user tokens, token 1 first. Token 1 sees every workspace.
func (s *Sim) Tokens() []string {
	out := make([]string, len(s.st.tokens))
	for i, t := range s.st.tokens {
		out[i] = t.secret
	}
	return out
}

// Now returns the simulator's current time.
func (s *Sim) Now() time.Time { return s.clk.Now() }

// Advance moves the simulator's clock forward by d when it is a *clock.Manual or a
// *clock.Offset; with any other clock it does nothing (and says so in the log). Jobs and
// scheduled runs catch up on the next request.
func (s *Sim) Advance(d time.Duration) {
	switch c := s.clk.(type) {
	case *clock.Manual:
		c.Advance(d)
	case *clock.Offset:
		c.Advance(d)
	default:
		s.log.Warn("advance ignored: the clock cannot be advanced", "clock", fmt.Sprintf("%T", s.clk))
	}
}

// SetFaults replaces the fault configuration and restarts the fault generator.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = newFaultState(f.withDefaults(), s.opts.Seed)
}

// Faults returns the current fault configuration.
func (s *Sim) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.f
}

// Mutate runs f on the account under the simulator's lock, after catching up to Now.
// f must not keep the State.
func (s *Sim) Mutate(f func(*State)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUp()
	f(s.st)
}

// RunStreams starts a scheduled-style run (today's data) on each listed live stream now,
// as the daily schedule would. Unknown or deleted ids are skipped.
func (s *Sim) RunStreams(ids []int64) {
	s.Mutate(func(st *State) {
		for _, id := range ids {
			st.RunNow(id)
		}
	})
}

// catchUp applies every event up to the clock's Now and returns Now in epoch ms.
// Callers hold s.mu.
func (s *Sim) catchUp() int64 {
	s.st.advanceTo(s.clk.Now().UnixMilli())
	return s.st.now
}

// ServeHTTP serves the API and, under /_sim/, the controls (no token, never limited or
// counted).
func (s *Sim) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_sim/") || r.URL.Path == "/_sim" {
		w.Header().Set("Date", httpDate(s.clk.Now().UnixMilli()))
		s.ctl.ServeHTTP(w, r)
		return
	}
	// A path that is not clean (//, /./, /../) would get the mux's own redirect, without
	// auth, rate headers or counting: the simulator answers it as an unknown endpoint.
	if h, pattern := s.api.Handler(r); pattern == "" || r.URL.Path != path.Clean(r.URL.Path) {
		s.unmatched(w, r, h)
		return
	}
	s.api.ServeHTTP(w, r)
}

// call is one API request on its way through the pipeline, and the answer it builds.
type call struct {
	s      *Sim
	st     *State
	r      *http.Request
	tok    *token
	label  string
	body   []byte
	now    int64
	fault  string // the drawn fault, for the kinds a handler applies (repeat, emptypage, queryerror)
	hit    bool   // the handler applied the fault
	status int
	header http.Header
	out    []byte
}

type handlerFunc func(*call)

// endpoint wraps a handler in the pipeline: auth, rate limits, faults, counting.
func (s *Sim) endpoint(label string, kind int, mutating bool, fn handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.serveAPI(w, r, label, kind, mutating, fn)
	})
}

// unmatched answers a request no endpoint takes, through the pipeline; h is the mux's
// handler for it, which tells whether the path exists with another method (405).
func (s *Sim) unmatched(w http.ResponseWriter, r *http.Request, h http.Handler) {
	capture := &statusWriter{h: http.Header{}}
	h.ServeHTTP(capture, r)
	status := capture.status
	if status == 0 {
		status = http.StatusNotFound
	}
	kind := kindPlatform
	if strings.HasPrefix(r.URL.Path, "/v1/query") {
		kind = kindQuery
	}
	s.serveAPI(w, r, "unmatched", kind, false, func(c *call) {
		if status == http.StatusMethodNotAllowed {
			c.header.Set("Allow", capture.h.Get("Allow"))
			c.errorf(status, "Method %s is not allowed on %s", r.Method, r.URL.Path)
			return
		}
		c.errorf(http.StatusNotFound, "No such endpoint: %s %s", r.Method, r.URL.Path)
	})
}

type statusWriter struct {
	h      http.Header
	status int
}

func (w *statusWriter) Header() http.Header         { return w.h }
func (w *statusWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *statusWriter) WriteHeader(code int)        { w.status = code }

// authToken returns the token of the Authorization header: bare, as the API wants, or
// leniently after "Bearer ".
func authToken(r *http.Request) (secret string, bearer bool) {
	v := strings.TrimSpace(r.Header.Get("Authorization"))
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:]), true
	}
	return v, false
}

const maxBody = 16 << 20

func (s *Sim) serveAPI(w http.ResponseWriter, r *http.Request, label string, kind int, mutating bool, fn handlerFunc) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	secret, bearer := authToken(r)

	s.mu.Lock()
	now := s.catchUp()
	c := &call{s: s, st: s.st, r: r, label: label, body: body, now: now, header: http.Header{}}
	// Every answer, 429s and errors included, carries the simulator's own time, as an
	// origin server with a clock does (RFC 9110 §6.6.1); net/http would stamp the host's.
	c.header.Set("Date", httpDate(now))
	tok := s.byTok[secret]
	c.tok = tok
	fault := ""
	refused := false
	switch {
	case tok == nil:
		if secret == "" {
			c.errorf(http.StatusUnauthorized, "Missing Authorization header")
		} else {
			c.errorf(http.StatusUnauthorized, "Invalid token")
		}
		setRateHeaders(c.header, nil, s.lim, now, kind, false)
	case !tok.rate.take(s.lim, kind, now):
		refused = true
		c.tooManyRequests()
		setRateHeaders(c.header, &tok.rate, s.lim, now, kind, true)
	default:
		if !(mutating && s.faults.f.OnlyReads) {
			fault = s.faults.draw(r.URL.Path)
		}
		switch fault {
		case FaultStorm429:
			tok.rate.refund(kind)
			tok.rate.exhaust(s.lim, kind, now)
			refused = true
			c.tooManyRequests()
		case FaultHTTP500, FaultHTTP502, FaultHTTP503:
			code, _ := strconv.Atoi(strings.TrimPrefix(fault, "http"))
			c.errorf(code, "%s", http.StatusText(code))
		case FaultHTML:
			c.status = http.StatusOK
			c.header.Set("Content-Type", "text/html; charset=utf-8")
			c.out = []byte(htmlErrorPage)
		default:
			switch {
			case err != nil:
				c.errorf(http.StatusBadRequest, "Reading the request body: %v", err)
			default:
				c.fault = fault
				fn(c)
				if c.status == http.StatusOK && isHostile(fault) {
					c.out, c.hit = spoilListing(fault, label, c.out, s.faults.f.HugePageBytes)
				}
			}
		}
		if !refused && c.status >= 400 && !s.opts.CountFailedCalls {
			tok.rate.refund(kind)
		}
		setRateHeaders(c.header, &tok.rate, s.lim, now, kind, refused)
	}

	// Faults that spoil the answer on its way out.
	post := ""
	switch fault {
	case FaultSlow:
		post = fault
	case FaultReset, FaultTruncated, FaultMalformed:
		if c.status < 300 && len(c.out) >= 2 {
			post = fault
		}
	case FaultStorm429, FaultHTTP500, FaultHTTP502, FaultHTTP503, FaultHTML:
		post = fault // already applied
	default:
		if c.hit {
			post = fault
		}
	}
	switch post {
	case FaultTruncated:
		c.out = c.out[:len(c.out)/2]
	case FaultMalformed:
		c.out = append([]byte{c.out[0], ','}, c.out[1:]...)
	}
	if c.status == 0 {
		c.status = http.StatusOK
	}
	s.calls.record(c, tok, post, bearer, r.Header.Get("sandbox-mode") != "")
	if post != "" {
		s.log.Debug("fault injected", "fault", post, "endpoint", label)
	}
	delay := s.faults.f.SlowDelay
	s.mu.Unlock()

	switch post {
	case FaultSlow:
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	case FaultReset:
		resetMidBody(w, c)
		return
	}
	for k, v := range c.header {
		w.Header()[k] = v
	}
	if c.status != http.StatusNoContent {
		w.Header().Set("Content-Length", strconv.Itoa(len(c.out)))
	}
	w.WriteHeader(c.status)
	if len(c.out) > 0 && r.Method != http.MethodHead {
		_, _ = w.Write(c.out)
	}
}

// httpDate formats epoch ms as an HTTP Date header: IMF-fixdate, whole seconds, GMT.
func httpDate(ms int64) string { return time.UnixMilli(ms).UTC().Format(http.TimeFormat) }

// resetMidBody sends the status line, the headers (announcing the whole body) and half
// of the body, then resets the connection.
func resetMidBody(w http.ResponseWriter, c *call) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		for k, v := range c.header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(c.out)))
		w.WriteHeader(c.status)
		_, _ = w.Write(c.out[:len(c.out)/2])
		panic(http.ErrAbortHandler)
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", c.status, http.StatusText(c.status))
	c.header.Set("Content-Length", strconv.Itoa(len(c.out)))
	_ = c.header.Write(&b)
	b.WriteString("\r\n")
	b.Write(c.out[:len(c.out)/2])
	_, _ = buf.Write(b.Bytes())
	_ = buf.Flush()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close with RST, not FIN
	}
	_ = conn.Close()
}

const htmlErrorPage = `<!DOCTYPE html>
<html><head><title>502 Bad Gateway</title></head>
<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>
`

// Answer helpers.

func (c *call) json(status int, b []byte) {
	c.status = status
	c.header.Set("Content-Type", "application/json")
	c.out = b
}

func (c *call) errorf(status int, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	c.status = status
	if c.s.opts.ErrorBody == "text" {
		c.header.Set("Content-Type", "text/plain; charset=utf-8")
		c.out = []byte(msg + "\n")
		return
	}
	c.header.Set("Content-Type", "application/json")
	b := append([]byte(nil), `{"errors":[`...)
	b = appendString(b, msg)
	c.out = append(b, ']', '}')
}

func (c *call) tooManyRequests() { c.errorf(http.StatusTooManyRequests, "Too Many Requests") }

func (c *call) noContent() {
	c.status = http.StatusNoContent
	c.out = nil
}

// decode reads the request body as JSON into v, answering 400 on failure.
func (c *call) decode(v any) bool {
	if len(bytes.TrimSpace(c.body)) == 0 {
		c.errorf(http.StatusBadRequest, "A JSON request body is required")
		return false
	}
	if err := json.Unmarshal(c.body, v); err != nil {
		c.errorf(http.StatusBadRequest, "Invalid JSON body: %v", err)
		return false
	}
	return true
}

func (c *call) viewer() bool { return c.tok != nil && c.tok.viewer }

// pathID parses a numeric path value; a non-number answers 404 like an unknown id.
func (c *call) pathID(name string) (int64, bool) {
	v := c.r.PathValue(name)
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id <= 0 {
		c.errorf(http.StatusNotFound, "Not found: %s %q", name, v)
		return 0, false
	}
	return id, true
}
