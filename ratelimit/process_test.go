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
	URL      string        `json:"url"`
	Token    string        `json:"token"`
	StateDir string        `json:"state_dir"` // "" for a budget of its own
	For      time.Duration `json:"for"`
	Workers  int           `json:"workers"`
	// Ready is a file the child creates when it is set up; it then waits for Go to
	// exist, so that both children start together however long they took to start.
	Ready string `json:"ready"`
	Go    string `json:"go"`
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

// TestHelperProcess is the child: on the real clock, it calls as fast as its budget
// lets it for spec.For, then writes what it got to spec.Out.
func TestHelperProcess(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("run only as a child process of TestTwoProcessesShareOneToken")
	}
	var spec helperSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	// The whole window is sent as fast as the workers go (no spreading), the hardest
	// case for sharing; the poll is short so the other process gets its turn quickly.
	budget := NewBudget(spec.Token, Config{StateDir: spec.StateDir, Logger: discard(),
		Safety: Safety{Spread: -1, Poll: 10 * time.Millisecond}})
	log := &callLog{}
	c, err := datorama.New(spec.URL, spec.Token, datorama.WithGate(budget), datorama.WithObserver(log), datorama.WithLogger(discard()))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spec.Ready, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := os.Stat(spec.Go); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never told to go")
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), spec.For)
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
	wg.Wait()
	log.mu.Lock()
	defer log.mu.Unlock()
	b, _ := json.Marshal(log.calls)
	if err := os.WriteFile(spec.Out, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// runChildren runs n child processes against url for d and returns their calls.
func runChildren(t *testing.T, n int, url, token, stateDir string, d time.Duration) [][]helperCall {
	t.Helper()
	dir := t.TempDir()
	cmds := make([]*exec.Cmd, n)
	goFile := filepath.Join(dir, "go")
	ready := make([]string, n)
	for i := range n {
		ready[i] = filepath.Join(dir, fmt.Sprint("ready", i))
		spec, _ := json.Marshal(helperSpec{URL: url, Token: token, StateDir: stateDir, For: d, Workers: 4,
			Ready: ready[i], Go: goFile, Out: filepath.Join(dir, fmt.Sprint(i))})
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+string(spec))
		cmds[i] = cmd
	}
	for _, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
	}
	eventually := func() bool {
		for _, r := range ready {
			if _, err := os.Stat(r); err != nil {
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(30 * time.Second); !eventually(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the children did not start")
		}
	}
	if err := os.WriteFile(goFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out := make([][]helperCall, n)
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestTwoProcessesShareOneToken runs two real processes with the same token on the
// real clock against a simulator allowing 20 calls a minute (answering after a few
// milliseconds, like a network), each with four workers sending as fast as its budget
// allows, both starting at the same instant. Sharing the state file, the processes see each
// other's calls in flight and together stay under the limit. Without it (the control)
// each learns of the other's calls only from answers, too late while both have calls
// in flight: they overrun the limit, which shows the test can fail.
func TestTwoProcessesShareOneToken(t *testing.T) {
	if testing.Short() {
		t.Skip("runs processes on the real clock for a few seconds")
	}
	const limit = 20
	tests := []struct {
		name   string
		shared bool
	}{
		{"sharing a state directory", true},
		{"control: each process on its own", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sim.New(sim.Options{Seed: 1, Streams: 5, JobsPerStream: -1, PlatformLimit: limit, Clock: clock.Real{}})
			mux := http.NewServeMux()
			mux.Handle("/base/", http.StripPrefix("/base", s))
			// A network's few milliseconds of latency, so calls of both processes are
			// in flight at once, as they would be against the real API.
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				time.Sleep(3 * time.Millisecond)
				mux.ServeHTTP(w, r)
			}))
			defer srv.Close()
			stateDir := ""
			if tt.shared {
				stateDir = t.TempDir()
			}
			children := runChildren(t, 2, srv.URL+"/base", s.Tokens()[0], stateDir, 2*time.Second)
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
				if throttled == 0 && len(perWindow) > 1 {
					t.Skip("the bursts fell on both sides of a minute boundary; nothing to show")
				}
				if throttled == 0 {
					t.Errorf("two processes with separate budgets got no 429: the scenario does not stress the limit")
				}
				return
			}
			if throttled != 0 {
				t.Errorf("the simulator answered %d × 429", throttled)
			}
			total := 0
			for w, n := range perWindow {
				total += n
				if n > limit {
					t.Errorf("window ending %v: %d calls, limit %d", time.UnixMilli(w).UTC(), n, limit)
				}
			}
			if total < limit {
				t.Errorf("%d calls together, want the %d a window allows", total, limit)
			}
		})
	}
}
