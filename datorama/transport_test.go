package datorama

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const twoWorkspaces = `[{"id": 27405, "name": "NA - Paid Media"}, {"id": 70157, "name": "EU - Brand"}]`

func TestRequestHeaders(t *testing.T) {
	tests := []struct {
		name    string
		opts    []Option
		call    func(c *Client) error
		method  string
		path    string
		query   string
		body    string
		sandbox bool
		ua      string
	}{
		{
			name:   "GET with defaults",
			call:   func(c *Client) error { _, err := c.Workspaces.List(t.Context()); return err },
			method: "GET", path: "/v1/workspaces", ua: DefaultUserAgent,
		},
		{
			name:   "POST with body, sandbox and user agent",
			opts:   []Option{WithSandbox(true), WithUserAgent("drextract-test/1")},
			call:   func(c *Client) error { _, err := c.Jobs.Page(t.Context(), 3973838, 100, 1); return err },
			method: "POST", path: "/v1/data-streams/api/3973838/stats", body: `{"pageNumber":1,"pageSize":100}`,
			sandbox: true, ua: "drextract-test/1",
		},
		{
			name: "query parameters",
			call: func(c *Client) error {
				_, err := c.Metadata.Dimensions(t.Context(), 27405, "dimensionType")
				return err
			},
			method: "GET", path: "/v1/workspaces/27405/dimensions", query: "type=dimensionType", ua: DefaultUserAgent,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answerFor := map[string]string{
				"/v1/workspaces":                     twoWorkspaces,
				"/v1/data-streams/api/3973838/stats": `[]`,
				"/v1/workspaces/27405/dimensions":    `{"A": {"displayName": "a"}}`,
			}
			s := newScript(func(w http.ResponseWriter, r *http.Request) { answer(200, answerFor[r.URL.Path])(w, r) })
			env := newEnv(t, serve(t, s), withOpts(tt.opts...))
			if err := tt.call(env.c); err != nil {
				t.Fatal(err)
			}
			reqs := s.requests()
			if len(reqs) != 1 {
				t.Fatalf("%d requests", len(reqs))
			}
			r := reqs[0]
			if r.Method != tt.method || r.Path != tt.path || r.Query != tt.query {
				t.Errorf("request %s %s?%s, want %s %s?%s", r.Method, r.Path, r.Query, tt.method, tt.path, tt.query)
			}
			if got := r.Header.Get("Authorization"); got != testToken {
				t.Errorf("Authorization %q, want the bare token", got)
			}
			if got := r.Header.Get("Accept"); got != "application/json" {
				t.Errorf("Accept %q", got)
			}
			if got, want := r.Header.Get("Content-Type"), map[bool]string{true: "application/json"}[tt.body != ""]; got != want {
				t.Errorf("Content-Type %q, want %q", got, want)
			}
			if got := r.Header.Get("User-Agent"); got != tt.ua {
				t.Errorf("User-Agent %q, want %q", got, tt.ua)
			}
			if got, want := r.Header.Get("sandbox-mode"), map[bool]string{true: "true"}[tt.sandbox]; got != want {
				t.Errorf("sandbox-mode %q, want %q", got, want)
			}
			if tt.body != "" {
				assertJSONEqual(t, r.Body, []byte(tt.body))
			}
		})
	}
}

func TestPermitTokenIsSent(t *testing.T) {
	s := newScript(answer(200, twoWorkspaces))
	env := newEnv(t, serve(t, s), withCountingGate())
	env.gate.token = "dato-api-other-token"
	if _, err := env.c.Workspaces.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.requests()[0].Header.Get("Authorization"); got != "dato-api-other-token" {
		t.Errorf("Authorization %q, want the permit's token", got)
	}
	if got := env.rec.all()[0].Fingerprint; got != Fingerprint("dato-api-other-token") {
		t.Errorf("call record fingerprint %q", got)
	}
}

// TestTransientFailuresAreRetried: each transient fault once, then a good answer. The
// good answer is returned, and the gate and the observer see both attempts.
func TestTransientFailuresAreRetried(t *testing.T) {
	tests := []struct {
		name        string
		fault       http.HandlerFunc
		firstStatus int // what Permit.Done heard about the failed attempt
		opts        []Option
	}{
		{"500", answer(500, `{"errors":["Internal Server Error"]}`), 500, nil},
		{"502", answer(502, `bad gateway`), 502, nil},
		{"503", answer(503, `{"errors":["unavailable"]}`), 503, nil},
		{"504", answer(504, ``), 504, nil},
		{"408", answer(408, ``), 408, nil},
		{"connection reset before the answer", hangUp, 0, nil},
		{"connection lost mid-body", cutBody(`[{"id": 27405, "name": "NA`), 200, nil},
		{"HTML page with 200", htmlPage, 200, nil},
		{"HTML body labelled JSON", answer(200, `<html><body>Service temporarily unavailable</body></html>`), 200, nil},
		{"truncated JSON array", answer(200, `[{"id": 27405, "name": "NA - Paid Media"}, {"id": 70`), 200, nil},
		{"malformed JSON", answer(200, `[{"id": 27405,, }]`), 200, nil},
		{"null instead of a list", answer(200, `null`), 200, nil},
		{"empty body", answer(200, ``), 200, nil},
		// The stall ends when the attempt's timeout does; the timeout is long enough for
		// the good answer that follows to arrive on a loaded machine.
		{"timeout", stall, 0, []Option{WithTimeout(2 * time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(tt.fault, answer(200, twoWorkspaces))
			env := newEnv(t, serve(t, s), withCountingGate(), withOpts(tt.opts...))
			ws, err := env.c.Workspaces.List(t.Context())
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if len(ws) != 2 || ws[1].Name != "EU - Brand" {
				t.Errorf("got %+v, want the good answer", ws)
			}
			calls, statuses := env.gate.seen()
			if len(calls) != 2 || calls[0].Attempt != 1 || calls[1].Attempt != 2 {
				t.Errorf("gate saw %+v, want attempts 1 and 2", calls)
			}
			if !slices.Equal(statuses, []int{tt.firstStatus, 200}) {
				t.Errorf("Permit.Done statuses %v, want [%d 200]", statuses, tt.firstStatus)
			}
			if got := env.rec.statuses(); !slices.Equal(got, statuses) {
				t.Errorf("observer statuses %v, want %v", got, statuses)
			}
			if recs := env.rec.all(); recs[0].Err == "" || recs[1].Err != "" {
				t.Errorf("call records' errors: %q, %q", recs[0].Err, recs[1].Err)
			}
			if !strings.Contains(env.logs.String(), "level=WARN msg=\"transient failure; retrying\"") {
				t.Errorf("the retry was not logged at warn:\n%s", env.logs.String())
			}
		})
	}
}

func TestRetriesAreBounded(t *testing.T) {
	tests := []struct {
		name     string
		fault    http.HandlerFunc
		retries  int
		attempts int
		check    func(t *testing.T, err error)
	}{
		{"503 forever, 2 retries", answer(503, `{"errors":["down"]}`), 2, 3, func(t *testing.T, err error) {
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != 503 || ae.Message != "down" {
				t.Errorf("want the last *APIError inside, got %v", err)
			}
		}},
		{"truncated JSON forever, default retries", answer(200, `[{"id": 1}, {"id": 2`), -1, DefaultRetries + 1, func(t *testing.T, err error) {
			var de *DecodeError
			if !errors.As(err, &de) || de.Status != 200 {
				t.Errorf("want a *DecodeError inside, got %v", err)
			}
		}},
		{"resets forever, no retries", hangUp, 0, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(tt.fault)
			var opts []Option
			if tt.retries >= 0 {
				opts = append(opts, WithRetries(tt.retries))
			}
			env := newEnv(t, serve(t, s), withOpts(opts...))
			ws, err := env.c.Workspaces.List(t.Context())
			if err == nil || ws != nil {
				t.Fatalf("got %v, %v; want no result and an error", ws, err)
			}
			var re *RetryError
			if tt.retries != 0 && (!errors.As(err, &re) || re.Attempts != tt.attempts) {
				t.Errorf("want *RetryError after %d attempts, got %v", tt.attempts, err)
			}
			if s.count() != tt.attempts {
				t.Errorf("server saw %d requests, want %d", s.count(), tt.attempts)
			}
			if tt.check != nil {
				tt.check(t, err)
			}
		})
	}
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	tests := []struct {
		status int
		is     func(error) bool
	}{
		{400, nil},
		{401, IsUnauthorized},
		{403, IsForbidden},
		{404, IsNotFound},
		{409, nil},
		{422, nil},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.status), func(t *testing.T) {
			s := newScript(answer(tt.status, `{"errors":["no"]}`))
			env := newEnv(t, serve(t, s))
			_, err := env.c.Streams.Get(t.Context(), 42)
			var ae *APIError
			if !errors.As(err, &ae) || ae.Status != tt.status || ae.Method != "GET" || ae.PathTemplate != "/v1/data-streams/{id}" {
				t.Fatalf("want *APIError %d, got %v", tt.status, err)
			}
			if s.count() != 1 {
				t.Errorf("%d attempts, want 1", s.count())
			}
			if tt.is != nil && !tt.is(err) {
				t.Errorf("helper does not recognise %v", err)
			}
			for _, is := range []func(error) bool{IsNotFound, IsUnauthorized, IsForbidden, IsRateLimited} {
				if tt.is == nil && is(err) {
					t.Errorf("a %d matched a helper it should not", tt.status)
				}
			}
			if !strings.Contains(err.Error(), "stream 42") {
				t.Errorf("error lacks context: %v", err)
			}
		})
	}
}

// TestStateChangingCallsAreNotResent: a process that may have reached the server is not
// sent again; one refused by the rate limiter, or never sent, is.
func TestStateChangingCallsAreNotResent(t *testing.T) {
	jobs := `[{"id": 381868732, "status": "PENDING", "dataStartDate": "2021-06-04", "dataEndDate": "2021-06-13"}]`
	tests := []struct {
		name      string
		steps     []http.HandlerFunc
		requests  int
		ok        bool
		uncertain bool
	}{
		{"503", []http.HandlerFunc{answer(503, `{"errors":["busy"]}`), answer(200, jobs)}, 1, false, true},
		{"500", []http.HandlerFunc{answer(500, ``), answer(200, jobs)}, 1, false, true},
		{"reset after sending", []http.HandlerFunc{hangUp, answer(200, jobs)}, 1, false, true},
		{"unreadable 200", []http.HandlerFunc{answer(200, `[{"id": 3818`), answer(200, jobs)}, 1, false, true},
		{"400 is simply an error", []http.HandlerFunc{answer(400, `{"errors":["bad range"]}`)}, 1, false, false},
		{"429 is resent", []http.HandlerFunc{answer(429, `{"errors":["Too Many Requests"]}`), answer(200, jobs)}, 2, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(tt.steps...)
			env := newEnv(t, serve(t, s))
			got, err := env.c.Jobs.Process(t.Context(), 3973838, mustDate(t, "2021-06-04"), mustDate(t, "2021-06-13"))
			if s.count() != tt.requests {
				t.Errorf("server saw %d requests, want %d", s.count(), tt.requests)
			}
			if tt.ok {
				if err != nil || len(got) != 1 || got[0].ID != 381868732 {
					t.Fatalf("got %v, %v", got, err)
				}
				return
			}
			if err == nil {
				t.Fatal("want an error")
			}
			if errors.Is(err, ErrOutcomeUnknown) != tt.uncertain {
				t.Errorf("errors.Is(ErrOutcomeUnknown) = %v, want %v: %v", !tt.uncertain, tt.uncertain, err)
			}
		})
	}
}

// TestUnsentRequestIsRetried: a dial failure means the server never saw the request, so
// even a rerun is retried.
func TestUnsentRequestIsRetried(t *testing.T) {
	s := newScript(answer(200, `[{"id": 382100001, "status": "PENDING"}]`))
	base := serve(t, s)
	var dials atomic.Int32
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if dials.Add(1) == 1 {
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	env := newEnv(t, base, withCountingGate(), withOpts(WithHTTPClient(&http.Client{Transport: tr})))
	got, err := env.c.Jobs.Rerun(t.Context(), 3974201, []int64{377021020})
	if err != nil || len(got) != 1 {
		t.Fatalf("got %v, %v", got, err)
	}
	if s.count() != 1 {
		t.Errorf("server saw %d requests, want 1", s.count())
	}
	if _, statuses := env.gate.seen(); !slices.Equal(statuses, []int{0, 200}) {
		t.Errorf("gate statuses %v, want [0 200]", statuses)
	}
}

func rateHeaders(platformRemaining, dailyRemaining int, reset, dailyReset time.Time) map[string]string {
	ms := func(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }
	return map[string]string{
		HeaderPlatformLimit: "60", HeaderPlatformRemaining: strconv.Itoa(platformRemaining), HeaderPlatformReset: ms(reset),
		HeaderQueryLimit: "200", HeaderQueryRemaining: "200", HeaderQueryReset: ms(reset),
		HeaderDailyLimit: "20000", HeaderDailyRemaining: strconv.Itoa(dailyRemaining), HeaderDailyReset: ms(dailyReset),
		HeaderRateLimitReset: ms(reset), HeaderDailyQuotaRest: ms(dailyReset),
	}
}

// Test429WaitsForTheReset: without a gate, the client waits on its clock until the
// reset the 429 names, then sends the same request again and returns that answer.
func Test429WaitsForTheReset(t *testing.T) {
	reset := testStart.Add(40 * time.Second)
	dailyReset := time.Date(2021, 7, 14, 0, 0, 0, 0, time.UTC)
	var env *testEnv
	var sentAt []time.Time
	s := newScript(func(w http.ResponseWriter, r *http.Request) {
		now := env.clk.Now()
		sentAt = append(sentAt, now)
		w.Header().Set("Date", now.UTC().Format(http.TimeFormat)) // a server's clock agrees with its resets
		if now.Before(reset) {
			answerWith(429, rateHeaders(0, 18300, reset, dailyReset), `{"errors":["Too Many Requests"]}`)(w, r)
			return
		}
		answerWith(200, rateHeaders(59, 18299, reset.Add(time.Minute), dailyReset), `[{"id": 1, "name": "after the reset"}]`)(w, r)
	})
	env = newEnv(t, serve(t, s))
	ws, err := env.c.Workspaces.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(ws) != 1 || ws[0].Name != "after the reset" {
		t.Errorf("got %+v, want the retried answer", ws)
	}
	if len(sentAt) != 2 || !sentAt[0].Equal(testStart) || !sentAt[1].Equal(reset) {
		t.Errorf("requests sent at %v, want at %v and exactly at the reset %v", sentAt, testStart, reset)
	}
	if got := env.rec.statuses(); !slices.Equal(got, []int{429, 200}) {
		t.Errorf("observer statuses %v", got)
	}
}

func Test429WithNoDailyQuotaLeftIsAQuotaError(t *testing.T) {
	dailyReset := time.Date(2021, 7, 14, 0, 0, 0, 0, time.UTC)
	s := newScript(answerWith(429, rateHeaders(0, 0, testStart.Add(time.Minute), dailyReset), `{"errors":["Too Many Requests"]}`))
	env := newEnv(t, serve(t, s), withoutAutoAdvance())
	_, err := env.c.Workspaces.List(t.Context())
	var qe *QuotaError
	if !errors.Is(err, ErrQuotaExhausted) || !errors.As(err, &qe) || !qe.Reset.Equal(dailyReset) {
		t.Fatalf("want a *QuotaError resetting at %v, got %v", dailyReset, err)
	}
	if !IsRateLimited(err) || s.count() != 1 || !env.clk.Now().Equal(testStart) {
		t.Errorf("requests %d, clock %v: want one request and no wait", s.count(), env.clk.Now())
	}
}

func Test429StormEndsInARateLimitError(t *testing.T) {
	reset := testStart.Add(30 * time.Second)
	s := newScript(answerWith(429, map[string]string{HeaderRateLimitReset: strconv.FormatInt(reset.UnixMilli(), 10)}, "Too Many Requests"))
	env := newEnv(t, serve(t, s))
	_, err := env.c.Streams.List(t.Context(), 27405)
	var rl *RateLimitError
	if !errors.As(err, &rl) || rl.Attempts != maxRateLimited || !rl.Reset.Equal(reset) {
		t.Fatalf("want *RateLimitError after %d attempts, got %v", maxRateLimited, err)
	}
	if !IsRateLimited(err) || s.count() != maxRateLimited {
		t.Errorf("requests %d, want %d", s.count(), maxRateLimited)
	}
}

// Test429WithAGateDoesNotWaitTwice: the gate heard the 429 and does the waiting in its
// next Acquire; the client must not sleep on top of it. The clock never moves here, so
// a client that slept would hang until the test's deadline.
func Test429WithAGateDoesNotWaitTwice(t *testing.T) {
	reset := testStart.Add(time.Minute)
	s := newScript(answerWith(429, rateHeaders(0, 500, reset, reset.Add(time.Hour)), "Too Many Requests"), answer(200, twoWorkspaces))
	env := newEnv(t, serve(t, s), withCountingGate(), withoutAutoAdvance())
	done := make(chan error, 1)
	go func() { _, err := env.c.Workspaces.List(t.Context()); done <- err }()
	// The call ends, or the client starts a timer on its clock: it sleeps on top of the
	// gate. The deadline only bounds a hang of something else.
	deadline := time.Now().Add(time.Minute)
	for waiting := true; waiting; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			waiting = false
		default:
			if env.clk.Pending() > 0 {
				t.Fatal("the client set a timer on its clock after the gate heard the 429")
			}
			if time.Now().After(deadline) {
				t.Fatal("the call did not end")
			}
			time.Sleep(time.Millisecond)
		}
	}
	calls, statuses := env.gate.seen()
	if !slices.Equal(statuses, []int{429, 200}) || len(calls) != 2 {
		t.Errorf("gate saw %v %v", calls, statuses)
	}
	if got := env.gate.rates[0].RateLimitReset; !got.Equal(reset) {
		t.Errorf("the gate did not get the 429's headers: reset %v", got)
	}
	if !env.clk.Now().Equal(testStart) {
		t.Errorf("clock moved to %v", env.clk.Now())
	}
}

func Test429WithoutHeadersBacksOff(t *testing.T) {
	s := newScript(answer(429, "Too Many Requests"), answer(200, twoWorkspaces))
	env := newEnv(t, serve(t, s))
	if _, err := env.c.Workspaces.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	if waited := env.clk.Now().Sub(testStart); waited < 250*time.Millisecond || waited > 500*time.Millisecond {
		t.Errorf("waited %v, want a first backoff in [250ms, 500ms]", waited)
	}
}

func TestCancelDuringBackoff(t *testing.T) {
	s := newScript(answer(503, ``))
	env := newEnv(t, serve(t, s), withCountingGate(), withoutAutoAdvance())
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { _, err := env.c.Workspaces.List(ctx); errc <- err }()
	// Wait for the backoff's timer; the deadline only bounds a hang.
	deadline := time.Now().Add(time.Minute)
	for env.clk.Pending() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the client never started its backoff")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	err := <-errc
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if _, statuses := env.gate.seen(); !slices.Equal(statuses, []int{503}) {
		t.Errorf("statuses %v, want one attempt reported", statuses)
	}
}

func TestTimeoutIsNotACancellation(t *testing.T) {
	s := newScript(stall)
	env := newEnv(t, serve(t, s), withOpts(WithTimeout(20*time.Millisecond), WithRetries(0)))
	_, err := env.c.Workspaces.List(t.Context())
	if !errors.Is(err, errAttemptTimeout) || errors.Is(err, context.Canceled) {
		t.Fatalf("want an attempt timeout that is not context.Canceled, got %v", err)
	}
}

func TestAPIErrorMessages(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	tests := []struct {
		name, contentType, body string
		want                    string
	}{
		{"errors array", "application/json", `{"errors": ["Stream 5 not found"]}`, "Stream 5 not found"},
		{"several errors", "application/json", `{"errors": ["a", "b"]}`, "a; b"},
		{"errors objects", "application/json", `{"errors": [{"message": "unknown field Clicks", "field": "measurements"}]}`, "unknown field Clicks"},
		{"message property", "application/json", `{"message": "Forbidden workspace"}`, "Forbidden workspace"},
		{"text", "text/plain", "Workspace 9 is not permitted\n", "Workspace 9 is not permitted"},
		{"HTML", "text/html", "<html><head><title>x</title></head><body><h1>Not Found</h1></body></html>", "x Not Found"},
		{"huge body is bounded", "text/plain", huge, strings.Repeat("x", 300) + "…"},
		{"echoed token is removed", "application/json", `{"errors": ["token ` + testToken + ` is unknown"]}`, "token [token] is unknown"},
		{"empty", "application/json", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(answerWith(404, map[string]string{"Content-Type": tt.contentType}, tt.body))
			env := newEnv(t, serve(t, s))
			_, err := env.c.Workspaces.Get(t.Context(), 9)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("want *APIError, got %v", err)
			}
			if ae.Message != tt.want {
				t.Errorf("message %q, want %q", ae.Message, tt.want)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Error("the token is in the error")
			}
		})
	}
}

// TestTokenNeverLeaks: servers that echo the token in every kind of failure; the token
// appears in no error, log line or call record (newEnv's cleanup checks the last two).
func TestTokenNeverLeaks(t *testing.T) {
	echo := func(status int, contentType, format string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			answerWith(status, map[string]string{"Content-Type": contentType}, fmt.Sprintf(format, r.Header.Get("Authorization")))(w, r)
		}
	}
	tests := []struct {
		name  string
		fault http.HandlerFunc
	}{
		{"401 JSON", echo(401, "application/json", `{"errors":["unknown token %s"]}`)},
		{"400 text", echo(400, "text/plain", `bad token %s`)},
		{"200 HTML", echo(200, "text/html", `<html>%s</html>`)},
		{"200 truncated", echo(200, "application/json", `[{"id": 1, "name": "%s`)},
		{"200 token at the snippet cut", echo(200, "application/json", strings.Repeat(" ", 70)+`[{"id": "%s"}`)},
		{"500 long", echo(500, "text/plain", strings.Repeat("y", 299)+`%s`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, serve(t, newScript(tt.fault)), withOpts(WithRetries(1)))
			_, err := env.c.Workspaces.List(t.Context())
			if err == nil {
				t.Fatal("want an error")
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(err.Error(), testToken[:20]) {
				t.Errorf("the token leaked into the error: %v", err)
			}
		})
	}
}

func TestDownload(t *testing.T) {
	data := make([]byte, 1<<20)
	_, _ = rand.Read(data)
	file := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/zip")
		_, _ = w.Write(data)
	}
	cut := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/zip")
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		_, _ = w.Write(data[:len(data)/3])
		w.(http.Flusher).Flush()
	}
	t.Run("streams the body", func(t *testing.T) {
		s := newScript(file)
		env := newEnv(t, serve(t, s))
		var buf bytes.Buffer
		n, err := env.c.Jobs.Download(t.Context(), 381868732, &buf)
		if err != nil || n != int64(len(data)) || !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("n=%d err=%v, equal=%v", n, err, bytes.Equal(buf.Bytes(), data))
		}
		r := s.requests()[0]
		if r.Path != "/v1/data-stream-stats/api/381868732/download" || r.Header.Get("Accept") != "*/*" {
			t.Errorf("request %s Accept=%q", r.Path, r.Header.Get("Accept"))
		}
	})
	t.Run("HTML error page is retried, not saved", func(t *testing.T) {
		s := newScript(htmlPage, file)
		env := newEnv(t, serve(t, s))
		var buf bytes.Buffer
		n, err := env.c.Jobs.DownloadTotalConnect(t.Context(), 5, &buf)
		if err != nil || n != int64(len(data)) || !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("n=%d err=%v", n, err)
		}
		if s.requests()[0].Path != "/v1/data-stream-stats/dynamic/5/download" {
			t.Errorf("path %s", s.requests()[0].Path)
		}
	})
	t.Run("cut mid-body into a buffer is an error with the count", func(t *testing.T) {
		s := newScript(cut, file)
		env := newEnv(t, serve(t, s))
		var buf bytes.Buffer
		n, err := env.c.Jobs.Download(t.Context(), 7, &buf)
		if err == nil || n != int64(buf.Len()) || n == 0 {
			t.Fatalf("n=%d buffered=%d err=%v: want an error and the partial count", n, buf.Len(), err)
		}
		if s.count() != 1 {
			t.Errorf("%d requests: a partial download into a plain writer must not be retried", s.count())
		}
	})
	t.Run("cut mid-body into a file is rewound and retried", func(t *testing.T) {
		s := newScript(cut, file)
		env := newEnv(t, serve(t, s))
		f, err := os.Create(filepath.Join(t.TempDir(), "job.zip"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		_, _ = f.WriteString("PREFIX")
		n, err := env.c.Jobs.Download(t.Context(), 7, f)
		if err != nil || n != int64(len(data)) {
			t.Fatalf("n=%d err=%v", n, err)
		}
		got, _ := os.ReadFile(f.Name())
		if !bytes.Equal(got, append([]byte("PREFIX"), data...)) {
			t.Errorf("file holds %d bytes, want PREFIX and the data once", len(got))
		}
	})
	t.Run("404", func(t *testing.T) {
		env := newEnv(t, serve(t, newScript(answer(404, `{"errors":["no such job"]}`))))
		n, err := env.c.Jobs.Download(t.Context(), 7, io.Discard)
		if !IsNotFound(err) || n != 0 {
			t.Fatalf("n=%d err=%v", n, err)
		}
	})
}

func TestDeleteRetriedFindsItGone(t *testing.T) {
	t.Run("retry after a lost answer", func(t *testing.T) {
		s := newScript(hangUp, answer(404, `{"errors":["not found"]}`))
		env := newEnv(t, serve(t, s))
		if err := env.c.Streams.Delete(t.Context(), 5); err != nil {
			t.Fatalf("want success, got %v", err)
		}
		if s.count() != 2 {
			t.Errorf("%d requests", s.count())
		}
	})
	t.Run("first answer 404", func(t *testing.T) {
		s := newScript(answer(404, `{"errors":["not found"]}`))
		env := newEnv(t, serve(t, s))
		if err := env.c.Streams.Delete(t.Context(), 5); !IsNotFound(err) {
			t.Fatalf("want not found, got %v", err)
		}
	})
}

func TestGateCallDescribesTheRequest(t *testing.T) {
	s := newScript(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/query"):
			answer(200, `{"queryResponseData": {"headers": [], "rows": []}, "errors": []}`)(w, r)
		case strings.HasSuffix(r.URL.Path, "/data-streams"), strings.HasSuffix(r.URL.Path, "/stats"):
			answer(200, `[]`)(w, r)
		default:
			answer(200, `{"id": 5, "name": "s"}`)(w, r)
		}
	})
	env := newEnv(t, serve(t, s), withCountingGate())
	ctx := t.Context()
	if _, err := env.c.Streams.List(ctx, 27405); err != nil {
		t.Fatal(err)
	}
	if _, err := env.c.Streams.Get(WithWorkspace(ctx, 77), 5); err != nil {
		t.Fatal(err)
	}
	if _, err := env.c.Query.Run(ctx, QueryRequest{WorkspaceID: 55}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := env.c.Jobs.Page(ctx, 5, 10, 1); err != nil {
		t.Fatal(err)
	}
	calls, _ := env.gate.seen()
	want := []Call{
		{Kind: Platform, Method: "GET", PathTemplate: "/v1/workspaces/{wsId}/data-streams", WorkspaceID: 27405, Attempt: 1},
		{Kind: Platform, Method: "GET", PathTemplate: "/v1/data-streams/{id}", WorkspaceID: 77, Attempt: 1},
		{Kind: Query, Method: "POST", PathTemplate: "/v1/query", WorkspaceID: 55, Attempt: 1},
		{Kind: Platform, Method: "POST", PathTemplate: "/v1/data-streams/api/{id}/stats", WorkspaceID: 0, Attempt: 1},
	}
	if !slices.Equal(calls, want) {
		t.Errorf("gate calls\n%+v\nwant\n%+v", calls, want)
	}
	recs := env.rec.all()
	if recs[1].Path != "/v1/data-streams/5" || recs[1].PathTemplate != "/v1/data-streams/{id}" || recs[1].Fingerprint != Fingerprint(testToken) {
		t.Errorf("call record %+v", recs[1])
	}
}

// TestQueryAttemptsOutwaitTheServerLimit: by default a Query API attempt waits past the
// API's own 60-second query limit (so the 200-with-errors answer arrives), while other
// calls keep the default; a timeout chosen with WithTimeout applies to every call.
func TestQueryAttemptsOutwaitTheServerLimit(t *testing.T) {
	query := &call{kind: Query, route: newRoute("/v1/query")}
	list := &call{kind: Platform, route: newRoute("/v1/workspaces")}
	tests := []struct {
		name        string
		opts        []Option
		query, list time.Duration
	}{
		{"default", nil, DefaultQueryTimeout, DefaultTimeout},
		{"chosen", []Option{WithTimeout(5 * time.Second)}, 5 * time.Second, 5 * time.Second},
	}
	if DefaultQueryTimeout <= 60*time.Second {
		t.Fatalf("DefaultQueryTimeout %v does not outwait the API's 60 s query limit", DefaultQueryTimeout)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New("https://api.datorama.com", "t", tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.attemptTimeout(query); got != tc.query {
				t.Errorf("query attempt timeout %v, want %v", got, tc.query)
			}
			if got := c.attemptTimeout(list); got != tc.list {
				t.Errorf("platform attempt timeout %v, want %v", got, tc.list)
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		base, token string
		gate        bool
		want        string // BaseURL, or "" for an error
	}{
		{"https://api.datorama.com", "t", false, "https://api.datorama.com"},
		{"https://api-us2.datorama.com/v1/", "t", false, "https://api-us2.datorama.com"},
		{"http://127.0.0.1:1234/base/", "t", false, "http://127.0.0.1:1234/base"},
		{"api.datorama.com", "t", false, ""},
		{"ftp://api.datorama.com", "t", false, ""},
		{"https://api.datorama.com?token=x", "t", false, ""},
		{"", "t", false, ""},
		{"https://api.datorama.com", "", false, ""},
		{"https://api.datorama.com", "", true, "https://api.datorama.com"},
	}
	for _, tt := range tests {
		t.Run(tt.base+"|"+tt.token, func(t *testing.T) {
			var opts []Option
			if tt.gate {
				opts = append(opts, WithGate(&countingGate{}))
			}
			c, err := New(tt.base, tt.token, opts...)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("want an error, got base %s", c.BaseURL())
				}
				return
			}
			if err != nil || c.BaseURL() != tt.want {
				t.Fatalf("got %v, %v; want %s", c, err, tt.want)
			}
		})
	}
}

func TestBulkStatusIsChunked(t *testing.T) {
	s := newScript(func(w http.ResponseWriter, r *http.Request) {
		var out []map[string]any
		for _, id := range strings.Split(r.URL.Query().Get("ids"), ",") {
			n, _ := strconv.ParseInt(id, 10, 64)
			out = append(out, map[string]any{"id": n, "runStatus": "SUCCESS", "status": "ENABLED"})
		}
		b, _ := json.Marshal(out)
		answer(200, string(b))(w, r)
	})
	env := newEnv(t, serve(t, s))
	ids := make([]int64, 250)
	for i := range ids {
		ids[i] = int64(3970000 + i)
	}
	got, err := env.c.Streams.BulkStatus(t.Context(), 27405, ids)
	if err != nil {
		t.Fatal(err)
	}
	var gotIDs []int64
	for _, st := range got {
		gotIDs = append(gotIDs, st.ID)
	}
	if !slices.Equal(gotIDs, ids) {
		t.Errorf("got %d statuses, want all %d in order", len(gotIDs), len(ids))
	}
	var sizes []int
	for _, r := range s.requests() {
		q, _ := urlQuery(r.Query)
		sizes = append(sizes, len(strings.Split(q.Get("ids"), ",")))
	}
	if !slices.Equal(sizes, []int{100, 100, 50}) {
		t.Errorf("chunks %v", sizes)
	}
	if _, err := env.c.Streams.BulkStatus(t.Context(), 27405, nil); err != nil || s.count() != 3 {
		t.Errorf("no ids: err %v, requests %d", err, s.count())
	}
}

func TestQueryErrors(t *testing.T) {
	q := QueryRequest{WorkspaceID: 27405, DateRange: "THIS_MONTH", Measurements: []Measure{{"Clicks"}}, Dimensions: []string{"Day"}}
	t.Run("runtime error is a *QueryError with the answer", func(t *testing.T) {
		env := newEnv(t, serve(t, newScript(answer(200, `{"queryResponseData": null, "errors": ["Query timed out"]}`))))
		res, err := env.c.Query.Run(t.Context(), q, false)
		var qe *QueryError
		if !errors.As(err, &qe) || qe.Message != "Query timed out" || res == nil || !res.Failed() {
			t.Fatalf("got %+v, %v", res, err)
		}
	})
	t.Run("422 is an *APIError naming the field", func(t *testing.T) {
		s := newScript(answer(422, `{"errors": ["Unknown measurement: Clicks"]}`))
		env := newEnv(t, serve(t, s))
		_, err := env.c.Query.Run(t.Context(), q, true)
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != 422 || !strings.Contains(ae.Message, "Clicks") || s.count() != 1 {
			t.Fatalf("got %v after %d requests", err, s.count())
		}
		if s.requests()[0].Query != "useSystemNames=true" {
			t.Errorf("query string %q", s.requests()[0].Query)
		}
	})
	t.Run("batch keeps every result and names the failed one", func(t *testing.T) {
		b, _ := os.ReadFile("testdata/query_batch_response.json")
		env := newEnv(t, serve(t, newScript(answer(200, string(b)))))
		res, err := env.c.Query.Batch(t.Context(), []QueryRequest{q, q})
		var qe *QueryError
		if len(res) != 2 || !errors.As(err, &qe) || qe.Index != 1 || qe.Message != "Too many rows" {
			t.Fatalf("got %d results, %v", len(res), err)
		}
		if res[0].Failed() || string(res[0].Rows[1][1]) != "null" {
			t.Errorf("first result %+v", res[0])
		}
	})
	t.Run("batch with a missing result is unreadable", func(t *testing.T) {
		s := newScript(answer(200, `[{"queryResponseData": {"headers": [], "rows": []}, "errors": []}]`))
		env := newEnv(t, serve(t, s), withOpts(WithRetries(1)))
		_, err := env.c.Query.Batch(t.Context(), []QueryRequest{q, q})
		var de *DecodeError
		if !errors.As(err, &de) || s.count() != 2 {
			t.Fatalf("got %v after %d requests", err, s.count())
		}
	})
}

// TestRequestBodiesMatchSamples: the bodies the client sends equal the facts file's
// request samples.
func TestRequestBodiesMatchSamples(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var q QueryRequest
	if err := json.Unmarshal(read("query_request.json"), &q); err != nil {
		t.Fatal(err)
	}
	start, end := mustDate(t, "2021-06-04"), mustDate(t, "2021-07-13")
	tests := []struct {
		name string
		call func(c *Client) error
		want []byte
	}{
		{"process many", func(c *Client) error {
			_, err := c.Jobs.ProcessMany(t.Context(), []int64{3973838, 3973840, 3971136}, start, end, false)
			return err
		}, read("process_many_request.json")},
		{"patch", func(c *Client) error {
			_, err := c.Streams.Patch(t.Context(), 3974201, map[string]any{"enabled": false})
			return err
		}, read("patch_request.json")},
		{"process", func(c *Client) error { _, err := c.Jobs.Process(t.Context(), 3973838, start, end); return err },
			[]byte(`{"startDate":"2021-06-04","endDate":"2021-07-13"}`)},
		{"rerun", func(c *Client) error {
			_, err := c.Jobs.Rerun(t.Context(), 3974201, []int64{377021020, 377723753})
			return err
		},
			[]byte(`[377021020, 377723753]`)},
		{"query", func(c *Client) error { _, err := c.Query.Run(t.Context(), q, false); return err }, read("query_request.json")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/query") {
					answer(200, `{"queryResponseData": {"headers": [], "rows": []}}`)(w, r)
					return
				}
				answer(200, ``)(w, r)
			})
			env := newEnv(t, serve(t, s))
			if err := tt.call(env.c); err != nil {
				t.Fatal(err)
			}
			assertJSONEqual(t, s.requests()[0].Body, tt.want)
		})
	}
}

func TestRateHeaderWarningsAreLogged(t *testing.T) {
	s := newScript(answerWith(200, map[string]string{HeaderPlatformRemaining: "lots"}, twoWorkspaces))
	env := newEnv(t, serve(t, s))
	if _, err := env.c.Workspaces.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(env.logs.String(), "ignoring a rate header") {
		t.Errorf("no warning logged:\n%s", env.logs.String())
	}

	// With a gate the warnings go to it (and the budget reports them), not to the log.
	s = newScript(answerWith(200, map[string]string{HeaderPlatformRemaining: "lots"}, twoWorkspaces))
	env = newEnv(t, serve(t, s), withCountingGate())
	if _, err := env.c.Workspaces.List(t.Context()); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(env.logs.String(), "ignoring a rate header") {
		t.Errorf("the client logged a warning its gate reports:\n%s", env.logs.String())
	}
}

func TestShouldRetryTable(t *testing.T) {
	read := &call{method: "GET", idempotent: true}
	write := &call{method: "POST"}
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	bg := context.Background()
	tests := []struct {
		name string
		ctx  context.Context
		cl   *call
		o    outcome
		want decision
	}{
		{"ok", bg, read, outcome{status: 200}, decision{verdict: vDone}},
		{"context done", canceled, read, outcome{class: failStatus, status: 503, err: errors.New("x")}, decision{verdict: vDone}},
		{"429", bg, write, outcome{class: failStatus, status: 429, err: errors.New("x")}, decision{verdict: vRateLimited}},
		{"429 quota", bg, read, outcome{class: failStatus, status: 429, err: errors.New("x"), rate: Rate{Daily: Window{Known: true, HasRemaining: true}}}, decision{verdict: vQuota}},
		{"429 daily header missing", bg, read, outcome{class: failStatus, status: 429, err: errors.New("x"), rate: Rate{Daily: Window{Known: true}}}, decision{verdict: vRateLimited}},
		{"not sent, write", bg, write, outcome{class: failTransport, err: syscall.ECONNREFUSED}, decision{verdict: vRetry}},
		{"503 read", bg, read, outcome{class: failStatus, status: 503, err: errors.New("x"), sent: true}, decision{verdict: vRetry}},
		{"503 write", bg, write, outcome{class: failStatus, status: 503, err: errors.New("x"), sent: true}, decision{verdict: vDone, uncertain: true}},
		{"501", bg, read, outcome{class: failStatus, status: 501, err: errors.New("x"), sent: true}, decision{verdict: vDone}},
		{"404", bg, read, outcome{class: failStatus, status: 404, err: errors.New("x"), sent: true}, decision{verdict: vDone}},
		{"reset read", bg, read, outcome{class: failTransport, err: syscall.ECONNRESET, sent: true}, decision{verdict: vRetry}},
		{"reset write", bg, write, outcome{class: failTransport, err: syscall.ECONNRESET, sent: true}, decision{verdict: vDone, uncertain: true}},
		{"EOF mid-body", bg, read, outcome{class: failTransport, status: 200, err: io.ErrUnexpectedEOF, sent: true}, decision{verdict: vRetry}},
		{"decode read", bg, read, outcome{class: failDecode, status: 200, err: errors.New("x"), sent: true}, decision{verdict: vRetry}},
		{"decode write", bg, write, outcome{class: failDecode, status: 200, err: errors.New("x"), sent: true}, decision{verdict: vDone, uncertain: true}},
		{"permanent", bg, read, outcome{class: failPermanent, err: errors.New("x"), sent: true}, decision{verdict: vDone}},
		{"too many redirects", bg, read, outcome{class: failTransport, err: &url.Error{Op: "Get", URL: "https://x/v1", Err: errTooManyRedirects}, sent: true}, decision{verdict: vDone}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := shouldRetry(tt.ctx, tt.cl, &tt.o)
			if got.verdict != tt.want.verdict || got.uncertain != tt.want.uncertain {
				t.Errorf("shouldRetry = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func mustDate(t *testing.T, s string) Date {
	t.Helper()
	d, err := ParseDate(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func assertJSONEqual(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got invalid JSON %q: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want invalid JSON %q: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("JSON differs:\n got  %s\n want %s", gb, wb)
	}
}

func TestRedirects(t *testing.T) {
	var other *script
	t.Run("another host is refused, the token is not sent there", func(t *testing.T) {
		other = newScript(answer(200, twoWorkspaces))
		elsewhere := strings.Replace(serve(t, other), "127.0.0.1", "localhost", 1)
		s := newScript(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, elsewhere+r.URL.Path, http.StatusMovedPermanently)
		})
		env := newEnv(t, serve(t, s))
		_, err := env.c.Workspaces.List(t.Context())
		if !errors.Is(err, errRedirectElsewhere) || !strings.Contains(err.Error(), "localhost") {
			t.Fatalf("want a redirect error naming the host, got %v", err)
		}
		if s.count() != 1 || other.count() != 0 {
			t.Errorf("requests: %d here, %d elsewhere; want 1 and 0 (no retry, nothing sent away)", s.count(), other.count())
		}
	})
	t.Run("same host is followed with the token", func(t *testing.T) {
		s := newScript(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/base/v1/moved", http.StatusFound)
		}, answer(200, twoWorkspaces))
		env := newEnv(t, serve(t, s))
		if _, err := env.c.Workspaces.List(t.Context()); err != nil {
			t.Fatal(err)
		}
		if r := s.requests()[1]; r.Path != "/v1/moved" || r.Header.Get("Authorization") != testToken {
			t.Errorf("followed to %s with Authorization %q", r.Path, r.Header.Get("Authorization"))
		}
	})
}

// TestIdempotentWritesSayWhenTheOutcomeIsUnknown: a PATCH is resent after a 503, but
// if it never succeeds its error says it may have taken effect; a PATCH refused outright
// does not.
func TestIdempotentWritesSayWhenTheOutcomeIsUnknown(t *testing.T) {
	tests := []struct {
		name    string
		steps   []http.HandlerFunc
		unknown bool
	}{
		{"503 until the bound", []http.HandlerFunc{answer(503, ``)}, true},
		{"503 then 400", []http.HandlerFunc{answer(503, ``), answer(400, `{"errors":["bad"]}`)}, true},
		{"400 at once", []http.HandlerFunc{answer(400, `{"errors":["bad"]}`)}, false},
		{"429 until the bound", []http.HandlerFunc{answer(429, `Too Many Requests`)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newEnv(t, serve(t, newScript(tt.steps...)), withOpts(WithRetries(2)))
			_, err := env.c.Streams.Patch(t.Context(), 5, map[string]any{"enabled": false})
			if err == nil || errors.Is(err, ErrOutcomeUnknown) != tt.unknown {
				t.Fatalf("err %v: want ErrOutcomeUnknown=%v", err, tt.unknown)
			}
		})
	}
	t.Run("reads never say so", func(t *testing.T) {
		env := newEnv(t, serve(t, newScript(answer(503, ``))), withOpts(WithRetries(1)))
		if _, err := env.c.Streams.Get(t.Context(), 5); errors.Is(err, ErrOutcomeUnknown) {
			t.Fatal(err)
		}
	})
}

// TestErrorMessageScrubsBeforeCutting: a token that straddles the message's 300-byte
// bound is removed whole before the cut, whichever of the two tokens (the attempt's, or
// the client's own when a pool supplies another) it is.
func TestErrorMessageScrubsBeforeCutting(t *testing.T) {
	const attemptToken, clientToken = "attempt-token-0123456789abcdef", "client-token-0123456789abcdef"
	for _, tok := range []string{attemptToken, clientToken} {
		body := strings.Repeat("x", 290) + " " + tok + " tail"
		m := errorMessage([]byte(body), attemptToken, clientToken)
		if strings.Contains(m, tok[:8]) {
			t.Errorf("part of %q survived: …%s", tok[:8], m[len(m)-30:])
		}
	}
}
