package datorama

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
)

// testToken is recognisable so tests can grep every output for it.
const testToken = "dato-api-SECRET-7f3a9c1e-4bad-beef-1234567890ab"

var testStart = time.Date(2021, 7, 13, 12, 20, 0, 0, time.UTC)

// serve mounts h under /base on a real loopback server and returns the client base URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/base/", http.StripPrefix("/base", h))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/base"
}

// testEnv is a client wired to a manual clock, a log buffer, a counting gate (when
// asked) and a call recorder.
type testEnv struct {
	c    *Client
	clk  *clock.Manual
	logs *syncBuffer
	rec  *recorder
	gate *countingGate
}

type envOption func(*envConfig)

type envConfig struct {
	gate  bool
	opts  []Option
	auto  bool
	token string
	clk   *clock.Manual
}

func withCountingGate() envOption    { return func(c *envConfig) { c.gate = true } }
func withOpts(o ...Option) envOption { return func(c *envConfig) { c.opts = append(c.opts, o...) } }
func withoutAutoAdvance() envOption  { return func(c *envConfig) { c.auto = false } }
func withToken(tok string) envOption { return func(c *envConfig) { c.token = tok } }

// withClock makes the client use clk (shared with a simulator, say) instead of its own.
func withClock(clk *clock.Manual) envOption { return func(c *envConfig) { c.clk = clk } }

func newEnv(t *testing.T, base string, eo ...envOption) *testEnv {
	t.Helper()
	cfg := envConfig{auto: true, token: testToken}
	for _, o := range eo {
		o(&cfg)
	}
	if cfg.clk == nil {
		cfg.clk = clock.NewManual(testStart)
	}
	env := &testEnv{clk: cfg.clk, logs: &syncBuffer{}, rec: &recorder{}}
	if cfg.auto {
		stop := env.clk.AutoAdvance(2 * time.Millisecond)
		t.Cleanup(stop)
	}
	log := slog.New(slog.NewTextHandler(env.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := []Option{WithClock(env.clk), WithLogger(log), WithObserver(env.rec)}
	if cfg.gate {
		env.gate = &countingGate{}
		opts = append(opts, WithGate(env.gate))
	}
	opts = append(opts, cfg.opts...)
	c, err := New(base, cfg.token, opts...)
	if err != nil {
		t.Fatal(err)
	}
	env.c = c
	t.Cleanup(func() {
		if strings.Contains(env.logs.String(), cfg.token) {
			t.Errorf("the token appeared in the logs")
		}
		for _, r := range env.rec.all() {
			if strings.Contains(r.Err, cfg.token) || strings.Contains(r.Path, cfg.token) {
				t.Errorf("the token appeared in a call record: %+v", r)
			}
		}
	})
	return env
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// countingGate is a real Gate that lets everything through and remembers what it saw.
// token, when set, is what its permits hand the client.
type countingGate struct {
	mu       sync.Mutex
	token    string
	calls    []Call
	statuses []int
	rates    []Rate
}

func (g *countingGate) Acquire(ctx context.Context, c Call) (Permit, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls = append(g.calls, c)
	return &countingPermit{g: g}, nil
}

func (g *countingGate) seen() ([]Call, []int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Call(nil), g.calls...), append([]int(nil), g.statuses...)
}

type countingPermit struct {
	g    *countingGate
	done atomic.Bool
}

func (p *countingPermit) Token() string { return p.g.token }
func (p *countingPermit) Fingerprint() string {
	if p.g.token == "" {
		return ""
	}
	return Fingerprint(p.g.token)
}

func (p *countingPermit) Done(status int, r Rate, _ time.Duration) {
	if p.done.Swap(true) {
		panic("Permit.Done called twice")
	}
	p.g.mu.Lock()
	defer p.g.mu.Unlock()
	p.g.statuses = append(p.g.statuses, status)
	p.g.rates = append(p.g.rates, r)
}

// recorder is an Observer that keeps every CallRecord.
type recorder struct {
	mu   sync.Mutex
	recs []CallRecord
}

func (r *recorder) ObserveCall(c CallRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recs = append(r.recs, c)
}

func (r *recorder) all() []CallRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]CallRecord(nil), r.recs...)
}

func (r *recorder) statuses() []int {
	var out []int
	for _, c := range r.all() {
		out = append(out, c.Status)
	}
	return out
}

// script answers the n-th request with steps[n], repeating the last step, and counts
// requests.
type script struct {
	steps []http.HandlerFunc
	n     atomic.Int32
	mu    sync.Mutex
	reqs  []recordedRequest
}

type recordedRequest struct {
	Method, Path, Query string
	Header              http.Header
	Body                []byte
}

func newScript(steps ...http.HandlerFunc) *script { return &script{steps: steps} }

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body bytes.Buffer
	_, _ = body.ReadFrom(r.Body)
	s.mu.Lock()
	s.reqs = append(s.reqs, recordedRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body.Bytes()})
	s.mu.Unlock()
	i := int(s.n.Add(1)) - 1
	s.steps[min(i, len(s.steps)-1)](w, r)
}

func (s *script) count() int { return int(s.n.Load()) }

func (s *script) requests() []recordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recordedRequest(nil), s.reqs...)
}

// Steps.

func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func answerWith(status int, header map[string]string, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header().Set(k, v)
		}
		if w.Header().Get("Content-Type") == "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// hangUp closes the connection without answering, after reading the request.
func hangUp(w http.ResponseWriter, r *http.Request) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("no hijacker")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

// cutBody promises more bytes than it sends; the server then drops the connection.
func cutBody(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", "100000")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(body))
		w.(http.Flusher).Flush()
	}
}

func htmlPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"))
}

// stall answers only after the client has gone.
func stall(w http.ResponseWriter, r *http.Request) {
	<-r.Context().Done()
}

func urlQuery(raw string) (url.Values, error) { return url.ParseQuery(raw) }
