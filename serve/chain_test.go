package serve

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/drextract/drextract/config"
)

// The chain tests run in synctest bubbles on the real clock: the bubble's time moves only
// when every goroutine waits, straight to the next timer, so a day of schedules takes no
// time and the order of events never depends on the machine.

// chainStart is midnight UTC of a Monday, inside every bubble (synctest starts its clock
// at 2000-01-01 00:00 UTC; the test moves it here).
var chainStart = time.Date(2000, 1, 3, 0, 0, 0, 0, time.UTC)

// chainSchedules loads a schedules file through the config package, as serve does.
func chainSchedules(t *testing.T, body string) []*config.Schedule {
	t.Helper()
	path := filepath.Join(t.TempDir(), "schedules.yaml")
	if err := os.WriteFile(path, []byte("version: 1\nschedules:\n"+body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadWithOptions(path, config.ValidateOptions{KnownSelections: func(string) bool { return true }})
	if err != nil {
		t.Fatalf("loading test schedules: %v", err)
	}
	return cfg.Schedules
}

// chainRun is one run as chainRunner saw it, with times as "hh:mm" since chainStart.
type chainRun struct{ name, start, end string }

// chainRunner takes dur[name] of the bubble's time per run, ends each run as outcome says
// (per schedule and attempt; ok by default) and fails the test if two runs overlap.
type chainRunner struct {
	t       *testing.T
	dur     map[string]time.Duration
	outcome func(name string, attempt int) (Outcome, error)

	inflight atomic.Int32
	mu       sync.Mutex
	runs     []chainRun
	attempts map[string]int
}

func clockOf(t time.Time) string {
	d := t.Sub(chainStart)
	return fmt.Sprintf("%02d:%02d", int(d.Hours()), int(d.Minutes())%60)
}

func (r *chainRunner) Run(ctx context.Context, sc *config.Schedule) (Outcome, error) {
	if n := r.inflight.Add(1); n != 1 {
		r.t.Errorf("%d runs at once (starting %s)", n, sc.Name)
	}
	defer r.inflight.Add(-1)
	start := time.Now()
	r.mu.Lock()
	if r.attempts == nil {
		r.attempts = map[string]int{}
	}
	r.attempts[sc.Name]++
	attempt := r.attempts[sc.Name]
	r.mu.Unlock()
	select {
	case <-time.After(r.dur[sc.Name]):
	case <-ctx.Done():
		return Outcome{}, ctx.Err()
	}
	r.mu.Lock()
	r.runs = append(r.runs, chainRun{sc.Name, clockOf(start), clockOf(time.Now())})
	r.mu.Unlock()
	if r.outcome != nil {
		return r.outcome(sc.Name, attempt)
	}
	return Outcome{}, nil
}

func (r *chainRunner) list() []chainRun {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.runs)
}

// runChain runs s inside the bubble until the bubble's clock reaches until (since
// chainStart), then stops it and waits for Run to return.
func runChain(t *testing.T, s *Scheduler, until time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	time.Sleep(time.Until(chainStart.Add(until))) // the bubble's time: every timer before it fires
	synctest.Wait()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// inBubble runs f in a synctest bubble whose clock starts at chainStart.
func inBubble(t *testing.T, f func(t *testing.T)) {
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(time.Until(chainStart))
		f(t)
	})
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// TestChainRunsAfterItsLeader: a schedule with after runs right after each run of its
// leader that ended ok; with when: always after any ending; a leader that failed fires
// nothing with when: ok, and a chain goes on (rerun after hourly, export after rerun).
func TestChainRunsAfterItsLeader(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		scheds := chainSchedules(t, `
  - name: hourly
    cron: "0 * * * *"
    extract: {}
  - name: rerun
    after: hourly
    action: {selection: failed-jobs-24h, yes: true}
  - name: export
    after: rerun
    when: always
    export: {}
`)
		rr := &chainRunner{t: t, dur: map[string]time.Duration{"hourly": 10 * time.Minute, "rerun": 5 * time.Minute, "export": time.Minute},
			outcome: func(name string, attempt int) (Outcome, error) {
				switch {
				case name == "rerun" && attempt == 2:
					return Outcome{Status: StatusPartial}, nil
				case name == "hourly" && attempt == 3:
					return Outcome{Status: StatusFailed}, fmt.Errorf("hourly failed")
				}
				return Outcome{}, nil
			}}
		s, err := New(Options{Schedules: scheds, Runner: rr, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		runChain(t, s, 4*time.Hour+30*time.Minute)
		want := []chainRun{
			{"hourly", "01:00", "01:10"}, {"rerun", "01:10", "01:15"}, {"export", "01:15", "01:16"},
			// rerun ends partial: export runs anyway (when: always).
			{"hourly", "02:00", "02:10"}, {"rerun", "02:10", "02:15"}, {"export", "02:15", "02:16"},
			// hourly fails: rerun does not run (when: ok), so neither does export.
			{"hourly", "03:00", "03:10"},
			{"hourly", "04:00", "04:10"}, {"rerun", "04:10", "04:15"}, {"export", "04:15", "04:16"},
		}
		if got := rr.list(); !slices.Equal(got, want) {
			t.Errorf("runs:\n got %v\nwant %v", got, want)
		}
	})
}

// TestChainQueuesAhead: a chained run goes ahead of the runs already waiting (it acts on
// the data its leader just wrote), never overlaps another run, and coalesces with a
// firing of its own cron that is already queued.
func TestChainQueuesAhead(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		scheds := chainSchedules(t, `
  - name: hourly
    cron: "0 * * * *"
    extract: {}
  - name: report
    cron: "10 1,2 * * *"
    export: {}
  - name: rerun
    cron: "15 1 * * *"
    after: hourly
    concurrency: skip
    action: {selection: failed-jobs-24h, yes: true}
`)
		rr := &chainRunner{t: t, dur: map[string]time.Duration{"hourly": 20 * time.Minute, "report": 5 * time.Minute, "rerun": 5 * time.Minute}}
		s, err := New(Options{Schedules: scheds, Runner: rr, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		runChain(t, s, 2*time.Hour+59*time.Minute)
		want := []chainRun{
			// report fires at 01:10 while hourly runs and queues; rerun's cron fires at 01:15
			// and is skipped (concurrency: skip, busy); hourly ends at 01:20: rerun goes
			// ahead of report.
			{"hourly", "01:00", "01:20"}, {"rerun", "01:20", "01:25"}, {"report", "01:25", "01:30"},
			{"hourly", "02:00", "02:20"}, {"rerun", "02:20", "02:25"}, {"report", "02:25", "02:30"},
		}
		if got := rr.list(); !slices.Equal(got, want) {
			t.Errorf("runs:\n got %v\nwant %v", got, want)
		}
		snap := s.Snapshot()
		byName := map[string]ScheduleStatus{}
		for _, st := range snap.Schedules {
			byName[st.Name] = st
		}
		if r := byName["rerun"]; r.Fired != 3 || r.Skipped != 1 || r.LastRun.Trigger != "after hourly" {
			t.Errorf("rerun: fired %d, skipped %d, last trigger %q; want 3 fires (2 chained), the busy cron one skipped", r.Fired, r.Skipped, r.LastRun.Trigger)
		}
	})
}

// TestChainNotFired: a leader's firing that was skipped is no run and fires nothing; a
// leader that ran out of quota fires its when: always follower, not its when: ok one; a
// run stopped by shutdown fires nothing.
func TestChainNotFired(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		scheds := chainSchedules(t, `
  - name: long
    cron: "0 1-4 * * *"
    extract: {}
  - name: busy-skipped
    cron: "30 1,2 * * *"
    concurrency: skip
    extract: {}
  - name: after-skipped
    after: busy-skipped
    when: always
    export: {}
  - name: quota
    cron: "50 3 * * *"
    extract: {}
  - name: after-quota-ok
    after: quota
    export: {}
  - name: after-quota-always
    after: quota
    when: always
    export: {}
  - name: stopping
    cron: "0 5 * * *"
    extract: {}
  - name: after-stopping
    after: stopping
    when: always
    export: {}
`)
		rr := &chainRunner{t: t, dur: map[string]time.Duration{"long": 45 * time.Minute, "busy-skipped": time.Minute, "quota": time.Minute,
			"stopping": time.Hour, "after-quota-always": time.Minute},
			outcome: func(name string, _ int) (Outcome, error) {
				if name == "quota" {
					return Outcome{Status: StatusQuotaExhausted, QuotaReset: chainStart.Add(24 * time.Hour)}, nil
				}
				return Outcome{}, nil
			}}
		s, err := New(Options{Schedules: scheds, Runner: rr, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		runChain(t, s, 5*time.Hour+30*time.Minute) // stopping is under way at shutdown
		var got []string
		for _, r := range rr.list() {
			got = append(got, r.name+"@"+r.start)
		}
		want := []string{"long@01:00", "long@02:00", "long@03:00", "quota@03:50", "after-quota-always@03:51", "long@04:00"}
		if !slices.Equal(got, want) {
			t.Errorf("runs:\n got %v\nwant %v", got, want)
		}
		for _, st := range s.Snapshot().Schedules {
			want := 0
			if st.Name == "after-quota-always" {
				want = 1
			}
			if strings.HasPrefix(st.Name, "after-") && st.Fired != want {
				t.Errorf("%s fired %d times, want %d", st.Name, st.Fired, want)
			}
		}
	})
}

// TestStatusShowsTheChain: /status names each schedule's leader, its when, its followers,
// and what triggered its last run.
func TestStatusShowsTheChain(t *testing.T) {
	inBubble(t, func(t *testing.T) {
		scheds := chainSchedules(t, `
  - name: hourly
    cron: "0 * * * *"
    extract: {}
  - name: rerun
    after: hourly
    action: {selection: failed-jobs-24h, yes: true}
`)
		rr := &chainRunner{t: t, dur: map[string]time.Duration{"hourly": time.Minute, "rerun": time.Minute}}
		s, err := New(Options{Schedules: scheds, Runner: rr, Logger: quiet()})
		if err != nil {
			t.Fatal(err)
		}
		runChain(t, s, time.Hour+30*time.Minute)
		srv := httptest.NewServer(NewHandler(HTTPOptions{Scheduler: s, Metrics: NewMetrics(), Logger: quiet()}))
		defer srv.Close()
		resp, err := http.Get(srv.URL + "/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var doc struct {
			Schedules []map[string]any `json:"schedules"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		got := map[string]map[string]any{}
		for _, sc := range doc.Schedules {
			got[sc["name"].(string)] = sc
		}
		h, r := got["hourly"], got["rerun"]
		if fmt.Sprint(h["followers"]) != "[rerun]" || h["after"] != nil || h["last_run"].(map[string]any)["trigger"] != "cron" {
			t.Errorf("hourly in /status: %v", h)
		}
		if r["after"] != "hourly" || r["when"] != "ok" || r["cron"] != "" || r["next_run"] != nil ||
			r["last_run"].(map[string]any)["trigger"] != "after hourly" {
			t.Errorf("rerun in /status: %v", r)
		}
	})
}

// TestNewRefusesBrokenChains: schedules built in code are checked as the file is.
func TestNewRefusesBrokenChains(t *testing.T) {
	ex := &config.Extract{}
	cases := map[string][]*config.Schedule{
		"not a schedule": {{Name: "a", After: "b", Extract: ex}},
		"in a cycle":     {{Name: "a", After: "b", Extract: ex}, {Name: "b", After: "a", Extract: ex}},
		"neither":        {{Name: "a", Extract: ex}},
		"neither ok nor always": {{Name: "a", Cron: "@daily", Extract: ex},
			{Name: "b", After: "a", When: "sometimes", Extract: ex}},
	}
	for want, scheds := range cases {
		_, err := New(Options{Schedules: scheds, Runner: &chainRunner{t: t}, Logger: quiet()})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", want, err)
		}
	}
}
