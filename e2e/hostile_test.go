package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/cli"
	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// TestHostileListing is issue 12's "hostile listing" case. The real CLI crawls the
// simulator over HTTP; then, one at a time, listings answer impossible content: a
// workspace's stream list with two records under one id (the bug that used to mark a
// real stream deleted), stats pages whose every job carries the first job's id, a job
// whose status is null, a workspace list with a negative id, a dimensions map naming a
// system name twice. Each run ends partial (exit 3) and names the refused parent on
// stderr, with the refusal, and in runs.incomplete; no stored row is changed and none
// is marked deleted. A later clean crawl ends ok and equals the simulator's truth.
//
// The simulator's clock is frozen, so its truth is what every crawl could read.
func TestHostileListing(t *testing.T) {
	if testing.Short() {
		t.Skip("seven crawls through the CLI")
	}
	ctx := context.Background()
	s := sim.New(sim.Options{Seed: 3, Workspaces: 2, Streams: 12, JobsPerStream: 10, Clock: clock.NewManual(time.Now()),
		PlatformLimit: unlimited, QueryLimit: unlimited, DailyQuota: unlimited, Logger: quietLogger()})
	srv := httptest.NewServer(http.StripPrefix("/base", s))
	defer srv.Close()

	dir := t.TempDir()
	t.Chdir(dir)
	dataDir := filepath.Join(dir, "data")
	live := filepath.Join(dataDir, load.LiveFile)
	t.Setenv("DATORAMA_TOKEN", s.Tokens()[0])
	t.Setenv("DATORAMA_BASE_URL", srv.URL+"/base")
	extract := func(want int, args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := cli.DoContext(ctx, append([]string{"--data-dir", dataDir, "extract"}, args...), strings.NewReader(""), &stdout, &stderr)
		if code != want {
			t.Fatalf("extract %v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", args, code, want, stdout.String(), stderr.String())
		}
		return stderr.String()
	}
	// store reads the current-state tables and the last run's incomplete parents.
	store := func() (snapshot, []string) {
		t.Helper()
		db := openDuck(t, live+"?access_mode=read_only")
		defer db.Close()
		var raw string
		if err := db.QueryRow(`SELECT CAST(coalesce(incomplete, '[]') AS VARCHAR) FROM runs ORDER BY id DESC LIMIT 1`).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		var incomplete []string
		if err := json.Unmarshal([]byte(raw), &incomplete); err != nil {
			t.Fatalf("runs.incomplete %q: %v", raw, err)
		}
		return storeSnapshot(t, db), incomplete
	}

	extract(0)
	truth := truthSnapshot(t, s.Truth())
	clean, _ := store()
	assertEqual(t, "after the first crawl", clean, truth)
	if t.Failed() {
		return
	}

	var tr struct {
		Workspaces []struct {
			ID int64 `json:"id"`
		} `json:"workspaces"`
		Streams []struct {
			ID          int64 `json:"id"`
			WorkspaceID int64 `json:"workspaceId"`
		} `json:"streams"`
	}
	raw, err := json.Marshal(s.Truth())
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &tr); err != nil {
		t.Fatal(err)
	}
	ws := tr.Workspaces[0].ID
	streamsOf := 0
	for _, st := range tr.Streams {
		if st.WorkspaceID == ws {
			streamsOf++
		}
	}
	if streamsOf < 2 {
		t.Fatalf("workspace %d has %d streams; the test needs two to repeat an id", ws, streamsOf)
	}

	for _, tc := range []struct {
		name    string
		faults  string
		full    bool     // --full, so that lists an incremental crawl would skip are read
		parents []string // parents the run must name; "jobs of stream *" means at least one
		says    string   // what stderr must say of the refusal
	}{
		{"a stream listing repeats an id", fmt.Sprintf("dupid=1,path=/v1/workspaces/%d/data-streams", ws), false,
			[]string{fmt.Sprintf("streams of workspace %d", ws)}, "repeats the record at index 0"},
		{"every job of a page carries one id", "sameid=1,path=/v1/data-streams/api/*/stats", true,
			[]string{"jobs of stream *"}, "repeats the record at index 0"},
		{"a job's status is null", "nullstatus=1,path=/v1/data-streams/api/*/stats", true,
			[]string{"jobs of stream *"}, "field status is null"},
		{"the workspace list has a negative id", "negid=1,path=/v1/workspaces", false,
			[]string{"workspaces"}, "must be a positive integer"},
		{"dimensions name a system name twice", fmt.Sprintf("dupid=1,path=/v1/workspaces/%d/dimensions", ws), true,
			[]string{fmt.Sprintf("dimensions of workspace %d", ws)}, "system name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := sim.ParseFaults(tc.faults)
			if err != nil {
				t.Fatal(err)
			}
			s.SetFaults(f)
			defer s.SetFaults(sim.Faults{})
			var args []string
			if tc.full {
				args = append(args, "--full")
			}
			stderr := extract(3, args...)
			if len(s.Calls().Faults) == 0 {
				t.Fatal("the simulator served no hostile listing")
			}
			got, incomplete := store()
			for _, p := range tc.parents {
				named := slices.Contains(incomplete, p)
				if prefix, ok := strings.CutSuffix(p, "*"); ok {
					named = slices.ContainsFunc(incomplete, func(q string) bool { return strings.HasPrefix(q, prefix) })
				}
				if !named {
					t.Errorf("runs.incomplete %q does not name %q", incomplete, p)
				}
			}
			for _, p := range incomplete {
				if !strings.Contains(stderr, p) {
					t.Errorf("stderr does not name the incomplete parent %q:\n%s", p, stderr)
				}
			}
			if !strings.Contains(stderr, tc.says) {
				t.Errorf("stderr does not say %q:\n%s", tc.says, stderr)
			}
			// Nothing stored changed, nothing was marked deleted.
			assertEqual(t, "after the hostile crawl", got, truth)
			for table, rows := range got {
				for k, r := range rows {
					if r.deleted {
						t.Errorf("%s %s marked deleted on the evidence of a refused listing", table, k)
					}
					if before := clean[table][k]; before.raw != r.raw {
						t.Errorf("%s %s changed: %s -> %s", table, k, clip(before.raw), clip(r.raw))
					}
				}
			}
		})
	}

	extract(0)
	final, incomplete := store()
	if len(incomplete) != 0 {
		t.Errorf("the clean crawl left %v incomplete", incomplete)
	}
	assertEqual(t, "after the clean crawl", final, truthSnapshot(t, s.Truth()))
}
