package ratelimit

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
)

// deadPID returns the pid of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	if err := cmd.Run(); err != nil {
		t.Fatalf("running a short-lived process: %v", err)
	}
	return cmd.Process.Pid
}

// writeState writes a state file as another process would have left it.
func writeState(t *testing.T, dir, token string, edit func(s *state)) {
	t.Helper()
	fp := datorama.Fingerprint(token)
	s := newState(fp, testConfig(), t0)
	edit(s)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, fp+".json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSharedStateIsOneBudget: two Budgets of one token on one StateDir (two "processes")
// spend one window between them, and each sees the other's calls.
func TestSharedStateIsOneBudget(t *testing.T) {
	synctest.Test(t, testSharedStateIsOneBudget)
}

func testSharedStateIsOneBudget(t *testing.T) {
	dir := t.TempDir()
	mc := clock.NewManual(t0)
	cfg := Config{Clock: mc, StateDir: dir, PlatformLimit: 10, Safety: Safety{Spread: -1}}
	a, b := NewBudget("token-a", cfg), NewBudget("token-a", cfg)
	reset := t0.Add(time.Minute)
	p := mustAcquire(t, a, context.Background(), platformCall)
	p.Done(200, rate(platform(10, 9, reset)...), 0)
	granted := 1
	for i := 0; ; i++ {
		g := []*Budget{a, b}[i%2]
		p, err := acquireNow(g, platformCall)
		if err != nil {
			break
		}
		granted++
		// Answers as the server would: it counted every call so far.
		p.Done(200, rate(platform(10, 10-granted, reset)...), 0)
	}
	if granted != 10 {
		t.Errorf("the two budgets granted %d calls in a window of 10", granted)
	}
	for _, g := range []*Budget{a, b} {
		if st := g.Status(); st.Platform.Remaining != 0 || st.Platform.External != 0 {
			t.Errorf("%s status %+v, want 0 left and no external spending", g.owner, st.Platform)
		}
	}
	st, found, err := ReadStatus(dir, datorama.Fingerprint("token-a"), Config{Clock: mc})
	if err != nil || !found {
		t.Fatalf("ReadStatus: %v, found %v", err, found)
	}
	if st.Platform.Remaining != 0 || !st.Platform.Reset.Equal(reset) || st.Updated.IsZero() {
		t.Errorf("ReadStatus %+v", st)
	}
	fps, err := Fingerprints(dir)
	if err != nil || len(fps) != 1 || fps[0] != datorama.Fingerprint("token-a") {
		t.Errorf("Fingerprints = %v, %v", fps, err)
	}
}

// TestStaleStateBlocksNobody: what a crashed process left behind must not hold up a call.
func TestStaleStateBlocksNobody(t *testing.T) {
	dead := deadPID(t)
	now := t0.Add(30 * time.Second)
	reset := t0.Add(time.Minute)
	tests := []struct {
		name string
		edit func(s *state)
	}{
		{"the window's first call in flight in a dead process", func(s *state) {
			s.InFlight = []flight{{ID: "x-1", PID: dead, Kind: datorama.Platform, Sent: now.Add(-time.Second), Window: reset}}
		}},
		{"a call left by an earlier process that had this process's pid", func(s *state) {
			s.InFlight = []flight{{ID: "x-1", Owner: "gone", PID: os.Getpid(), Kind: datorama.Platform, Sent: now.Add(-time.Second), Window: reset}}
		}},
		{"a call in flight for more than a minute", func(s *state) {
			s.InFlight = []flight{{ID: "x-1", PID: os.Getppid(), Kind: datorama.Platform, Sent: now.Add(-2 * time.Minute), Window: reset}}
		}},
		{"a window closed long ago", func(s *state) {
			s.Platform = windowState{Limit: 60, Reset: t0.Add(-time.Hour), Known: true, Used: 60}
		}},
		{"a backoff far in the future", func(s *state) {
			s.Platform.BlockedUntil = now.Add(48 * time.Hour)
		}},
		{"a daily quota spent yesterday", func(s *state) {
			s.Daily = dailyState{Limit: 20000, Reset: t0.Add(-time.Hour), Known: true, Used: 20000}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				writeState(t, dir, "token-a", tt.edit)
				mc := clock.NewManual(now)
				b := NewBudget("token-a", Config{Clock: mc, StateDir: dir})
				p, err := acquireNow(b, platformCall)
				if err != nil {
					t.Fatalf("Acquire: %v", err)
				}
				p.Done(200, rate(), 0)
			})
		})
	}
}

// TestWaitsForAnotherProcessesProbe: a live process's first call of the window makes
// this one wait, polling the file, until its answer is recorded.
func TestWaitsForAnotherProcessesProbe(t *testing.T) {
	synctest.Test(t, testWaitsForAnotherProcessesProbe)
}

func testWaitsForAnotherProcessesProbe(t *testing.T) {
	dir := t.TempDir()
	now := t0.Add(30 * time.Second)
	reset := t0.Add(time.Minute)
	writeState(t, dir, "token-a", func(s *state) {
		s.InFlight = []flight{{ID: "other-1", PID: os.Getppid(), Kind: datorama.Platform, Sent: now, Window: reset}}
	})
	mc := clock.NewManual(now)
	b := NewBudget("token-a", Config{Clock: mc, StateDir: dir})
	got := make(chan error, 1)
	go func() {
		p, err := b.Acquire(context.Background(), platformCall)
		if err == nil {
			p.Done(200, rate(), 0)
		}
		got <- err
	}()
	synctest.Wait() // the call read the file and waits to poll it again
	if n := mc.Pending(); n != 1 {
		t.Fatalf("%d timers pending, want the poll's", n)
	}
	select {
	case err := <-got:
		t.Fatalf("Acquire returned (%v) while another process's probe was in flight", err)
	default:
	}
	// The other process records its answer.
	writeState(t, dir, "token-a", func(s *state) {
		s.Platform = windowState{Limit: 60, Reset: reset, Known: true, Used: 10, Sent: 1}
		s.Updated = now
	})
	mc.Advance(250 * time.Millisecond)
	if err := <-got; err != nil {
		t.Fatalf("Acquire: %v", err)
	}
}

func TestCorruptStateFileIsReplaced(t *testing.T) {
	for name, content := range map[string]string{
		"not json":          "{{{ garbage",
		"another token":     `{"version":1,"fingerprint":"tok_00000000"}`,
		"a future version":  `{"version":99,"fingerprint":"` + datorama.Fingerprint("token-a") + `"}`,
		"hostile structure": `{"version":1,"fingerprint":"` + datorama.Fingerprint("token-a") + `","platform":{"limit":-1,"remaining":-99999999,"reset":"9999-01-01T00:00:00Z"},"in_flight":[{"id":"a","pid":-5,"sent":"0001-01-01T00:00:00Z"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, datorama.Fingerprint("token-a")+".json")
				if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
				mc := clock.NewManual(t0)
				b := NewBudget("token-a", Config{Clock: mc, StateDir: dir, Logger: discard()})
				p, err := acquireNow(b, platformCall)
				if err != nil {
					t.Fatalf("Acquire: %v", err)
				}
				p.Done(200, rate(), 0)
				if _, err := readState(path, datorama.Fingerprint("token-a")); err != nil {
					t.Errorf("state file still unreadable: %v", err)
				}
			})
		})
	}
}

func TestReadStatusWithoutState(t *testing.T) {
	dir := t.TempDir()
	_, found, err := ReadStatus(dir, "tok_12345678", Config{})
	if err != nil || found {
		t.Errorf("ReadStatus of nothing = found %v, %v", found, err)
	}
	fps, err := Fingerprints(filepath.Join(dir, "missing"))
	if err != nil || len(fps) != 0 {
		t.Errorf("Fingerprints of a missing dir = %v, %v", fps, err)
	}
}
