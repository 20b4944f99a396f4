package run

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drextract/drextract/action"
	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/notify"
	"github.com/drextract/drextract/ratelimit"
	"github.com/drextract/drextract/sim"
)

// webhook is a notification receiver over real HTTP: it records every event it accepts.
// While hold is open, it holds each request until the test closes it.
type webhook struct {
	t    *testing.T
	URL  string
	hold chan struct{}

	mu     sync.Mutex
	events []notify.Event
	got    chan notify.Event // every request's event, as it arrives
}

const hookCanary = "CANARY-webhook-path-3141"

func newWebhook(t *testing.T) *webhook {
	t.Helper()
	w := &webhook{t: t, got: make(chan notify.Event, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var ev notify.Event
		if err := json.NewDecoder(r.Body).Decode(&ev); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		w.got <- ev
		w.mu.Lock()
		hold := w.hold
		w.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		w.mu.Lock()
		w.events = append(w.events, ev)
		w.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	w.URL = srv.URL + "/services/" + hookCanary
	return w
}

// next waits for the next event the webhook receives.
func (w *webhook) next() notify.Event {
	w.t.Helper()
	select {
	case ev := <-w.got:
		return ev
	case <-time.After(30 * time.Second): // bounds a hang only
		w.t.Fatal("no notification arrived")
		return notify.Event{}
	}
}

// nextRunEvent waits for the next event that is not a stream_failing one (crawls of the
// generated account may find streams failing; the tests of that are below).
func (w *webhook) nextRunEvent() notify.Event {
	w.t.Helper()
	for {
		if ev := w.next(); ev.Event != notify.EventStreamFailing {
			return ev
		}
	}
}

// settle waits until the Runner's Notifier has delivered everything queued (by closing it)
// and gives the Runner a new one; it returns what the webhook received meanwhile.
func (e *notifyEnv) settle() []notify.Event {
	e.t.Helper()
	e.runner.Notifier.Close(context.Background())
	e.runner.Notifier = e.newNotifier()
	var out []notify.Event
	for {
		select {
		case ev := <-e.hook.got:
			out = append(out, ev)
		default:
			return out
		}
	}
}

// notifyEnv is newEnv's simulator, store and Runner with a Notifier posting to a webhook;
// o changes the simulated account.
type notifyEnv struct {
	*env
	hook       *webhook
	deliveries chan notify.Delivery
}

func newNotifyEnv(t *testing.T, o sim.Options) *notifyEnv {
	t.Helper()
	o.Seed = 7
	e := &notifyEnv{env: newEnvWith(t, o, nil), hook: newWebhook(t), deliveries: make(chan notify.Delivery, 100)}
	e.runner.Notifier = e.newNotifier()
	return e
}

// newNotifier posts to the env's webhook with short waits, so retries and timeouts happen
// within the test; tests wait for events, never for time.
func (e *notifyEnv) newNotifier() *notify.Notifier {
	n := notify.New(notify.Options{Webhooks: []notify.Webhook{{URL: e.hook.URL}},
		AttemptTimeout: 5 * time.Second, Backoff: time.Millisecond, MaxBackoff: time.Millisecond,
		Logger: e.runner.Log, OnDelivery: func(d notify.Delivery) { e.deliveries <- d }})
	e.t.Cleanup(func() { n.Close(context.Background()) })
	return n
}

// crawl moves the simulated time on (jobs start and finish) and crawls.
func (e *notifyEnv) crawl(o ExtractOptions) *Result {
	e.t.Helper()
	e.clock.Advance(3 * time.Hour)
	return e.runner.Extract(context.Background(), e.store, o)
}

// TestNotifiesHowRunsEnd: a run of each kind that ends failed, partial or quota_exhausted
// posts one event saying so, with its run, times, message, counts and text; a run that
// ends ok posts nothing.
func TestNotifiesHowRunsEnd(t *testing.T) {
	e := newNotifyEnv(t, sim.Options{Workspaces: 2, Streams: 12, JobsPerStream: 6, DailyQuota: 30})
	ctx := context.Background()

	// Capped by --max-calls: partial.
	partial := e.crawl(ExtractOptions{Full: true, MaxCalls: 5})
	if partial.Status != load.RunPartial {
		t.Fatalf("capped crawl: %s, %v", partial.Status, partial.Err)
	}
	ev := e.hook.nextRunEvent()
	if ev.Event != notify.EventPartial || ev.Status != load.RunPartial || ev.RunID != partial.RunID || ev.Kind != KindExtractFull ||
		ev.Schedule != "test" || !ev.StartedAt.Equal(partial.Started) || !ev.EndedAt.Equal(partial.Ended) || ev.EndedAt.Before(ev.StartedAt) ||
		ev.Counts.Calls != partial.Calls || ev.Counts.Incomplete != len(partial.Incomplete) || !strings.Contains(ev.Message, "incomplete: ") {
		t.Errorf("partial event %+v\nfor result %+v", ev, partial)
	}
	if want := fmt.Sprintf("drextract: extract-full run %d (schedule test) ended partial: incomplete: ", partial.RunID); !strings.HasPrefix(ev.Text, want) {
		t.Errorf("text %q, want it to start %q", ev.Text, want)
	}

	// An export ends ok: nothing is posted (the next event is the next failure's).
	exp := e.runner.Export(ctx, e.store)
	if exp.Status != load.RunOK {
		t.Fatalf("export: %+v", exp)
	}

	// The daily quota runs out: quota_exhausted, with the reset.
	quota := e.crawl(ExtractOptions{Full: true})
	if quota.Status != load.RunQuotaExhausted {
		t.Fatalf("crawl over the quota: %s, %v", quota.Status, quota.Err)
	}
	ev = e.hook.nextRunEvent()
	if ev.Event != notify.EventQuotaExhausted || ev.RunID != quota.RunID || ev.QuotaReset == nil || !ev.QuotaReset.Equal(quota.QuotaReset) ||
		!strings.Contains(ev.Text, "daily API quota exhausted, resets ") {
		t.Errorf("quota event %+v\nfor result %+v", ev, quota)
	}

	// A report whose workspace does not exist fails; its run is recorded and notified.
	def := config.Report{Name: "rows", Workspace: 999999999, Table: "report_rows", DateRange: config.DateRange{LastDays: 3},
		Dimensions: []string{"Data Stream"}, Measurements: []string{"Data Stream Total Rows"}, Mode: config.ModeReplace, Timezone: "UTC"}
	e.clock.Set(time.Date(2026, 3, 3, 8, 0, 0, 0, time.UTC)) // a new UTC day: the quota is back
	rep := e.runner.Report(ctx, e.store, ReportOptions{Definition: def})
	if rep.Status != load.RunFailed || rep.RunID == 0 {
		t.Fatalf("report of an unknown workspace: %s, %v", rep.Status, rep.Err)
	}
	ev = e.hook.nextRunEvent()
	if ev.Event != notify.EventFailed || ev.Kind != KindReport || ev.RunID != rep.RunID || ev.Message != rep.Err.Error() || ev.Text == "" {
		t.Errorf("failed event %+v\nfor result %+v", ev, rep)
	}

	// A token the API refuses: the crawl fails.
	e.runner.Pool = ratelimit.NewPool([]string{"dato-api-not-a-token"}, ratelimit.Config{Clock: e.clock, Reserve: -1, Logger: e.runner.Log})
	failed := e.crawl(ExtractOptions{})
	if failed.Status != load.RunFailed {
		t.Fatalf("crawl with a refused token: %s", failed.Status)
	}
	ev = e.hook.nextRunEvent()
	if ev.Event != notify.EventFailed || ev.Kind != KindExtract || ev.RunID != failed.RunID || !strings.Contains(ev.Message, "401") {
		t.Errorf("failed event %+v\nfor result %+v", ev, failed)
	}
	if strings.Contains(fmt.Sprintf("%+v", ev), "not-a-token") {
		t.Errorf("the event holds the token: %+v", ev)
	}
	for _, ev := range e.settle() {
		if ev.Event != notify.EventStreamFailing || ev.RunID == exp.RunID {
			t.Errorf("an extra event: %+v", ev)
		}
	}
}

// TestNotifiesActionsFailedAgain: reruns of jobs that fail again are found failed by the
// next crawl's follow-up, which posts actions_failed with the counts.
func TestNotifiesActionsFailedAgain(t *testing.T) {
	e := newNotifyEnv(t, sim.Options{Workspaces: 1, Streams: 6, JobsPerStream: 6})
	ctx := context.Background()
	if res := e.crawl(ExtractOptions{Full: true}); res.Status != load.RunOK {
		t.Fatalf("first crawl: %+v", res)
	}
	// Make every stream fail from now on, give each a failed job, and crawl it.
	var ids []int64
	rows, err := e.store.DB().Query(`SELECT id FROM streams WHERE NOT is_deleted AND enabled ORDER BY id LIMIT 3`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	rows.Close()
	e.sim.Mutate(func(st *sim.State) {
		for _, id := range ids {
			if err := st.SetStreamOutcome(id, "fail"); err != nil {
				t.Fatal(err)
			}
		}
	})
	e.sim.RunStreams(ids)
	if res := e.crawl(ExtractOptions{}); res.Status != load.RunOK {
		t.Fatalf("crawl of the failures: %+v", res)
	}
	e.settle() // streams that reached the failure threshold, if any

	// Rerun their failed jobs (they fail again), then crawl: the follow-up finds out.
	var jobs []action.Row
	rows, err = e.store.DB().Query(`SELECT stream_id, max(id) FROM jobs WHERE status = 'FAILURE' AND list_contains($1, stream_id) GROUP BY stream_id ORDER BY stream_id`, ids)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; rows.Next(); i++ {
		r := action.Row{Line: i}
		if err := rows.Scan(&r.StreamID, &r.JobID); err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, r)
	}
	rows.Close()
	if len(jobs) != len(ids) {
		t.Fatalf("%d failed jobs for %d streams", len(jobs), len(ids))
	}
	act := e.runner.Action(ctx, e.store, ActionOptions{Request: action.Request{Op: action.OpRerun, Rows: jobs, StartedBy: "test",
		Source: action.Source{Kind: "command", Name: "rerun"}}, Priority: ratelimit.Interactive})
	if act.Status != load.RunOK {
		t.Fatalf("rerun: %s %v", act.Status, act.Err)
	}
	res := e.crawl(ExtractOptions{})
	if res.FollowUp == nil || res.FollowUp.Failed != len(ids) {
		t.Fatalf("follow-up after the reruns failed: %+v", res.FollowUp)
	}
	ev := e.hook.nextRunEvent()
	if ev.Event != notify.EventActionsFailed || ev.RunID != res.RunID || ev.Counts.ItemsFailed != len(ids) || ev.Status != load.RunOK ||
		ev.Text != fmt.Sprintf("drextract: %d action items failed again (found by extract run %d (schedule test); drextract actions log): %s", len(ids), res.RunID, ev.Message) {
		t.Errorf("actions_failed event %+v", ev)
	}

	// `drextract actions follow-up` goes through the same step: outcomes left undecided
	// (say, by a crawl of an older drextract) are decided and notified.
	if _, err := e.store.DB().Exec(`UPDATE action_items SET outcome = NULL, outcome_at = NULL WHERE action_run_id = $1`, act.Action.Report.RunID); err != nil {
		t.Fatal(err)
	}
	fu, err := e.runner.FollowUp(ctx, e.store)
	if err != nil || fu.Failed != len(ids) {
		t.Fatalf("follow-up: %+v, %v", fu, err)
	}
	ev = e.hook.nextRunEvent()
	if ev.Event != notify.EventActionsFailed || ev.Kind != KindFollowUp || ev.RunID != 0 || ev.Counts.ItemsFailed != len(ids) ||
		!strings.HasPrefix(ev.Text, fmt.Sprintf("drextract: %d action items failed again (found by a follow-up; ", len(ids))) {
		t.Errorf("actions_failed event of the follow-up %+v", ev)
	}
}

// TestStreamFailingOnce: a stream that keeps failing is notified once, by the crawl that
// sees its third failure in a row, not by the crawls while it stays failing; every crawl
// has a new Notifier, as after a restart: what was said is the store's to know.
func TestStreamFailingOnce(t *testing.T) {
	e := newNotifyEnv(t, sim.Options{Workspaces: 1, Streams: 8, JobsPerStream: 6})
	if res := e.crawl(ExtractOptions{Full: true}); res.Status != load.RunOK {
		t.Fatalf("first crawl: %+v", res)
	}
	// A stream whose newest finished job succeeded, made to fail from now on.
	var stream int64
	err := e.store.DB().QueryRow(`SELECT stream_id FROM jobs WHERE status IN ('SUCCESS', 'FAILURE')
		GROUP BY stream_id HAVING arg_max(status, id) = 'SUCCESS' ORDER BY stream_id LIMIT 1`).Scan(&stream)
	if err != nil {
		t.Fatal(err)
	}
	e.sim.Mutate(func(st *sim.State) {
		if err := st.SetStreamOutcome(stream, "fail"); err != nil {
			t.Fatal(err)
		}
	})
	// fails runs n more jobs of the stream, crawls, and returns the stream_failing
	// events of the stream the crawl posted.
	fails := func(n int) []notify.Event {
		t.Helper()
		for range n {
			e.sim.RunStreams([]int64{stream})
			e.clock.Advance(3 * time.Hour) // it finishes (failed) before the next is queued
		}
		res := e.crawl(ExtractOptions{})
		if res.Status != load.RunOK {
			t.Fatalf("crawl: %+v", res)
		}
		var out []notify.Event
		for _, ev := range e.settle() { // a new Notifier after every crawl: a restart
			if ev.Event == notify.EventStreamFailing && ev.Stream != nil && ev.Stream.ID == stream {
				out = append(out, ev)
			}
		}
		return out
	}
	if got := fails(2); len(got) != 0 {
		t.Errorf("two failures in a row: %d events", len(got))
	}
	got := fails(1)
	if len(got) != 1 {
		t.Fatalf("the third failure in a row: %d events, want 1", len(got))
	}
	ev := got[0]
	if ev.Counts.ConsecutiveFailures < 3 || ev.Stream.WorkspaceID == 0 || ev.Stream.Name == "" || ev.Stream.LastJobID == 0 ||
		!strings.Contains(ev.Text, fmt.Sprintf("data stream %d %q", stream, ev.Stream.Name)) || !strings.Contains(ev.Text, "times in a row") {
		t.Errorf("stream_failing event %+v", ev)
	}
	if got := fails(1); len(got) != 0 {
		t.Errorf("a fourth failure: %d events, want none", len(got))
	}
	if got := fails(1); len(got) != 0 {
		t.Errorf("a fifth: %d events, want none", len(got))
	}
}

// receiverOf answers each request with the next of statuses (200 once they run out) and
// counts the requests.
func receiverOf(t *testing.T, statuses ...int) (url string, requests func() int) {
	t.Helper()
	var (
		mu sync.Mutex
		n  int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		status := http.StatusOK
		if n < len(statuses) {
			status = statuses[n]
		}
		n++
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/" + hookCanary, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestWebhooksThatFailOrHang: a failed run's event is retried on a webhook that answers
// 503 until it accepts, sent once to one that answers 400, and timed out on one that
// hangs; the run returns while the hanging webhook still holds its request.
func TestWebhooksThatFailOrHang(t *testing.T) {
	e := newNotifyEnv(t, sim.Options{Workspaces: 1, Streams: 4, JobsPerStream: 3})
	e.runner.Notifier.Close(context.Background())
	flaky, flakyRequests := receiverOf(t, 503, 503)
	refusing, refusingRequests := receiverOf(t, 400)
	hold := make(chan struct{})
	defer close(hold)
	e.hook.mu.Lock()
	e.hook.hold = hold
	e.hook.mu.Unlock()
	deliveries := map[string]chan notify.Delivery{}
	for _, u := range []string{flaky, refusing, e.hook.URL} {
		deliveries[notify.Fingerprint(u)] = make(chan notify.Delivery, 10)
	}
	newNotifier := func(attemptTimeout time.Duration) *notify.Notifier {
		return notify.New(notify.Options{
			Webhooks:       []notify.Webhook{{URL: flaky}, {URL: refusing}, {URL: e.hook.URL}},
			AttemptTimeout: attemptTimeout, Attempts: 3, Backoff: time.Millisecond, MaxBackoff: time.Millisecond,
			Logger: e.runner.Log, OnDelivery: func(d notify.Delivery) { deliveries[d.Webhook] <- d }})
	}
	wait := func(u string) notify.Delivery {
		t.Helper()
		select {
		case d := <-deliveries[notify.Fingerprint(u)]:
			return d
		case <-time.After(30 * time.Second): // bounds a hang only
			t.Fatal("no delivery reported")
			return notify.Delivery{}
		}
	}
	// A crawl with a token the API refuses fails at once.
	e.runner.Pool = ratelimit.NewPool([]string{"dato-api-refused"}, ratelimit.Config{Clock: e.clock, Reserve: -1, Logger: e.runner.Log})

	// The webhook holds the request for as long as the test wants: the run has returned
	// while its notification is still unanswered.
	e.runner.Notifier = newNotifier(time.Hour)
	res := e.crawl(ExtractOptions{})
	if res.Status != load.RunFailed {
		t.Fatalf("crawl: %s", res.Status)
	}
	if ev := e.hook.next(); ev.RunID != res.RunID || ev.Event != notify.EventFailed {
		t.Fatalf("the hanging webhook received %+v", ev)
	}
	select {
	case d := <-deliveries[notify.Fingerprint(e.hook.URL)]:
		t.Fatalf("the held request is reported done: %+v", d)
	default: // the run returned; its notification to the hanging webhook is still in flight
	}
	if d := wait(flaky); d.Err != nil || d.Attempts != 3 || flakyRequests() != 3 {
		t.Errorf("after 503, 503: %+v (%d requests), want accepted on the third attempt", d, flakyRequests())
	}
	if d := wait(refusing); d.Status != 400 || d.Attempts != 1 || refusingRequests() != 1 {
		t.Errorf("after a 400: %+v (%d requests), want no retry", d, refusingRequests())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e.runner.Notifier.Close(ctx) // the process exits: what hangs is abandoned
	if d := wait(e.hook.URL); d.Err == nil {
		t.Errorf("the abandoned delivery: %+v", d)
	}

	// With a short attempt timeout, each attempt on the hanging webhook times out and the
	// event is given up after its attempts.
	e.runner.Notifier = newNotifier(100 * time.Millisecond)
	defer e.runner.Notifier.Close(context.Background())
	res = e.crawl(ExtractOptions{})
	d := wait(e.hook.URL)
	if d.Attempts != 3 || !errors.Is(d.Err, context.DeadlineExceeded) || d.RunID != res.RunID {
		t.Errorf("the hanging webhook: %+v, want 3 attempts that timed out", d)
	}
}

// TestDaemonNotifies: a schedule's run goes through the same step, named by its schedule.
func TestDaemonNotifies(t *testing.T) {
	e := newNotifyEnv(t, sim.Options{Workspaces: 1, Streams: 4, JobsPerStream: 3})
	ctx := context.Background()
	if err := e.store.Close(); err != nil { // the daemon opens the store for each run
		t.Fatal(err)
	}
	d, err := NewDaemon(ctx, e.runner)
	if err != nil {
		t.Fatal(err)
	}
	out, err := d.Run(ctx, &config.Schedule{Name: "hourly", MaxCalls: 2, Extract: &config.Extract{}})
	if err != nil || out.Status != load.RunPartial {
		t.Fatalf("scheduled crawl capped at 2 calls: %+v, %v", out, err)
	}
	ev := e.hook.nextRunEvent()
	if ev.Event != notify.EventPartial || ev.Schedule != "hourly" || ev.RunID != out.RunID ||
		!strings.HasPrefix(ev.Text, fmt.Sprintf("drextract: extract run %d (schedule hourly) ended partial", out.RunID)) {
		t.Errorf("event %+v", ev)
	}
}
