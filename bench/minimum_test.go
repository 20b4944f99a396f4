package bench

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/sim"
)

// account is what the minimum of a crawl depends on: per stream its workspace, record
// and change time, and its jobs in the API's order (ascending id).
type account struct {
	workspaces []int64
	streams    map[int64]streamFacts
}

type streamFacts struct {
	ws      int64
	raw     string
	updated int64
	jobIDs  []int64          // ascending
	jobs    map[int64]string // id → raw record
}

// accountOf reads the simulator's truth.
func accountOf(tr sim.Truth) (*account, error) {
	a := &account{streams: map[int64]streamFacts{}}
	for _, raw := range tr.Workspaces {
		var w struct{ ID int64 }
		if err := json.Unmarshal(raw, &w); err != nil {
			return nil, fmt.Errorf("workspace in the truth: %w", err)
		}
		a.workspaces = append(a.workspaces, w.ID)
	}
	for _, raw := range tr.Streams {
		var s struct {
			ID          int64
			WorkspaceID int64
			UpdateTime  datorama.Timestamp
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("stream in the truth: %w", err)
		}
		a.streams[s.ID] = streamFacts{ws: s.WorkspaceID, raw: string(raw), updated: s.UpdateTime.UnixMilli(), jobs: map[int64]string{}}
	}
	for _, raw := range tr.Jobs {
		var j struct {
			ID           int64
			DataStreamID int64
		}
		if err := json.Unmarshal(raw, &j); err != nil {
			return nil, fmt.Errorf("job in the truth: %w", err)
		}
		s, ok := a.streams[j.DataStreamID]
		if !ok {
			continue
		}
		s.jobIDs = append(s.jobIDs, j.ID)
		s.jobs[j.ID] = string(raw)
		a.streams[j.DataStreamID] = s
	}
	for id, s := range a.streams {
		slices.Sort(s.jobIDs)
		a.streams[id] = s
	}
	return a, nil
}

// Workspace-level lists read per workspace when due (dimensions, measurements,
// harmonized dimensions, patterns, calculated measurements), and the streams one bulk
// status call covers.
const (
	workspaceLists = 5
	bulkStatusIDs  = datorama.BulkStatusChunk
)

// minimumCalls is the fewest API calls a crawl can make to bring a store holding before
// (nil: an empty store) up to after, with stats pages of pageSize. It follows the lead's
// ruling for issue 15 and is kept apart so that it can be replaced by the crawl branch's
// own function:
//
//	1 (workspaces) + W (stream lists)
//	+ one bulk status call per workspace and 100 streams whose record did not change
//	+ the stats pages the changed streams need: every page holding a new or changed job
//	  (a full page ending the list needs the page after it to show the end; a new stream
//	  without jobs one page)
//	+ the mappings of streams that are new or whose updateTime changed
//	+ 5 workspace-level lists per workspace when they are due
//
// A first crawl has no unchanged stream, so no bulk status call: it reads every stream's
// pages and mapping.
func minimumCalls(before, after *account, pageSize int, listsDue bool) int {
	W := len(after.workspaces)
	calls := 1 + W
	if listsDue {
		calls += workspaceLists * W
	}
	unchanged := map[int64]int{}
	for id, s := range after.streams {
		var old streamFacts
		known := false
		if before != nil {
			old, known = before.streams[id]
		}
		if known && old.raw == s.raw {
			unchanged[s.ws]++
		}
		if !known || old.updated != s.updated {
			calls++ // the mapping
		}
		calls += pagesNeeded(old, s, known, pageSize)
	}
	for _, n := range unchanged {
		calls += (n + bulkStatusIDs - 1) / bulkStatusIDs
	}
	return calls
}

// pagesNeeded is the stats pages that hold a job of s that is new or changed since old.
func pagesNeeded(old, s streamFacts, known bool, pageSize int) int {
	if len(s.jobIDs) == 0 {
		if known && len(old.jobIDs) == 0 {
			return 0
		}
		return 1 // the empty first page says there are none (left)
	}
	pages := map[int]bool{}
	for i, id := range s.jobIDs {
		if prev, ok := old.jobs[id]; !known || !ok || prev != s.jobs[id] {
			pages[i/pageSize] = true
		}
	}
	n := len(pages)
	last := (len(s.jobIDs) - 1) / pageSize
	if pages[last] && len(s.jobIDs)%pageSize == 0 {
		n++ // a full last page: the next, empty one shows the end
	}
	return n
}

func TestMinimumCalls(t *testing.T) {
	jobs := func(ids ...int64) ([]int64, map[int64]string) {
		m := map[int64]string{}
		for _, id := range ids {
			m[id] = fmt.Sprintf(`{"id":%d,"status":"SUCCESS"}`, id)
		}
		return ids, m
	}
	stream := func(ws int64, raw string, updated int64, ids ...int64) streamFacts {
		s := streamFacts{ws: ws, raw: raw, updated: updated}
		s.jobIDs, s.jobs = jobs(ids...)
		return s
	}
	before := &account{workspaces: []int64{1, 2}, streams: map[int64]streamFacts{
		10: stream(1, "a", 1, 1, 2, 3, 4, 5),
		11: stream(1, "b", 1, 6, 7),
		12: stream(2, "c", 1),
		13: stream(2, "d", 1, 8),
	}}
	full := minimumCalls(nil, before, 2, true)
	// 1 + W + pages (10: 5 jobs → 3, 11: 2 jobs, a full last page → 2, 12: none → 1,
	// 13: 1) + 4 mappings + 5 lists × 2.
	if want := 1 + 2 + (3 + 2 + 1 + 1) + 4 + 10; full != want {
		t.Errorf("full crawl minimum %d, want %d", full, want)
	}
	if got := minimumCalls(before, before, 2, false); got != 1+2+2 {
		t.Errorf("nothing changed: minimum %d, want 1 + W + one bulk status per workspace", got)
	}
	after := &account{workspaces: before.workspaces, streams: map[int64]streamFacts{
		10: stream(1, "a ran", 1, 1, 2, 3, 4, 5, 9), // a new job fills page 3
		11: stream(1, "b renamed", 2, 6, 7),         // renamed: updateTime moved, jobs the same
		12: stream(2, "c", 1),                       // unchanged
		13: stream(2, "d ran", 1, 8),                // its job changed
		14: stream(2, "new", 3, 20, 21, 22),         // a new stream
	}}
	after.streams[13].jobs[8] = `{"id":8,"status":"FAILURE"}`
	// 1 + W + bulk for ws 2 (stream 12) + pages (10: the new job fills page 3, so page 4
	// shows the end: 2; 11: 0; 13: 1; 14: 2) + mappings (11, 14).
	if got, want := minimumCalls(before, after, 2, false), 1+2+1+(2+0+1+2)+2; got != want {
		t.Errorf("incremental minimum %d, want %d", got, want)
	}
}
