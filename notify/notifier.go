package notify

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/drextract/drextract/clock"
)

// Webhook is one receiver.
type Webhook struct {
	URL string // the secret URL; only the request and Fingerprint see it
	// Events it receives; empty means all of Events.
	Events []string
}

// Fingerprint names a webhook URL safely: "hook_" and the first 8 hex digits of its
// SHA-256. The same URL always gives the same name.
func Fingerprint(rawURL string) string {
	sum := sha256.Sum256([]byte(rawURL))
	return "hook_" + hex.EncodeToString(sum[:4])
}

// Options configure a Notifier. Zero values take the defaults.
type Options struct {
	Webhooks []Webhook
	// Secrets are other values that must never leave in an event (the API tokens); they
	// are scrubbed from every text field, as the webhook URLs are.
	Secrets []string
	// Client sends the requests; default a client of its own. Redirects are never
	// followed whatever the client says (a POST would turn into a GET).
	Client *http.Client
	// AttemptTimeout bounds one request, answer included. Default 10 s.
	AttemptTimeout time.Duration
	// Attempts is how many times an event is tried at most. Default 4.
	Attempts int
	// Backoff is the wait before the second attempt, doubled for each next one up to
	// MaxBackoff (a 429's Retry-After, when longer, is honoured up to MaxBackoff).
	// Defaults 2 s and 30 s.
	Backoff, MaxBackoff time.Duration
	// Deadline bounds an event's delivery, every attempt and wait included. Default 1 min.
	Deadline time.Duration
	// Queue is how many events may wait per webhook; more are dropped (and logged).
	// Default 32.
	Queue int
	// Clock times the backoff waits. Default clock.Real{}.
	Clock     clock.Clock
	Logger    *slog.Logger
	UserAgent string
	// OnDelivery, when set, sees the outcome of every queued event (tests wait on it).
	// It is called from the webhook's worker; it must not block for long.
	OnDelivery func(Delivery)
}

// Delivery is how sending one event to one webhook went.
type Delivery struct {
	Webhook  string // its Fingerprint
	Event    string
	RunID    int64
	Attempts int   // requests made; 0 when the event was dropped or never tried
	Status   int   // HTTP status of the last answer; 0 without one
	Err      error // nil when the webhook accepted the event; never holds the URL
	Dropped  bool  // the queue was full or the Notifier closed: nothing was sent
}

// Notifier delivers events to webhooks. Create it with New and Close it once. Notify and
// Send are safe for concurrent use.
type Notifier struct {
	opts  Options
	log   *slog.Logger
	hooks []*hook
	scrub *strings.Replacer

	ctx    context.Context // cancelled when Close gives up waiting
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
}

// hook is one webhook and its worker's queue.
type hook struct {
	url    string
	name   string
	events []string
	queue  chan Event
}

// New returns a Notifier whose workers run until Close. With no webhooks it does nothing.
func New(o Options) *Notifier {
	if o.Client == nil {
		o.Client = &http.Client{}
	}
	c := *o.Client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	o.Client = &c
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.AttemptTimeout, 10*time.Second)
	def(&o.Backoff, 2*time.Second)
	def(&o.MaxBackoff, 30*time.Second)
	def(&o.Deadline, time.Minute)
	if o.Attempts <= 0 {
		o.Attempts = 4
	}
	if o.Queue <= 0 {
		o.Queue = 32
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.UserAgent == "" {
		o.UserAgent = "drextract"
	}
	n := &Notifier{opts: o, log: o.Logger.With("component", "notify")}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	var pairs []string
	secrets := slices.Clone(o.Secrets)
	for _, w := range o.Webhooks {
		secrets = append(secrets, urlParts(w.URL)...)
	}
	// Longest first, so a URL that contains another secret is scrubbed whole.
	slices.SortFunc(secrets, func(a, b string) int { return len(b) - len(a) })
	for _, s := range secrets {
		if strings.TrimSpace(s) != "" {
			pairs = append(pairs, s, "[redacted]")
		}
	}
	n.scrub = strings.NewReplacer(pairs...)
	for _, w := range o.Webhooks {
		h := &hook{url: w.URL, name: Fingerprint(w.URL), events: w.Events, queue: make(chan Event, o.Queue)}
		if len(h.events) == 0 {
			h.events = Events
		}
		n.hooks = append(n.hooks, h)
		n.wg.Add(1)
		go n.work(h)
	}
	return n
}

// urlParts are the forms in which a webhook URL, or its secret part, may come back in an
// error or an answer: whole, without its scheme, its path and its query.
func urlParts(raw string) []string {
	out := []string{raw}
	u, err := url.Parse(raw)
	if err != nil {
		return out
	}
	out = append(out, strings.TrimPrefix(raw, u.Scheme+"://"))
	if len(u.EscapedPath()) > 1 {
		out = append(out, u.EscapedPath(), u.Path)
	}
	if u.RawQuery != "" {
		out = append(out, u.RawQuery)
	}
	return out
}

// Webhooks returns the fingerprints of the webhooks, in order.
func (n *Notifier) Webhooks() []string {
	if n == nil {
		return nil
	}
	out := make([]string, len(n.hooks))
	for i, h := range n.hooks {
		out[i] = h.name
	}
	return out
}

// Wants reports whether some webhook subscribes to event, so a caller can skip work that
// only serves it. A nil Notifier wants nothing.
func (n *Notifier) Wants(event string) bool {
	if n == nil {
		return false
	}
	for _, h := range n.hooks {
		if slices.Contains(h.events, event) {
			return true
		}
	}
	return false
}

// Notify queues ev for every webhook that subscribes to its event and returns at once; it
// never blocks on the network. An event that finds a webhook's queue full, or the
// Notifier closed, is dropped for that webhook and logged. A nil Notifier does nothing.
func (n *Notifier) Notify(ev Event) {
	if n == nil {
		return
	}
	ev = n.prepare(ev)
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range n.hooks {
		if !slices.Contains(h.events, ev.Event) {
			continue
		}
		if n.closed {
			n.dropped(h, ev, "the notifier is closed")
			continue
		}
		select {
		case h.queue <- ev:
		default:
			n.dropped(h, ev, fmt.Sprintf("%d events are already waiting (the webhook is slow or down)", cap(h.queue)))
		}
	}
}

func (n *Notifier) dropped(h *hook, ev Event, why string) {
	n.log.Warn("notification dropped", "webhook", h.name, "event", ev.Event, "run_id", ev.RunID, "reason", why)
	if n.opts.OnDelivery != nil {
		n.opts.OnDelivery(Delivery{Webhook: h.name, Event: ev.Event, RunID: ev.RunID, Dropped: true,
			Err: errors.New("dropped: " + why)})
	}
}

// Send delivers ev to every webhook now, whatever they subscribe to, and returns how each
// went, in the order of the webhooks: `drextract notify test`. It waits at most the
// Deadline (or ctx) per webhook.
func (n *Notifier) Send(ctx context.Context, ev Event) []Delivery {
	if n == nil {
		return nil
	}
	ev = n.prepare(ev)
	out := make([]Delivery, len(n.hooks))
	var wg sync.WaitGroup
	for i, h := range n.hooks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = n.deliver(ctx, h, ev)
		}()
	}
	wg.Wait()
	return out
}

// Close stops accepting events and waits until the queued ones are delivered or given up,
// or ctx ends; then it abandons what is left (logged) and returns once every worker has
// stopped. Call it once, before the process exits.
func (n *Notifier) Close(ctx context.Context) {
	if n == nil {
		return
	}
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		for _, h := range n.hooks {
			close(h.queue)
		}
	}
	n.mu.Unlock()
	done := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		n.log.Warn("giving up on notifications still being sent", "error", ctx.Err())
		n.cancel()
		<-done
	}
	n.cancel()
}

// work delivers one webhook's events in order until its queue is closed and empty.
func (n *Notifier) work(h *hook) {
	defer n.wg.Done()
	for ev := range h.queue {
		if n.ctx.Err() != nil {
			n.report(Delivery{Webhook: h.name, Event: ev.Event, RunID: ev.RunID, Dropped: true, Err: errors.New("abandoned at exit")})
			continue
		}
		n.report(n.deliver(n.ctx, h, ev))
	}
}

func (n *Notifier) report(d Delivery) {
	attrs := []any{"webhook", d.Webhook, "event", d.Event, "run_id", d.RunID, "attempts", d.Attempts}
	switch {
	case d.Err == nil:
		n.log.Info("notification sent", attrs...)
	case d.Dropped:
		n.log.Warn("notification dropped", append(attrs, "error", d.Err)...)
	default:
		n.log.Warn("notification failed", append(attrs, "error", d.Err)...)
	}
	if n.opts.OnDelivery != nil {
		n.opts.OnDelivery(d)
	}
}

// prepare fills in the text, bounds the free-text fields and scrubs every secret from them.
func (n *Notifier) prepare(ev Event) Event {
	ev.Message = clip(oneLine(n.scrub.Replace(ev.Message)), maxMessage)
	if ev.Stream != nil {
		s := *ev.Stream
		s.Name = clip(oneLine(n.scrub.Replace(s.Name)), 200)
		s.Reason = clip(oneLine(n.scrub.Replace(s.Reason)), 500)
		ev.Stream = &s
	}
	if ev.Text == "" {
		ev.Text = ev.summary()
	}
	ev.Text = clip(oneLine(n.scrub.Replace(ev.Text)), maxText)
	ev.Schedule = n.scrub.Replace(ev.Schedule)
	return ev
}

// deliver posts ev to h until it is accepted, refused for good, or out of attempts or
// time.
func (n *Notifier) deliver(ctx context.Context, h *hook, ev Event) Delivery {
	d := Delivery{Webhook: h.name, Event: ev.Event, RunID: ev.RunID}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		d.Err = fmt.Errorf("encoding the event: %w", err)
		return d
	}
	ctx, cancel := context.WithTimeout(ctx, n.opts.Deadline)
	defer cancel()
	wait := n.opts.Backoff
	for {
		d.Attempts++
		status, retryAfter, err := n.post(ctx, h, body.Bytes())
		d.Status, d.Err = status, err
		if err == nil || !retryable(status, err) || d.Attempts >= n.opts.Attempts || ctx.Err() != nil {
			return d
		}
		pause := max(wait, min(retryAfter, n.opts.MaxBackoff))
		n.log.Debug("notification not accepted; retrying", "webhook", h.name, "event", ev.Event, "attempt", d.Attempts, "error", err, "wait", pause)
		if err := clock.Sleep(ctx, n.opts.Clock, pause); err != nil {
			d.Err = fmt.Errorf("%w; no time left to retry", d.Err)
			return d
		}
		wait = min(2*wait, n.opts.MaxBackoff)
	}
}

// statusError is an answer other than 2xx.
type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string {
	msg := fmt.Sprintf("HTTP %d", e.status)
	if e.body != "" {
		msg += ": " + e.body
	}
	return msg
}

// post makes one attempt. The error never holds the URL: net/http puts it in every
// *url.Error, so only the cause is kept, scrubbed.
func (n *Notifier) post(ctx context.Context, h *hook, body []byte) (status int, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, n.opts.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(body))
	if err != nil {
		return 0, 0, errors.New("the webhook URL cannot be used for a request")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", n.opts.UserAgent)
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
			return 0, 0, fmt.Errorf("no answer within %v: %w", n.opts.AttemptTimeout, context.DeadlineExceeded)
		}
		return 0, 0, errors.New(n.scrub.Replace(err.Error()))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, 0, nil
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	return resp.StatusCode, retryAfter, &statusError{status: resp.StatusCode, body: clip(oneLine(n.scrub.Replace(strings.TrimSpace(string(snippet)))), 200)}
}

// retryable says whether another attempt may succeed: on a network error, a timeout, a
// 5xx or a 429; not on any other answer (a 4xx will not change; a 3xx is not followed).
func retryable(status int, err error) bool {
	if err == nil {
		return false
	}
	switch {
	case status == 0:
		return true
	case status == http.StatusTooManyRequests, status >= 500:
		return true
	}
	return false
}
