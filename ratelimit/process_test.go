package ratelimit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/sim"
)

// helperEnv switches the test binary into a child "process" of
// TestTwoProcessesShareOneToken; its value is the child's JSON-encoded helperSpec.
const helperEnv = "DREXTRACT_RATELIMIT_HELPER"

type helperSpec struct {
	URL      string `json:"url"`
	Token    string `json:"token"`
	StateDir string `json:"state_dir"` // "" for a budget of its own
	Workers  int    `json:"workers"`
	// Ready is a file the child creates when it is set up; it then waits for Go to
	// exist, so that both children start together however long they took to start, and
	// calls until Stop exists.
	Ready string `json:"ready"`
	Go    string `json:"go"`
	Stop  string `json:"stop"`
	Out   string `json:"out"`
}

// helperCall is one attempt a child made, as it reports it to the parent.
type helperCall struct {
	Status int   `json:"status"`
	Reset  int64 `json:"reset"` // the server's platform window (epoch ms)
}

type callLog struct {
	mu    sync.Mutex
	calls []helperCall
}

func (l *callLog) ObserveCall(r datorama.CallRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, helperCall{Status: r.Status, Reset: r.Rate.Platform.Reset.UnixMilli()})
}

// waitForFile polls for path to exist; the deadline only bounds a hang.
func waitForFile(path string, within time.Duration) bool {
	for deadline := time.Now().Add(within); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestHelperProcess is the child: on the real clock, with its own estimate of the API's
// clock, it calls as fast as its budget lets it until told to stop, then writes what it
// got to spec.Out.
func TestHelperProcess(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("run only as a child process of TestTwoProcessesShareOneToken")
	}
	var spec helperSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	api := clock.NewRemote(clock.Real{}, discard())
	// The whole window is sent as fast as the workers go (no spreading), the hardest
	// case for sharing; the poll is short so the other process gets its turn quickly.
	budget := NewBudget(spec.Token, Config{Clock: api, StateDir: spec.StateDir, Logger: discard(),
		Safety: Safety{Spread: -1, Poll: 10 * time.Millisecond}})
	log := &callLog{}
	c, err := datorama.New(spec.URL, spec.Token, datorama.WithGate(budget), datorama.WithAPIClock(api),
		datorama.WithObserver(log), datorama.WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec.Ready, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !waitForFile(spec.Go, 5*time.Minute) {
		t.Fatal("never told to go")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range spec.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				c.Workspaces.List(ctx) //nolint:errcheck // the log has every attempt's status
			}
		}()
	}
	if !waitForFile(spec.Stop, 5*time.Minute) {
		t.Error("never told to stop")
	}
	cancel()
	wg.Wait()
	log.mu.Lock()
	defer log.mu.Unlock()
	b, _ := json.Marshal(log.calls)
	if err := os.WriteFile(spec.Out, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// children are helper processes calling one simulator.
type children struct {
	dir  string
	cmds []*exec.Cmd
}

// startChildren starts n child processes against url and waits until they are ready.
func startChildren(t *testing.T, n int, url, token, stateDir string) *children {
	t.Helper()
	ch := &children{dir: t.TempDir()}
	for i := range n {
		spec, _ := json.Marshal(helperSpec{URL: url, Token: token, StateDir: stateDir, Workers: 4,
			Ready: ch.path("ready", i), Go: ch.path("go"), Stop: ch.path("stop"), Out: ch.path("out", i)})
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+string(spec))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ch.cmds = append(ch.cmds, cmd)
	}
	t.Cleanup(func() {
		for _, cmd := range ch.cmds {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		}
	})
	for i := range n {
		if !waitForFile(ch.path("ready", i), 5*time.Minute) {
			t.Fatalf("child %d did not start", i)
		}
	}
	return ch
}

func (ch *children) path(name string, i ...int) string {
	if len(i) > 0 {
		name = fmt.Sprint(name, i[0])
	}
	return filepath.Join(ch.dir, name)
}

func (ch *children) signal(t *testing.T, name string) {
	t.Helper()
	if err := os.WriteFile(ch.path(name), nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

// stop tells the children to stop and returns the calls each made.
func (ch *children) stop(t *testing.T) [][]helperCall {
	t.Helper()
	ch.signal(t, "stop")
	out := make([][]helperCall, len(ch.cmds))
	for i, cmd := range ch.cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
		b, err := os.ReadFile(ch.path("out", i))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// batches holds the requests that reach h until the first batch's worth are waiting,
// then lets them all through at once, and so on for each batch; after the last batch it
// lets every request straight through.
type batches struct {
	h http.Handler

	mu      sync.Mutex
	sizes   []int
	waiting []chan struct{}
}

func (b *batches) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	if len(b.sizes) == 0 {
		b.mu.Unlock()
		b.h.ServeHTTP(w, r)
		return
	}
	release := make(chan struct{})
	b.waiting = append(b.waiting, release)
	if len(b.waiting) == b.sizes[0] {
		for _, c := range b.waiting {
			close(c)
		}
		b.waiting, b.sizes = nil, b.sizes[1:]
	}
	b.mu.Unlock()
	select {
	case <-release:
		b.h.ServeHTTP(w, r)
	case <-r.Context().Done():
	}
}

// waitUntil polls cond; the deadline only bounds a hang.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting, after 2 minutes, for %s", what)
		}
	}
}

// TestTwoProcessesShareOneToken runs two real processes with the same token on the real
// clock against a simulator allowing 6 calls a minute, each with four workers sending as
// fast as its budget allows, both starting at the same instant, until the simulator has
// seen what the case needs. The simulator's clock is set so that the run starts a second
// into a minute window: nothing here waits for a window to reopen.
//
// Sharing the state file, the processes see each other's calls in flight and together
// stay under the limit, whatever the interleaving: the test waits for a window's worth of
// successful calls and checks that none got a 429. The control shows the test can fail:
// each process on its own budget, the server holds both processes' first calls until
// both arrived (so each process's first answer says 4 left, and neither has heard of the
// other's next calls), then holds the next ones until 6 are waiting. Each process then
// sends what its own answer allows (3 or 4), more than the 4 left together, before any
// answer could tell it otherwise: the simulator answers 429.
func TestTwoProcessesShareOneToken(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes on the real clock")
	}
	const limit = 6
	tests := []struct {
		name   string
		shared bool
	}{
		{"sharing a state directory", true},
		{"control: each process on its own", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			simClock := &clock.Offset{}
			s := sim.New(sim.Options{Seed: 1, Streams: 5, JobsPerStream: -1, PlatformLimit: limit, Clock: simClock})
			mux := http.NewServeMux()
			mux.Handle("/base/", http.StripPrefix("/base", s))
			var h http.Handler = mux
			if !tt.shared {
				h = &batches{h: mux, sizes: []int{2, limit}}
			}
			srv := httptest.NewServer(h)
			defer srv.Close()
			stateDir := ""
			if tt.shared {
				stateDir = t.TempDir()
			}
			ch := startChildren(t, 2, srv.URL+"/base", s.Tokens()[0], stateDir)
			// A second into a window: the run ends long before the next.
			now := simClock.Now()
			simClock.Advance(now.Truncate(time.Minute).Add(time.Minute + time.Second).Sub(now))
			ch.signal(t, "go")
			if tt.shared {
				waitUntil(t, "a window's worth of successful calls", func() bool { return s.Calls().ByStatus["200"] >= limit })
			} else {
				waitUntil(t, "a 429 (two processes with separate budgets overran the limit)", func() bool { return s.Calls().ByStatus["429"] > 0 })
			}
			children := ch.stop(t)
			perWindow := map[int64]int{}
			for i, calls := range children {
				ok := 0
				for _, c := range calls {
					if c.Status == 200 {
						ok++
						perWindow[c.Reset]++
					}
				}
				// Which process gets more of a window is first come, first served: the
				// flock gives no fairness, and one may even get none.
				t.Logf("child %d: %d attempts, %d succeeded", i, len(calls), ok)
			}
			throttled := s.Calls().ByStatus["429"]
			t.Logf("successful calls per server window: %v; 429s: %d", perWindow, throttled)
			if !tt.shared {
				return // the wait above was the check
			}
			if throttled != 0 {
				t.Errorf("the simulator answered %d × 429", throttled)
			}
			for w, n := range perWindow {
				if n > limit {
					t.Errorf("window ending %v: %d calls, limit %d", time.UnixMilli(w).UTC(), n, limit)
				}
			}
		})
	}
}
