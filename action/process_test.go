package action

import (
	"fmt"
	"slices"
	"testing"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/sim"
)

func day(s string) datorama.Date {
	d, err := datorama.ParseDate(s)
	if err != nil {
		panic(err)
	}
	return d
}

// newJobs returns the (start, end) ranges of the jobs of a stream newer than knownMax.
func newJobs(tr truth, sid, knownMax int64) []string {
	var out []string
	for _, j := range tr.byStr[sid] {
		if j.ID > knownMax {
			out = append(out, j.DataStartDate.String()+".."+j.DataEndDate.String())
		}
	}
	slices.Sort(out)
	return out
}

func maxJobIDs(tr truth) map[int64]int64 {
	out := map[int64]int64{}
	for sid, jobs := range tr.byStr {
		for _, j := range jobs {
			out[sid] = max(out[sid], j.ID)
		}
	}
	return out
}

// Acceptance: 300 streams × a 31-day range in 10-day chunks is 4 batch calls
// (10+10+10+1 shared by all streams), not 1,200.
func TestProcess300StreamsIsFourCalls(t *testing.T) {
	e := newEnv(t, sim.Options{Workspaces: 1, Streams: 340, JobsPerStream: 1})
	e.crawl(true, "streams") // jobs play no part in planning a process
	tr := e.truth()
	ids := tr.enabledStreams(0)
	if len(ids) < 300 {
		t.Fatalf("only %d enabled streams", len(ids))
	}
	ids = ids[:300]
	rows := make([]Row, len(ids))
	for i, id := range ids {
		rows[i] = Row{Line: i + 2, StreamID: id, StartDate: day("2026-01-01"), EndDate: day("2026-01-31")}
	}
	known := maxJobIDs(tr)
	p, rep, err := e.act(Request{Op: OpProcess, Rows: rows, Source: Source{Kind: "csv", Name: "month.csv"}})
	if err != nil || rep.Status != RunOK {
		t.Fatalf("execute: %v (%+v)", err, rep)
	}
	if len(p.Calls) != 4 || e.calls(epProcessMany) != 4 || e.calls(epProcess) != 0 {
		t.Fatalf("calls: planned %d, batch %d, single %d; want 4 batch calls", len(p.Calls), e.calls(epProcessMany), e.calls(epProcess))
	}
	want := []string{"2026-01-01..2026-01-10", "2026-01-11..2026-01-20", "2026-01-21..2026-01-30", "2026-01-31..2026-01-31"}
	after := e.truth()
	for _, id := range ids {
		if got := newJobs(after, id, known[id]); !slices.Equal(got, want) {
			t.Fatalf("stream %d got jobs %v, want %v", id, got, want)
		}
	}
	// Every item knows its four jobs (the answer names each job's stream).
	if n := e.count(`SELECT count(*) FROM action_items WHERE action_run_id = $1 AND status = 'sent' AND len(job_ids) = 4`, rep.RunID); n != 300 {
		t.Errorf("%d items with their 4 job ids, want 300", n)
	}
}

// Streams with different ranges share the chunks they have in common, on one grid, and
// never a call across workspaces.
func TestProcessMixedRangesGrouping(t *testing.T) {
	e := newEnv(t, sim.Options{Workspaces: 2, Streams: 12, JobsPerStream: 2})
	e.crawl(true, "streams")
	tr := e.truth()
	var ws1, ws2 []int64
	for _, ids := range tr.byWorkspace() {
		if len(ids) > len(ws1) {
			ws1, ws2 = ids, ws1
		} else {
			ws2 = ids
		}
	}
	if len(ws1) < 4 || len(ws2) < 1 {
		t.Fatalf("need 4 enabled streams in one workspace and 1 in another: %v / %v", ws1, ws2)
	}
	a, b, c, d, other := ws1[0], ws1[1], ws1[2], ws1[3], ws2[0]
	rows := []Row{
		{Line: 2, StreamID: a, StartDate: day("2026-01-01"), EndDate: day("2026-01-30")},
		{Line: 3, StreamID: b, StartDate: day("2026-01-01"), EndDate: day("2026-01-15")},
		{Line: 4, StreamID: c, StartDate: day("2026-01-11"), EndDate: day("2026-01-30")},
		{Line: 5, StreamID: d, StartDate: day("2026-01-05"), EndDate: day("2026-01-07")},
		{Line: 6, StreamID: other, StartDate: day("2026-01-01"), EndDate: day("2026-01-30")},
	}
	known := maxJobIDs(tr)
	p, rep, err := e.act(Request{Op: OpProcess, Rows: rows, Source: Source{Kind: "command", Name: "process"}})
	if err != nil || rep.Status != RunOK {
		t.Fatalf("execute: %v (%+v)", err, rep)
	}
	var got []string
	for _, call := range p.Calls {
		streams := slices.Clone(call.StreamIDs)
		slices.Sort(streams)
		got = append(got, fmt.Sprintf("%s..%s %v", call.Start, call.End, streams))
	}
	sorted := func(ids ...int64) []int64 { slices.Sort(ids); return ids }
	want := []string{
		fmt.Sprintf("2026-01-01..2026-01-10 %v", sorted(a, b)),
		fmt.Sprintf("2026-01-01..2026-01-10 %v", []int64{other}),
		fmt.Sprintf("2026-01-05..2026-01-07 %v", []int64{d}),
		fmt.Sprintf("2026-01-11..2026-01-15 %v", []int64{b}),
		fmt.Sprintf("2026-01-11..2026-01-20 %v", sorted(a, c)),
		fmt.Sprintf("2026-01-11..2026-01-20 %v", []int64{other}),
		fmt.Sprintf("2026-01-21..2026-01-30 %v", sorted(a, c)),
		fmt.Sprintf("2026-01-21..2026-01-30 %v", []int64{other}),
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("calls\n got %q\nwant %q", got, want)
	}
	if e.calls(epProcessMany) != 3 || e.calls(epProcess) != 5 {
		t.Errorf("batch calls %d (want 3), single calls %d (want 5)", e.calls(epProcessMany), e.calls(epProcess))
	}
	after := e.truth()
	wantJobs := map[int64][]string{
		a:     {"2026-01-01..2026-01-10", "2026-01-11..2026-01-20", "2026-01-21..2026-01-30"},
		b:     {"2026-01-01..2026-01-10", "2026-01-11..2026-01-15"},
		c:     {"2026-01-11..2026-01-20", "2026-01-21..2026-01-30"},
		d:     {"2026-01-05..2026-01-07"},
		other: {"2026-01-01..2026-01-10", "2026-01-11..2026-01-20", "2026-01-21..2026-01-30"},
	}
	for sid, w := range wantJobs {
		if got := newJobs(after, sid, known[sid]); !slices.Equal(got, w) {
			t.Errorf("stream %d: jobs %v, want %v", sid, got, w)
		}
	}
}

// chunksOf is pure: a table of grids.
func TestChunksOf(t *testing.T) {
	tests := []struct {
		anchor, start, end string
		n                  int
		want               string
	}{
		{"2026-01-01", "2026-01-01", "2026-01-31", 10, "[01..10 11..20 21..30 31..31]"},
		{"2026-01-01", "2026-01-05", "2026-01-12", 10, "[05..10 11..12]"},
		{"2026-01-01", "2026-01-11", "2026-01-11", 10, "[11..11]"},
		{"2026-01-01", "2026-01-01", "2026-01-31", 31, "[01..31]"},
		{"2026-01-01", "2026-01-03", "2026-01-09", 3, "[03..03 04..06 07..09]"},
		{"2026-01-30", "2026-01-30", "2026-02-02", 2, "[30..31 01..02]"},
	}
	for _, tt := range tests {
		var parts []string
		for _, ch := range chunksOf(day(tt.anchor), day(tt.start), day(tt.end), tt.n) {
			parts = append(parts, ch[0].Format("02")+".."+ch[1].Format("02"))
		}
		if got := fmt.Sprint(parts); got != tt.want {
			t.Errorf("chunksOf(%s, %s..%s, %d) = %s, want %s", tt.anchor, tt.start, tt.end, tt.n, got, tt.want)
		}
	}
}
