package extracttest

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/drextract/drextract/sim"
)

// truthOf builds a truth: workspaces, streams (id → workspace) and jobs (id → stream,
// status).
func truthOf(wss []int64, streams map[int64]int64, jobs map[int64][2]any) sim.Truth {
	tr := sim.Truth{Mappings: map[string]json.RawMessage{}}
	for _, ws := range wss {
		tr.Workspaces = append(tr.Workspaces, json.RawMessage(fmt.Sprintf(`{"id":%d}`, ws)))
	}
	for id, ws := range streams {
		tr.Streams = append(tr.Streams, json.RawMessage(fmt.Sprintf(`{"id":%d,"workspaceId":%d,"name":"s"}`, id, ws)))
		tr.Mappings[fmt.Sprint(id)] = json.RawMessage(fmt.Sprintf(`{"dataStreamId":%d,"fields":[]}`, id))
	}
	for id, j := range jobs {
		tr.Jobs = append(tr.Jobs, json.RawMessage(fmt.Sprintf(`{"id":%d,"dataStreamId":%d,"status":%q}`, id, j[0], j[1])))
	}
	return tr
}

func TestIncremental(t *testing.T) {
	wss := []int64{1, 2}
	streams := map[int64]int64{10: 1, 11: 1, 12: 2}
	jobs := map[int64][2]any{}
	for i := range int64(5) {
		jobs[100+i] = [2]any{int64(10), "SUCCESS"}
		jobs[200+i] = [2]any{int64(11), "SUCCESS"}
		jobs[300+i] = [2]any{int64(12), "SUCCESS"}
	}
	jobs[104] = [2]any{int64(10), "IN_PROGRESS"}
	before := truthOf(wss, streams, jobs)

	jobs[104] = [2]any{int64(10), "SUCCESS"} // stream 10: a job finished (on page 2 of 4)
	jobs[205] = [2]any{int64(11), "PENDING"} // stream 11: a job joined, filling its last page
	streams[13] = 2                          // a new stream with 9 jobs: pages 1..3
	for i := range int64(9) {
		jobs[400+i] = [2]any{int64(13), "SUCCESS"}
	}
	after := truthOf(wss, streams, jobs)

	m, err := Incremental(before, after, Options{PageSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := Minimum{Workspaces: 1, StreamLists: 2, BulkStatus: 1, StatsPages: 1 + 2 + 4, Mappings: 1, Changed: 3, JobsChanged: 3}
	// Stream 10: job 104 is 5th of 5: page 2. Stream 11: job 205 is 6th of 6, on a full last
	// page, so page 3 (empty) ends the list: 2 pages. Stream 13: 9 jobs: 9/3+1 = 4 pages.
	// Stream 12 did not change: one bulk status call for workspace 2.
	if m != want {
		t.Errorf("Incremental = %+v\nwant          %+v", m, want)
	}
	if m.Calls() != 1+2+1+7+1 {
		t.Errorf("Calls() = %d", m.Calls())
	}

	desc, err := Incremental(before, after, Options{PageSize: 3, Order: "desc", WorkspaceLists: true})
	if err != nil {
		t.Fatal(err)
	}
	// Newest first both changes are on page 1 and no read needs the end of the list.
	if desc.StatsPages != 1+1+4 || desc.WorkspaceLists != 10 {
		t.Errorf("desc: %+v", desc)
	}

	full, err := Full(after, Options{PageSize: 3, WorkspaceLists: true})
	if err != nil {
		t.Fatal(err)
	}
	// Pages: streams of 5, 6, 5 and 9 jobs: 2 + 3 + 2 + 4.
	if want := (Minimum{Workspaces: 1, StreamLists: 2, StatsPages: 11, Mappings: 4, WorkspaceLists: 10, Changed: 4, JobsChanged: 4}); full != want {
		t.Errorf("Full = %+v\nwant   %+v", full, want)
	}

	same, err := Incremental(after, after, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if same.Calls() != 1+2+2 || same.StatsPages != 0 {
		t.Errorf("nothing changed: %v", same)
	}
}
