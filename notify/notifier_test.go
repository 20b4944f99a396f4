package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drextract/drextract/config"
)

// receiver is a webhook over real HTTP that records what it receives and answers with the
// statuses it is given, in turn (200 once they run out).
type receiver struct {
	t   *testing.T
	srv *httptest.Server
	// URL holds a canary path, as a real incoming-webhook URL holds its secret.
	URL string

	mu       sync.Mutex
	statuses []int
	bodies   []map[string]any
	headers  []http.Header
	got      chan struct{} // one value per request, buffered
}

const canary = "CANARY-hook-secret-7f3a"

func newReceiver(t *testing.T, statuses ...int) *receiver {
	t.Helper()
	r := &receiver{t: t, statuses: statuses, got: make(chan struct{}, 100)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	r.URL = r.srv.URL + "/services/T0/B0/" + canary
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	var body map[string]any
	raw, _ := io.ReadAll(req.Body)
	if err := json.Unmarshal(raw, &body); err != nil {
		r.t.Errorf("the webhook received a body that is not JSON: %q", raw)
	}
	r.mu.Lock()
	status := http.StatusOK
	if len(r.statuses) > 0 {
		status, r.statuses = r.statuses[0], r.statuses[1:]
	}
	r.bodies = append(r.bodies, body)
	r.headers = append(r.headers, req.Header.Clone())
	r.mu.Unlock()
	r.got <- struct{}{}
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "0")
	}
	w.WriteHeader(status)
	// An answer that repeats the URL it was posted to, as some gateways do.
	_, _ = io.WriteString(w, "no_service for "+req.URL.Path)
}

// body is the i-th request's JSON body.
func (r *receiver) body(i int) map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bodies[i]
}

func (r *receiver) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

// deliveries collects OnDelivery reports for tests to wait on.
type deliveries chan Delivery

func (d deliveries) next(t *testing.T) Delivery {
	t.Helper()
	select {
	case x := <-d:
		return x
	case <-time.After(30 * time.Second): // bounds a hang only
		t.Fatal("no delivery reported")
		return Delivery{}
	}
}

// fast are options whose waits are short, so retries and timeouts happen within a test;
// the tests wait for the deliveries, never for time.
func fast(d deliveries, log *slog.Logger, hooks ...Webhook) Options {
	return Options{Webhooks: hooks, AttemptTimeout: 200 * time.Millisecond, Backoff: time.Millisecond,
		MaxBackoff: 5 * time.Millisecond, Attempts: 3, Deadline: 20 * time.Second, Logger: log,
		OnDelivery: func(x Delivery) { d <- x }}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

var sample = Event{Event: EventFailed, Status: "failed", Kind: "extract", RunID: 7, Schedule: "jobs-hourly",
	StartedAt: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC), EndedAt: time.Date(2026, 3, 2, 8, 5, 0, 0, time.UTC),
	Message: "listing streams of workspace 3: HTTP 500", Counts: Counts{Calls: 340, Rows: 1200}}

// TestDelivers: one JSON POST per event with every documented field and a one-line text,
// only to the webhooks that subscribe to it.
func TestDelivers(t *testing.T) {
	all, onlyPartial := newReceiver(t), newReceiver(t)
	d := make(deliveries, 10)
	n := New(fast(d, discard(), Webhook{URL: all.URL}, Webhook{URL: onlyPartial.URL, Events: []string{EventPartial}}))
	defer n.Close(context.Background())
	if !n.Wants(EventStreamFailing) || n.Wants(EventTest) {
		t.Error("Wants: every event is wanted by the first webhook, the sample by none")
	}
	n.Notify(sample)
	got := d.next(t)
	if got.Err != nil || got.Attempts != 1 || got.Status != 200 || got.Webhook != Fingerprint(all.URL) || got.Event != EventFailed || got.RunID != 7 {
		t.Fatalf("delivery %+v", got)
	}
	body := all.body(0)
	for _, k := range []string{"event", "status", "kind", "run_id", "schedule", "started_at", "ended_at", "message", "counts", "text"} {
		if _, ok := body[k]; !ok {
			t.Errorf("the payload lacks %q: %v", k, body)
		}
	}
	want := "drextract: extract run 7 (schedule jobs-hourly) failed: listing streams of workspace 3: HTTP 500"
	if body["text"] != want || body["event"] != "failed" || body["started_at"] != "2026-03-02T08:00:00Z" {
		t.Errorf("payload %v\nwant text %q", body, want)
	}
	if c := body["counts"].(map[string]any); c["calls"] != 340.0 || c["rows"] != 1200.0 {
		t.Errorf("counts %v", c)
	}
	all.mu.Lock()
	h := all.headers[0]
	all.mu.Unlock()
	if h.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q", h.Get("Content-Type"))
	}
	if onlyPartial.requests() != 0 {
		t.Error("a webhook subscribed to partial received a failed event")
	}
	n.Notify(Event{Event: EventPartial, Status: "partial", Kind: "extract", RunID: 8})
	d.next(t)
	d.next(t)
	if all.requests() != 2 || onlyPartial.requests() != 1 {
		t.Errorf("requests %d and %d, want 2 and 1", all.requests(), onlyPartial.requests())
	}
}

// TestRetries: 5xx and 429 are retried with backoff until the webhook accepts; a 400 is
// not retried.
func TestRetries(t *testing.T) {
	flaky := newReceiver(t, 503, 429, 500)
	refusing := newReceiver(t, 400, 200)
	d := make(deliveries, 10)
	o := fast(d, discard(), Webhook{URL: flaky.URL})
	o.Attempts = 4
	n := New(o)
	n.Notify(sample)
	if got := d.next(t); got.Err != nil || got.Attempts != 4 || got.Status != 200 {
		t.Errorf("after 503, 429, 500 then 200: %+v, want accepted on the 4th attempt", got)
	}
	n.Close(context.Background())

	o = fast(d, discard(), Webhook{URL: refusing.URL})
	n = New(o)
	n.Notify(sample)
	got := d.next(t)
	var se *statusError
	if got.Err == nil || got.Attempts != 1 || got.Status != 400 || !errors.As(got.Err, &se) {
		t.Errorf("after a 400: %+v, want one attempt and the 400", got)
	}
	n.Close(context.Background())
	if refusing.requests() != 1 {
		t.Errorf("a 400 was retried: %d requests", refusing.requests())
	}

	// Out of attempts: the last answer is the error.
	down := newReceiver(t, 500, 500, 500, 500)
	n = New(fast(d, discard(), Webhook{URL: down.URL}))
	n.Notify(sample)
	if got := d.next(t); got.Attempts != 3 || got.Status != 500 || got.Err == nil {
		t.Errorf("a webhook that keeps failing: %+v, want 3 attempts and the 500", got)
	}
	n.Close(context.Background())
}

// TestHangingWebhook: a webhook that never answers costs one request at a time and a
// bounded queue: each attempt times out, Notify never waits for it, what does not fit in
// the queue is dropped, and Close gives up on the rest when its context ends.
func TestHangingWebhook(t *testing.T) {
	release := make(chan struct{})
	var (
		mu     sync.Mutex
		runIDs []float64
	)
	requests := make(chan struct{}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		runIDs = append(runIDs, body["run_id"].(float64))
		mu.Unlock()
		requests <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	d := make(deliveries, 100)

	// Each attempt times out; the event is given up after its attempts.
	o := fast(d, discard(), Webhook{URL: srv.URL + "/" + canary})
	o.Attempts, o.AttemptTimeout, o.Queue = 2, 100*time.Millisecond, 2
	n := New(o)
	n.Notify(sample)
	if got := d.next(t); got.Attempts != 2 || !errors.Is(got.Err, context.DeadlineExceeded) {
		t.Errorf("the hung event: %+v, want 2 attempts that timed out", got)
	}
	n.Close(context.Background())

	// While the worker waits for an answer, events queue up to the bound and the rest are
	// dropped at once; Close with no time left abandons the queue and stops the worker.
	o.AttemptTimeout = time.Hour
	n = New(o)
	ev := sample
	ev.RunID = 1
	n.Notify(ev)
	<-requests
	<-requests
	<-requests // the two attempts above, then this event's first
	for i := range 5 {
		ev.RunID = int64(100 + i)
		n.Notify(ev) // returns while the webhook hangs
	}
	dropped := 0
	for range 3 {
		if x := d.next(t); x.Dropped {
			dropped++
		}
	}
	if dropped != 3 {
		t.Errorf("%d events dropped, want the 3 that did not fit in a queue of 2", dropped)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n.Close(ctx)
	if x := d.next(t); x.RunID != 1 || x.Err == nil || x.Attempts != 1 {
		t.Errorf("the event in flight when Close gave up: %+v", x)
	}
	for range 2 {
		if x := d.next(t); x.RunID < 100 || !x.Dropped {
			t.Errorf("a queued event after Close gave up: %+v", x)
		}
	}
	mu.Lock()
	if !slices.Equal(runIDs, []float64{7, 7, 1}) {
		t.Errorf("the webhook received runs %v, want the first event twice and the second once", runIDs)
	}
	mu.Unlock()
	n.Notify(sample) // closed: dropped, never a panic
	if x := d.next(t); !x.Dropped {
		t.Errorf("an event after Close: %+v", x)
	}
}

// TestNeverLeaksTheURL: neither the payload, nor a delivery's error, nor the log holds a
// webhook URL or another secret, even when the event's message or the answer holds them
// and when the host cannot be reached.
func TestNeverLeaksTheURL(t *testing.T) {
	const token = "dato-TOKEN-canary-5521"
	r := newReceiver(t, 400)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/hooks/" + canary + "-2"
	dead.Close()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d := make(deliveries, 10)
	o := fast(d, log, Webhook{URL: r.URL}, Webhook{URL: deadURL})
	o.Secrets = []string{token}
	n := New(o)
	ev := sample
	ev.Message = "posting to " + r.URL + " with " + token + " failed"
	ev.Stream = &Stream{ID: 1, Name: "stream " + deadURL, Reason: token}
	ev.Event = EventStreamFailing
	n.Notify(ev)
	var errs []string
	for range 2 {
		x := d.next(t)
		if x.Err == nil {
			t.Fatalf("delivery %+v, want the 400 and the refused connection", x)
		}
		errs = append(errs, x.Err.Error())
	}
	n.Close(context.Background())
	r.mu.Lock()
	payload, _ := json.Marshal(r.bodies)
	r.mu.Unlock()
	all := strings.Join(append(errs, logs.String(), string(payload)), "\n")
	for _, secret := range []string{canary, token, r.URL, deadURL} {
		if strings.Contains(all, secret) {
			t.Errorf("%q leaked:\n%s", secret, all)
		}
	}
	if !strings.Contains(string(payload), "[redacted]") || !strings.Contains(logs.String(), Fingerprint(r.URL)) {
		t.Errorf("want the secrets redacted in the payload and the webhook named by fingerprint in the log:\n%s", all)
	}
}

// TestSend: the sample goes to every webhook, whatever it subscribes to, and each answers
// for itself, by fingerprint.
func TestSend(t *testing.T) {
	ok, refusing := newReceiver(t), newReceiver(t, 404)
	n := New(fast(make(deliveries, 10), discard(), Webhook{URL: ok.URL, Events: []string{EventPartial}}, Webhook{URL: refusing.URL}))
	defer n.Close(context.Background())
	got := n.Send(context.Background(), Event{Event: EventTest, Status: "ok", Kind: "notify-test"})
	if len(got) != 2 || got[0].Err != nil || got[0].Webhook != Fingerprint(ok.URL) || got[1].Status != 404 || got[1].Err == nil {
		t.Fatalf("Send: %+v", got)
	}
	if b := ok.body(0); b["event"] != EventTest || !strings.HasPrefix(b["text"].(string), "drextract: test notification") {
		t.Errorf("sample payload %v", b)
	}
	if !slices.Equal(n.Webhooks(), []string{Fingerprint(ok.URL), Fingerprint(refusing.URL)}) {
		t.Errorf("Webhooks() = %v", n.Webhooks())
	}
}

func TestFingerprint(t *testing.T) {
	a, b := Fingerprint("https://hooks.example.com/a"), Fingerprint("https://hooks.example.com/b")
	if a == b || !strings.HasPrefix(a, "hook_") || len(a) != len("hook_")+8 || a != Fingerprint("https://hooks.example.com/a") {
		t.Errorf("fingerprints %q and %q", a, b)
	}
}

// TestEventsMatchConfig: the events the configuration accepts are the events sent.
func TestEventsMatchConfig(t *testing.T) {
	if !slices.Equal(Events, config.NotifyEvents) {
		t.Errorf("notify.Events %v, config.NotifyEvents %v", Events, config.NotifyEvents)
	}
}

func TestNilNotifier(t *testing.T) {
	var n *Notifier
	n.Notify(sample)
	n.Close(context.Background())
	if n.Wants(EventFailed) || n.Send(context.Background(), sample) != nil {
		t.Error("a nil Notifier did something")
	}
}
