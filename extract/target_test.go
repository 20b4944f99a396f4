package extract

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// truthStreamsByWorkspace maps every live stream of the truth to its workspace.
func truthStreamsByWorkspace(t testing.TB, tr sim.Truth) map[int64]int64 {
	t.Helper()
	out := map[int64]int64{}
	for _, raw := range tr.Streams {
		var s struct {
			ID          int64 `json:"id"`
			WorkspaceID int64 `json:"workspaceId"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatal(err)
		}
		out[s.ID] = s.WorkspaceID
	}
	return out
}

// statsStreams are the streams whose stats pages the simulator served since pages were
// last reset, with how many pages each.
func (e *env) statsStreams() map[int64]int {
	out := map[int64]int{}
	for key, n := range e.pagesServed() {
		var id int64
		if _, err := fmt.Sscanf(key, "/v1/data-streams/api/%d/stats", &id); err != nil {
			e.t.Fatalf("stats key %q: %v", key, err)
		}
		out[id] += n
	}
	return out
}

// plan is the crawler's plan for o, failing the test on an error.
func (e *env) plan(o Options) Plan {
	e.t.Helper()
	o.Clock = e.clk
	p, err := e.crawler.Plan(context.Background(), o)
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

func (e *env) resetCounts() {
	e.sim.ResetCalls()
	e.mu.Lock()
	e.pages = nil
	e.mu.Unlock()
}

// storedJobs is the live jobs the store holds for a stream: id → canonical raw record.
func (e *env) storedJobs(stream int64) map[int64]string {
	e.t.Helper()
	rows, err := e.store.DB().Query(`SELECT id, CAST(raw AS VARCHAR) FROM jobs WHERE stream_id = $1 AND NOT is_deleted`, stream)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[int64]string{}
	for rows.Next() {
		var id int64
		var raw string
		if err := rows.Scan(&id, &raw); err != nil {
			e.t.Fatal(err)
		}
		out[id] = canonical(e.t, []byte(raw))
	}
	return out
}

// truthJobsRaw is the truth's jobs of a stream: id → canonical record.
func truthJobsRaw(t testing.TB, tr sim.Truth, stream int64) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	for _, raw := range tr.Jobs {
		var j struct {
			ID           int64 `json:"id"`
			DataStreamID int64 `json:"dataStreamId"`
		}
		if err := json.Unmarshal(raw, &j); err != nil {
			t.Fatal(err)
		}
		if j.DataStreamID == stream {
			out[j.ID] = canonical(t, raw)
		}
	}
	return out
}

func equalJobs(a, b map[int64]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestTargetedStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sim.Options{Seed: 141, Workspaces: 2, Streams: 20, JobsPerStream: 30, MaxPageSize: 10})
	if res := e.crawl(Options{}); res.Status != load.RunOK {
		t.Fatalf("first crawl: %s %v", res.Status, res.Incomplete)
	}
	tr := e.sim.Truth()
	byWS := truthStreamsByWorkspace(t, tr)
	_, streams := truthJobCounts(t, tr)
	target, other, deleted := streams[2], streams[5], int64(0)
	for _, id := range streams {
		if byWS[id] != byWS[target] {
			deleted = id
			break
		}
	}
	// While nobody looks, the target and another stream run, a stream of the other
	// workspace is deleted and the target is renamed and remapped.
	e.sim.RunStreams([]int64{target, other})
	e.sim.Advance(time.Hour)
	e.sim.Mutate(func(st *sim.State) {
		if err := st.DeleteStream(deleted); err != nil {
			t.Fatal(err)
		}
		if err := st.RenameStream(target, "renamed for the target"); err != nil {
			t.Fatal(err)
		}
		if err := st.SetStreamConfig(target, "mapping", fmt.Appendf(nil, `{"dataStreamId":%d,"fields":[]}`, target)); err != nil {
			t.Fatal(err)
		}
	})
	tr = e.sim.Truth()
	otherBefore := e.storedJobs(other)

	e.resetCounts()
	plan := e.plan(Options{Streams: []int64{target}})
	res := e.crawl(Options{Streams: []int64{target}})
	if res.Status != load.RunOK {
		t.Fatalf("targeted crawl: %s %v %v", res.Status, res.Incomplete, res.Err)
	}
	if res.Calls < plan.Calls || res.Calls > plan.UpTo {
		t.Errorf("the targeted crawl made %d calls; its plan said %d up to %d", res.Calls, plan.Calls, plan.UpTo)
	}
	calls := e.sim.Calls()
	stats := e.statsStreams()
	t.Logf("targeted crawl: %d calls %v", calls.Total, calls.ByEndpoint)
	// One GET of the stream, its pages, its mapping; nothing else.
	if got := calls.ByEndpoint["GET /v1/data-streams/{id}"]; got != 1 {
		t.Errorf("%d GETs of the stream, want 1", got)
	}
	if got := calls.ByEndpoint["GET /v1/data-streams/api/{id}/mapping"]; got != 1 {
		t.Errorf("%d mapping calls, want 1", got)
	}
	statsCalls := calls.ByEndpoint["POST /v1/data-streams/api/{id}/stats"]
	if statsCalls == 0 || calls.Total != 2+statsCalls {
		t.Errorf("%d calls with %d stats pages; want only the stream's GET, its pages and its mapping", calls.Total, statsCalls)
	}
	if len(stats) != 1 || stats[target] == 0 {
		t.Errorf("stats pages served %v, want only stream %d's", stats, target)
	}
	// The target equals the API; nothing else changed or was marked deleted.
	if got, want := e.storedJobs(target), truthJobsRaw(t, tr, target); !equalJobs(got, want) {
		t.Errorf("stream %d: %d jobs stored, the API has %d (or they differ)", target, len(got), len(want))
	}
	if got := e.queryInt(`SELECT count(*) FROM streams WHERE id = $1 AND name = 'renamed for the target' AND NOT is_deleted`, target); got != 1 {
		t.Errorf("stream %d: the new name is not stored", target)
	}
	if got := e.queryInt(`SELECT count(*) FROM mappings WHERE stream_id = $1 AND NOT is_deleted AND CAST(raw AS VARCHAR) LIKE '%"fields":[]%'`, target); got != 1 {
		t.Errorf("stream %d: the new mapping is not stored", target)
	}
	if got := e.storedJobs(other); !equalJobs(got, otherBefore) {
		t.Errorf("stream %d outside the target changed in the store", other)
	}
	for _, table := range []string{"workspaces", "streams", "jobs", "mappings", "dimensions"} {
		if got := e.queryInt(`SELECT count(*) FROM ` + table + ` WHERE is_deleted`); got != 0 {
			t.Errorf("%s: %d rows marked deleted by a crawl of stream %d", table, got, target)
		}
	}

	// The next crawl of everything finds the target's checkpoints current: it reads the
	// stream that ran, not the target again, and ends equal to the API.
	e.resetCounts()
	if res := e.crawl(Options{}); res.Status != load.RunOK {
		t.Fatalf("crawl after the targeted one: %s %v", res.Status, res.Incomplete)
	}
	e.assertEqualTruth()
	if n := e.statsStreams()[target]; n != 0 {
		t.Errorf("the crawl after the targeted one read stream %d again (%d pages)", target, n)
	}
	if got := e.sim.Calls().ByEndpoint["GET /v1/data-streams/api/{id}/mapping"]; got != 0 {
		t.Errorf("the crawl after the targeted one read %d mappings; the target's was current", got)
	}
	if got := e.queryInt(`SELECT count(*) FROM streams WHERE id = $1 AND is_deleted`, deleted); got != 1 {
		t.Errorf("deleted stream %d not marked deleted by the full listing", deleted)
	}
}

func TestTargetedStreamOnAnEmptyStore(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sim.Options{Seed: 142, Workspaces: 2, Streams: 10, JobsPerStream: 25, MaxPageSize: 10})
	tr := e.sim.Truth()
	_, streams := truthJobCounts(t, tr)
	target := streams[3]
	e.resetCounts()
	res := e.crawl(Options{Streams: []int64{target}})
	if res.Status != load.RunOK {
		t.Fatalf("targeted crawl: %s %v %v", res.Status, res.Incomplete, res.Err)
	}
	t.Logf("targeted crawl: %d calls %v", res.Calls, e.sim.Calls().ByEndpoint)
	if got, want := e.storedJobs(target), truthJobsRaw(t, tr, target); !equalJobs(got, want) {
		t.Errorf("stream %d: %d jobs stored, the API has %d (or they differ)", target, len(got), len(want))
	}
	if got := e.queryInt(`SELECT count(*) FROM streams`); got != 1 {
		t.Errorf("%d streams stored, want the target alone", got)
	}
	if got := e.queryInt(`SELECT count(*) FROM workspaces`); got != 0 {
		t.Errorf("%d workspaces stored; the targeted crawl does not read the workspace list", got)
	}
	served := e.statsStreams()[target]

	e.resetCounts()
	if res := e.crawl(Options{}); res.Status != load.RunOK {
		t.Fatalf("crawl after the targeted one: %s %v", res.Status, res.Incomplete)
	}
	e.assertEqualTruth()
	if n := e.statsStreams()[target]; n != 0 {
		t.Errorf("the full crawl read stream %d again (%d pages after %d)", target, n, served)
	}
}

func TestTargetedWorkspace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sim.Options{Seed: 143, Workspaces: 3, Streams: 30, JobsPerStream: 20, MaxPageSize: 10})
	if res := e.crawl(Options{}); res.Status != load.RunOK {
		t.Fatalf("first crawl: %s %v", res.Status, res.Incomplete)
	}
	tr := e.sim.Truth()
	byWS := truthStreamsByWorkspace(t, tr)
	_, streams := truthJobCounts(t, tr)
	target := byWS[streams[0]]
	var inside, outside []int64
	for _, id := range streams {
		if byWS[id] == target {
			inside = append(inside, id)
		} else {
			outside = append(outside, id)
		}
	}
	goneIn, goneOut := inside[1], outside[1]
	e.sim.RunStreams([]int64{inside[2], inside[3], outside[2], outside[3]})
	e.sim.Advance(time.Hour)
	e.sim.Mutate(func(st *sim.State) {
		for _, id := range []int64{goneIn, goneOut} {
			if err := st.DeleteStream(id); err != nil {
				t.Fatal(err)
			}
		}
	})
	outsideBefore := map[int64]map[int64]string{}
	for _, id := range outside {
		outsideBefore[id] = e.storedJobs(id)
	}

	e.resetCounts()
	plan := e.plan(Options{Workspaces: []int64{target}})
	res := e.crawl(Options{Workspaces: []int64{target}})
	if res.Status != load.RunOK {
		t.Fatalf("targeted crawl: %s %v %v", res.Status, res.Incomplete, res.Err)
	}
	if res.Calls < plan.Calls || res.Calls > plan.UpTo {
		t.Errorf("the targeted crawl made %d calls; its plan said %d up to %d", res.Calls, plan.Calls, plan.UpTo)
	}
	calls := e.sim.Calls()
	t.Logf("targeted crawl: %d calls %v", calls.Total, calls.ByEndpoint)
	if got := calls.ByEndpoint["GET /v1/workspaces"]; got != 0 {
		t.Errorf("the workspace list was read %d times", got)
	}
	if got := calls.ByEndpoint["GET /v1/workspaces/{wsId}/data-streams"]; got != 1 {
		t.Errorf("%d stream lists read, want the target's", got)
	}
	for id := range e.statsStreams() {
		if byWS[id] != target {
			t.Errorf("stream %d of workspace %d read by a crawl of workspace %d", id, byWS[id], target)
		}
	}
	tr = e.sim.Truth()
	for _, id := range inside {
		if id == goneIn {
			continue
		}
		if got, want := e.storedJobs(id), truthJobsRaw(t, tr, id); !equalJobs(got, want) {
			t.Errorf("stream %d of the target: %d jobs stored, the API has %d (or they differ)", id, len(got), len(want))
		}
	}
	for _, id := range outside {
		if got := e.storedJobs(id); !equalJobs(got, outsideBefore[id]) {
			t.Errorf("stream %d outside the target changed in the store", id)
		}
	}
	if got := e.queryInt(`SELECT count(*) FROM streams WHERE id = $1 AND is_deleted`, goneIn); got != 1 {
		t.Errorf("stream %d, deleted inside the target, not marked deleted", goneIn)
	}
	if got := e.queryInt(`SELECT count(*) FROM jobs WHERE stream_id = $1 AND NOT is_deleted`, goneIn); got != 0 {
		t.Errorf("stream %d, deleted inside the target, keeps %d live jobs", goneIn, got)
	}
	deletedOutside := e.queryInt(`SELECT count(*) FROM streams s WHERE is_deleted AND workspace_id <> $1`, target) +
		e.queryInt(`SELECT count(*) FROM jobs WHERE is_deleted AND workspace_id <> $1`, target)
	if deletedOutside != 0 {
		t.Errorf("%d rows outside workspace %d marked deleted", deletedOutside, target)
	}

	e.resetCounts()
	if res := e.crawl(Options{}); res.Status != load.RunOK {
		t.Fatalf("crawl after the targeted one: %s %v", res.Status, res.Incomplete)
	}
	e.assertEqualTruth()
	for id := range e.statsStreams() {
		if byWS[id] == target {
			t.Errorf("the crawl after the targeted one read stream %d of the target again", id)
		}
	}
}

func TestTargetedStreamTheAPIDoesNotKnow(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sim.Options{Seed: 144, Workspaces: 1, Streams: 5, JobsPerStream: 5})
	if res := e.crawl(Options{}); res.Status != load.RunOK {
		t.Fatalf("first crawl: %s %v", res.Status, res.Incomplete)
	}
	_, streams := truthJobCounts(t, e.sim.Truth())
	missing := slices.Max(streams) + 7
	res := e.crawl(Options{Streams: []int64{missing, streams[0]}})
	if res.Status != load.RunPartial {
		t.Fatalf("status %s, want partial", res.Status)
	}
	if want := "stream " + itoa(missing); !slices.Contains(res.Incomplete, want) {
		t.Errorf("incomplete %v lacks %q", res.Incomplete, want)
	}
	if got := e.queryInt(`SELECT count(*) FROM streams WHERE is_deleted`) + e.queryInt(`SELECT count(*) FROM jobs WHERE is_deleted`); got != 0 {
		t.Errorf("%d rows marked deleted", got)
	}
	e.assertEqualTruth()
	if _, err := (Options{Streams: []int64{-1}}).withDefaults(); err == nil || !strings.Contains(err.Error(), "stream id -1") {
		t.Errorf("a negative stream id: %v", err)
	}
}
