package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/config"
)

// t0 is a Monday in winter: Europe/Paris is UTC+1, so "TZ=Europe/Paris 5 7 * * *" fires
// at 06:05 UTC.
var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// loadSchedules writes a schedules file and loads it through the config package, the
// same path `drextract serve` takes.
func loadSchedules(t *testing.T, body string) []*config.Schedule {
	t.Helper()
	path := filepath.Join(t.TempDir(), "schedules.yaml")
	t.Setenv("DRX_SERVE_TEST_TOKEN", "not-a-real-token")
	doc := "version: 1\napi:\n  tokens:\n    - env: DRX_SERVE_TEST_TOKEN\n" + body
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("loading test schedules: %v", err)
	}
	return scheduleList(cfg)
}

// run is one run as the recording Runner saw it.
type run struct {
	name       string
	start, end time.Time
}

// recordingRunner is a real Runner: it takes virtual time per schedule, records start and
// end on the clock, and fails the test if two runs ever overlap.
type recordingRunner struct {
	t     *testing.T
	clock clock.Clock
	dur   map[string]time.Duration
	// fn, if set, decides each run's result (attempt counts from 1 per schedule).
	fn func(name string, attempt int) (Outcome, error)

	inflight atomic.Int32
	mu       sync.Mutex
	runs     []run
	attempts map[string]int
	started  chan string // optional: receives each schedule name as its run starts
	wake     time.Time   // when the run under way ends
}

func (r *recordingRunner) wakeAt() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wake
}

func (r *recordingRunner) Run(ctx context.Context, sc *config.Schedule) (Outcome, error) {
	if n := r.inflight.Add(1); n != 1 {
		r.t.Errorf("%d runs at once (starting %s)", n, sc.Name)
	}
	defer r.inflight.Add(-1)
	start := r.clock.Now()
	r.mu.Lock()
	if r.attempts == nil {
		r.attempts = map[string]int{}
	}
	r.attempts[sc.Name]++
	attempt := r.attempts[sc.Name]
	r.wake = start.Add(r.dur[sc.Name])
	r.mu.Unlock()
	if r.started != nil {
		r.started <- sc.Name
	}
	err := clock.Sleep(ctx, r.clock, r.dur[sc.Name])
	end := r.clock.Now()
	r.mu.Lock()
	r.runs = append(r.runs, run{sc.Name, start, end})
	r.mu.Unlock()
	if err != nil {
		return Outcome{Status: StatusPartial}, fmt.Errorf("run %s: %w", sc.Name, err)
	}
	if r.fn != nil {
		return r.fn(sc.Name, attempt)
	}
	return Outcome{Calls: 3, Rows: map[string]int{"jobs": 10}}, nil
}

func (r *recordingRunner) list() []run {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := append([]run(nil), r.runs...)
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	return out
}

// runFor runs the scheduler on the virtual clock until the clock reaches until, then
// cancels it and returns once Run has returned. It must be called inside a synctest
// bubble, with s made there.
//
// The clock is driven deterministically rather than by auto-advance: it moves only once
// every goroutine of the scheduler and the runner waits (synctest.Wait) — one timer per
// schedule, plus the run's own timer while a run is under way — and then straight to the
// earliest of those timers. So the test does not depend on how fast the machine is.
func runFor(t *testing.T, s *Scheduler, mc *clock.Manual, rr *recordingRunner, until time.Time) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	for {
		next := nextWake(t, s, mc, rr)
		if next.After(until) {
			break
		}
		mc.Set(next)
	}
	cancel()
	// Inside the bubble a Run that never returned would be reported as a deadlock.
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// nextWake waits until the scheduler and the runner all wait, checks that they wait on
// the clock, and returns the earliest time they wait for.
func nextWake(t *testing.T, s *Scheduler, mc *clock.Manual, rr *recordingRunner) time.Time {
	t.Helper()
	synctest.Wait()
	snap := s.Snapshot()
	want := len(snap.Schedules)
	if snap.Running != nil {
		want++ // the run sleeps on the clock
	}
	if starting := snap.Running == nil && len(snap.Queue) > 0; starting || mc.Pending() != want {
		t.Fatalf("scheduler idle at %s but not waiting on the clock: %d timers, want %d; snapshot %+v", mc.Now(), mc.Pending(), want, snap)
	}
	var next time.Time
	for _, st := range snap.Schedules {
		if st.NextRun != nil && (next.IsZero() || st.NextRun.Before(next)) {
			next = *st.NextRun
		}
	}
	if snap.Running != nil {
		if w := rr.wakeAt(); next.IsZero() || w.Before(next) {
			next = w
		}
	}
	if !next.After(mc.Now()) {
		t.Fatalf("scheduler idle at %s waiting for %s", mc.Now(), next)
	}
	return next
}

func at(hhmm string) time.Time {
	d, err := time.ParseDuration(strings.Replace(hhmm, ":", "h", 1) + "m")
	if err != nil {
		panic(err)
	}
	return t0.Add(d)
}

// TestScheduler24h runs a day of schedules on a virtual clock and checks every run's start
// time against what cron plus the single-writer rule give.
func TestScheduler24h(t *testing.T) {
	scheds := loadSchedules(t, `
schedules:
  - name: jobs-quarter
    cron: "*/15 * * * *"
    concurrency: queue
    extract: {entities: [streams, jobs]}
  - name: hourly-skip
    cron: "20 * * * *"
    concurrency: skip
    extract: {entities: [streams]}
  - name: metadata-daily
    cron: "32 2 * * *"
    extract: {entities: [workspaces, streams, mappings]}
  - name: rerun-morning
    cron: "TZ=Europe/Paris 5 7 * * *"
    action: {selection: failed-jobs-24h, yes: true, max_calls: 200}
  - name: export-bi
    cron: "9 6,18 * * *"
    concurrency: skip
    export: {}
`)
	synctest.Test(t, func(t *testing.T) { testScheduler24h(t, scheds) })
}

func testScheduler24h(t *testing.T, scheds []*config.Schedule) {
	mc := clock.NewManual(t0)
	rr := &recordingRunner{t: t, clock: mc, dur: map[string]time.Duration{
		"jobs-quarter":   4 * time.Minute,
		"hourly-skip":    3 * time.Minute,
		"metadata-daily": 55 * time.Minute,
		"rerun-morning":  2 * time.Minute,
		"export-bi":      1 * time.Minute,
	}}
	m := NewMetrics()
	s, err := New(Options{Schedules: scheds, Runner: rr, Clock: mc, Logger: discard(), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	runFor(t, s, mc, rr, t0.Add(24*time.Hour+10*time.Minute))

	// What cron and the single-writer rule give, derived by hand:
	// 02:30 jobs-quarter runs to 02:34; metadata-daily fires 02:32, is queued, runs
	// 02:34–03:29. jobs-quarter fires 02:45 (queued), 03:00 and 03:15 (coalesced with the
	// queued one); hourly-skip fires 03:20 while metadata runs and is skipped.
	// jobs-quarter runs 03:29–03:33; its 03:30 fire, behind its own run, is queued and
	// runs 03:33.
	var want []run
	for m := 15; m < 24*60; m += 15 {
		s := t0.Add(time.Duration(m) * time.Minute)
		switch s {
		case at("02:45"), at("03:00"), at("03:15"), at("03:30"):
			continue
		}
		want = append(want, run{name: "jobs-quarter", start: s})
	}
	want = append(want, run{name: "jobs-quarter", start: at("03:29")}, run{name: "jobs-quarter", start: at("03:33")})
	for h := 0; h < 24; h++ {
		if h == 3 {
			continue
		}
		want = append(want, run{name: "hourly-skip", start: t0.Add(time.Duration(h)*time.Hour + 20*time.Minute)})
	}
	want = append(want,
		run{name: "metadata-daily", start: at("02:34")},
		run{name: "rerun-morning", start: at("06:05")},
		run{name: "export-bi", start: at("06:09")},
		run{name: "export-bi", start: at("18:09")},
	)
	sort.Slice(want, func(i, j int) bool { return want[i].start.Before(want[j].start) })

	var got []run
	for _, r := range rr.list() {
		if r.start.Before(t0.Add(24 * time.Hour)) {
			got = append(got, run{name: r.name, start: r.start})
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d runs in 24 h, want %d", len(got), len(want))
	}
	for i := 0; i < max(len(got), len(want)); i++ {
		var g, w run
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g.name != w.name || !g.start.Equal(w.start) {
			t.Errorf("run %d: got %s at %s, want %s at %s", i, g.name, g.start.Format("15:04"), w.name, w.start.Format("15:04"))
		}
	}
	// No two runs overlap, checked on the recorded intervals too.
	all := rr.list()
	for i := 1; i < len(all); i++ {
		if all[i].start.Before(all[i-1].end) {
			t.Errorf("%s started %s before %s ended %s", all[i].name, all[i].start, all[i-1].name, all[i-1].end)
		}
	}

	snap := s.Snapshot()
	byName := map[string]ScheduleStatus{}
	for _, st := range snap.Schedules {
		byName[st.Name] = st
	}
	if st := byName["hourly-skip"]; st.Skipped != 1 {
		t.Errorf("hourly-skip skipped %d times, want 1", st.Skipped)
	}
	if st := byName["jobs-quarter"]; st.Skipped != 2 {
		t.Errorf("jobs-quarter coalesced %d fires, want 2 (03:00, 03:15)", st.Skipped)
	}
	if st := byName["rerun-morning"]; st.LastRun == nil || st.LastRun.Status != StatusOK || st.Kind != "action" {
		t.Errorf("rerun-morning status = %+v", st)
	}
	if got := counterValue(t, m, "drextract_schedule_skipped_total", map[string]string{"schedule": "hourly-skip", "reason": "busy"}); got != 1 {
		t.Errorf("skipped_total{hourly-skip,busy} = %v, want 1", got)
	}
	if got := counterValue(t, m, "drextract_schedule_queued_total", map[string]string{"schedule": "metadata-daily"}); got != 1 {
		t.Errorf("queued_total{metadata-daily} = %v, want 1", got)
	}
}

// TestConcurrencyPolicy: a schedule firing during another's run waits for it (queue) or
// does not run at all (skip).
func TestConcurrencyPolicy(t *testing.T) {
	tests := []struct {
		concurrency string
		wantStarts  []string // of "short", within the first 2 h; "long" runs :00–:30
	}{
		// 00:10 nothing runs (long first fires at 01:00); 01:10 long runs 01:00–01:30.
		{"queue", []string{"00:10", "01:30"}},
		{"skip", []string{"00:10"}},
	}
	for _, tt := range tests {
		t.Run(tt.concurrency, func(t *testing.T) {
			scheds := loadSchedules(t, fmt.Sprintf(`
schedules:
  - name: long
    cron: "0 * * * *"
    extract: {entities: [jobs]}
  - name: short
    cron: "10 * * * *"
    concurrency: %s
    export: {}
`, tt.concurrency))
			var rr *recordingRunner
			synctest.Test(t, func(t *testing.T) {
				mc := clock.NewManual(t0)
				rr = &recordingRunner{t: t, clock: mc, dur: map[string]time.Duration{"long": 30 * time.Minute, "short": time.Minute}}
				s, err := New(Options{Schedules: scheds, Runner: rr, Clock: mc, Logger: discard()})
				if err != nil {
					t.Fatal(err)
				}
				runFor(t, s, mc, rr, t0.Add(2*time.Hour+15*time.Minute))
			})
			var got []string
			for _, r := range rr.list() {
				if r.name == "short" && r.start.Before(at("02:00")) {
					got = append(got, r.start.Format("15:04"))
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.wantStarts, ",") {
				t.Errorf("short started at %v, want %v", got, tt.wantStarts)
			}
		})
	}
}

// TestFailuresDoNotStopTheDaemon: errors and a panic are recorded, the schedule backs
// off, the other schedule keeps running, and "recovered" is logged once.
func TestFailuresDoNotStopTheDaemon(t *testing.T) {
	scheds := loadSchedules(t, `
schedules:
  - name: flaky
    cron: "*/10 * * * *"
    extract: {entities: [jobs]}
  - name: steady
    cron: "5 * * * *"
    export: {}
`)
	synctest.Test(t, func(t *testing.T) { testFailuresDoNotStopTheDaemon(t, scheds) })
}

func testFailuresDoNotStopTheDaemon(t *testing.T, scheds []*config.Schedule) {
	mc := clock.NewManual(t0)
	rr := &recordingRunner{t: t, clock: mc, dur: map[string]time.Duration{"flaky": time.Minute, "steady": time.Minute}}
	rr.fn = func(name string, attempt int) (Outcome, error) {
		if name != "flaky" {
			return Outcome{}, nil
		}
		switch attempt {
		case 1, 2:
			return Outcome{Status: StatusFailed, RunID: int64(attempt)}, errors.New("boom: listing streams of workspace 7")
		case 3:
			panic("nil map in run")
		}
		return Outcome{}, nil
	}
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := NewMetrics()
	s, err := New(Options{Schedules: scheds, Runner: rr, Clock: mc, Logger: logger, Metrics: m,
		BackoffMin: 15 * time.Minute, BackoffMax: 30 * time.Minute, ErrorLogEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	runFor(t, s, mc, rr, t0.Add(3*time.Hour))

	// Holds count from the end of the failed run (each takes a minute): 00:10 fails, hold
	// to 00:26 (00:20 skipped); 00:30 fails, hold 30 min to 01:01 (00:40, 00:50, 01:00
	// skipped); 01:10 panics, hold to 01:41 (01:20, 01:30, 01:40 skipped); 01:50 ok, and
	// every ten minutes after.
	var flaky, steady []string
	for _, r := range rr.list() {
		if !r.start.Before(at("03:00")) {
			continue
		}
		switch r.name {
		case "flaky":
			flaky = append(flaky, r.start.Format("15:04"))
		case "steady":
			steady = append(steady, r.start.Format("15:04"))
		}
	}
	wantFlaky := "00:10,00:30,01:10,01:50,02:00,02:10,02:20,02:30,02:40,02:50"
	if got := strings.Join(flaky, ","); got != wantFlaky {
		t.Errorf("flaky ran at %s, want %s", got, wantFlaky)
	}
	if got := strings.Join(steady, ","); got != "00:05,01:05,02:05" {
		t.Errorf("steady ran at %s, want 00:05,01:05,02:05", got)
	}
	text := logs.String()
	for _, c := range []struct {
		needle string
		want   int
	}{
		{`level=ERROR msg="run failed"`, 2},                                  // first boom, then the panic (a new error)
		{`level=DEBUG msg="run failed again`, 1},                             // the repeated boom, throttled
		{`level=ERROR msg="run panicked"`, 1},                                // with its stack
		{`msg=recovered component=serve schedule=flaky after_failures=3`, 1}, // once
		{`msg="schedule skipped" component=serve schedule=flaky reason=backoff`, 7},
	} {
		if got := strings.Count(text, c.needle); got != c.want {
			t.Errorf("log has %d × %q, want %d\n%s", got, c.needle, c.want, text)
		}
	}
	if got := counterValue(t, m, "drextract_runs_total", map[string]string{"schedule": "flaky", "status": "failed"}); got != 3 {
		t.Errorf("runs_total{flaky,failed} = %v, want 3", got)
	}
	st := statusOf(s, "flaky")
	// The last run may be one cut short by the end of the test: canceled, not failed.
	if st.ConsecutiveFailures != 0 || (st.LastRun.Status != StatusOK && st.LastRun.Status != StatusCanceled) || st.LastSuccess == nil {
		t.Errorf("flaky after recovery: %+v", st)
	}
}

// TestCancelDuringLongRun: cancelling (as SIGTERM does) while a run takes a virtual 10 h
// makes Run return at once — without the clock moving, so the run cannot have ended on
// its own; the run is recorded as canceled, not failed, and nothing queued starts
// afterwards. Cancelling runs in a synctest bubble; SIGTERM cannot (the signal comes from
// outside any bubble), so that case polls, with deadlines that only bound a hang.
func TestCancelDuringLongRun(t *testing.T) {
	scheds := func(t *testing.T) []*config.Schedule {
		return loadSchedules(t, `
schedules:
  - name: long
    cron: "0 * * * *"
    extract: {entities: [jobs], full: true}
  - name: queued
    cron: "5 1 * * *"
    export: {}
`)
	}
	t.Run("cancel", func(t *testing.T) {
		sc := scheds(t)
		synctest.Test(t, func(t *testing.T) {
			cancelDuringLongRun(t, sc, false, func(what string, cond func() bool) {
				synctest.Wait()
				if !cond() {
					t.Fatalf("idle before %s", what)
				}
			})
		})
	})
	t.Run("sigterm", func(t *testing.T) {
		cancelDuringLongRun(t, scheds(t), true, func(what string, cond func() bool) { waitUntil(t, what, cond) })
	})
}

// cancelDuringLongRun is TestCancelDuringLongRun; settle waits until cond holds.
func cancelDuringLongRun(t *testing.T, scheds []*config.Schedule, sigterm bool, settle func(what string, cond func() bool)) {
	mc := clock.NewManual(t0)
	rr := &recordingRunner{t: t, clock: mc, dur: map[string]time.Duration{"long": 10 * time.Hour}, started: make(chan string, 4)}
	s, err := New(Options{Schedules: scheds, Runner: rr, Clock: mc, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if sigterm {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, syscall.SIGTERM)
		defer stop()
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	settle("both schedules wait on their next fire", func() bool { return mc.Pending() >= 2 })
	mc.Set(at("01:00"))
	if name := <-rr.started; name != "long" {
		t.Fatalf("first run %s, want long", name)
	}
	settle("the run sleeps and both schedules wait", func() bool { return mc.Pending() >= 3 })
	mc.Set(at("01:05")) // "queued" fires and waits behind "long"
	settle("queued waits behind long", func() bool { return len(s.Snapshot().Queue) == 1 })

	if sigterm {
		if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	} else {
		cancel()
	}
	settle("Run returns", func() bool { return len(done) == 1 })
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !mc.Now().Equal(at("01:05")) {
		t.Errorf("the clock moved to %s", mc.Now())
	}
	if runs := rr.list(); len(runs) != 1 || runs[0].name != "long" || !runs[0].end.Equal(at("01:05")) {
		t.Errorf("runs = %+v, want only the long run, cut short at 01:05", runs)
	}
	st := statusOf(s, "long")
	if st.LastRun == nil || st.LastRun.Status != StatusCanceled || st.ConsecutiveFailures != 0 || st.LastRun.Error != "" {
		t.Errorf("long after cancel: %+v %+v", st, st.LastRun)
	}
}

// TestNewRejects covers configuration mistakes New catches itself.
func TestNewRejects(t *testing.T) {
	scheds := loadSchedules(t, `
schedules:
  - name: a
    cron: "0 * * * *"
    export: {}
`)
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no runner", Options{Schedules: scheds}, "no Runner"},
		{"duplicate", Options{Schedules: append(scheds, scheds[0]), Runner: RunnerFunc(nil)}, "listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func statusOf(s *Scheduler, name string) ScheduleStatus {
	for _, st := range s.Snapshot().Schedules {
		if st.Name == name {
			return st
		}
	}
	return ScheduleStatus{}
}

// waitUntil polls cond; the deadline only bounds a hang.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting, after a minute, until %s", what)
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// syncBuffer is a bytes.Buffer safe for the scheduler's goroutines.
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
