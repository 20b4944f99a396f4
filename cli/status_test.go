package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/ratelimit"
	"github.com/drextract/drextract/sim"
)

// spend makes n calls with the token through a budget sharing the env's data directory,
// as a crawl in another process would.
func (e *extractEnv) spend(t *testing.T, n int) {
	t.Helper()
	b := ratelimit.NewBudget(e.token, ratelimit.Config{Clock: wireHooks.clock, StateDir: ratelimit.StateDirIn(e.dataDir)})
	c, err := datorama.New(e.base, e.token, datorama.WithGate(b), datorama.WithClock(wireHooks.clock))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ratelimit.WithPriority(context.Background(), ratelimit.Interactive)
	for range n {
		if _, err := c.Workspaces.List(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStatusCommand(t *testing.T) {
	fp := datorama.Fingerprint
	tests := []struct {
		name     string
		opts     sim.Options
		setup    func(t *testing.T, e *extractEnv)
		args     []string
		wantCode int
		want     []string // substrings of stdout
		calls    int      // API calls the command itself may make
	}{
		{
			name: "no state yet", args: []string{"status"},
			want: []string{"(env:DATORAMA_TOKEN)", "no state yet"},
		},
		{
			name:  "what another process spent, without an API call",
			setup: func(t *testing.T, e *extractEnv) { e.spend(t, 12) },
			args:  []string{"status"},
			want: []string{
				"platform      48 of     60 left this minute, resets 23:51:00Z (confirmed by the API)",
				"query        200 of    200 left this minute, resets 23:51:00Z (confirmed by the API)",
				"today      19988 of  20000 left today, resets 2026-03-03T00:00:00Z (confirmed by the API)",
				"reserve     2000 held back for interactive calls: scheduled work may spend 17988 more today",
			},
		},
		{
			name: "probe reads the headers afresh", args: []string{"status", "--probe"}, calls: 1,
			want: []string{"platform      59 of     60 left this minute", "today      19999 of  20000 left today"},
		},
		{
			// The process has not seen the API's clock yet, so its budget lets one call
			// through the stop in case the API's day has turned (ratelimit/apiclock.go).
			name: "probe with the day spent: prints, then exits quota exhausted",
			opts: sim.Options{DailyQuota: 5}, setup: func(t *testing.T, e *extractEnv) { e.spend(t, 5) },
			args: []string{"status", "--probe"}, wantCode: ExitQuotaExhausted, calls: 1,
			want: []string{"today          0 of      5 left today", "reserve        1 held back"},
		},
		{
			name: "a token with a state but no longer configured is shown",
			setup: func(t *testing.T, e *extractEnv) {
				e.spend(t, 1)
				t.Setenv("DATORAMA_TOKEN", "another-token")
			},
			args: []string{"status"},
			want: []string{fp("another-token") + " (env:DATORAMA_TOKEN)  no state yet", "platform      59 of     60"},
		},
		{name: "unknown format", args: []string{"status", "--format", "yaml"}, wantCode: ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.Seed, o.Streams, o.JobsPerStream, o.PlatformLimit = 1, 5, -1, 60
			if o.DailyQuota == 0 {
				o.DailyQuota = 20000
			}
			e := newExtractEnv(t, o)
			if tt.setup != nil {
				tt.setup(t, e)
			}
			before := e.sim.Calls().Total
			code, stdout, stderr := e.run(tt.args...)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.wantCode, stdout, stderr)
			}
			for _, want := range tt.want {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
			if calls := e.sim.Calls().Total - before; calls > tt.calls {
				t.Errorf("status made %d API calls, want at most %d", calls, tt.calls)
			}
		})
	}
}

func TestStatusCommandJSON(t *testing.T) {
	e := newExtractEnv(t, sim.Options{Seed: 1, Streams: 5, JobsPerStream: -1, PlatformLimit: 60, DailyQuota: 1000})
	e.spend(t, 3)
	code, stdout, stderr := e.run("status", "--format", "json")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var got struct {
		StateDir string `json:"state_dir"`
		Tokens   []struct {
			Fingerprint string
			Source      string
			State       *ratelimit.Status
		}
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v\n%s", err, stdout)
	}
	if len(got.Tokens) != 1 || got.Tokens[0].State == nil {
		t.Fatalf("tokens %+v", got.Tokens)
	}
	tok := got.Tokens[0]
	if tok.Fingerprint != datorama.Fingerprint(e.token) || tok.State.Platform.Remaining != 57 ||
		tok.State.Daily.Remaining != 997 || tok.State.Daily.Reserve != 100 {
		t.Errorf("status %+v", tok)
	}
	if got.StateDir != ratelimit.StateDirIn(e.dataDir) {
		t.Errorf("state dir %q", got.StateDir)
	}
}
