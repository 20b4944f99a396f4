package action

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/sim"
)

func TestMergePatch(t *testing.T) {
	tests := []struct{ doc, patch, want string }{
		{`{"a":1,"b":{"c":2,"d":3}}`, `{"b":{"c":5}}`, `{"a":1,"b":{"c":5,"d":3}}`},
		{`{"a":1,"b":2}`, `{"b":null}`, `{"a":1}`},
		{`{"a":[1,2]}`, `{"a":[3]}`, `{"a":[3]}`},
		{`{"a":1}`, `{"n":1.50}`, `{"a":1,"n":1.50}`},
		{``, `{"a":true}`, `{"a":true}`},
		{`{"a":"x"}`, `{"a":{"b":1}}`, `{"a":{"b":1}}`},
	}
	for _, tt := range tests {
		got, err := MergePatch([]byte(tt.doc), []byte(tt.patch))
		if err != nil {
			t.Fatal(err)
		}
		var a, b any
		json.Unmarshal(got, &a)
		json.Unmarshal([]byte(tt.want), &b)
		ga, _ := json.Marshal(a)
		gb, _ := json.Marshal(b)
		if string(ga) != string(gb) {
			t.Errorf("MergePatch(%s, %s) = %s, want %s", tt.doc, tt.patch, got, tt.want)
		}
	}
	if ok, _ := applied(json.RawMessage(`{"a":1,"b":{"c":2}}`), json.RawMessage(`{"b":{"c":2}}`)); !ok {
		t.Error("applied: a patch already in the record")
	}
	if ok, _ := applied(json.RawMessage(`{"a":1}`), json.RawMessage(`{"a":2}`)); ok {
		t.Error("applied: a patch not in the record")
	}
}

// evidence is the rule reconciliation decides by; a table of jobs against a call.
func TestEvidence(t *testing.T) {
	sent := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	ts := func(d time.Duration) datorama.Timestamp { return datorama.TimestampOf(sent.Add(d)) }
	job := func(id int64, status, start, end string, startedAt datorama.Timestamp) datorama.Job {
		return datorama.Job{ID: id, DataStreamID: 7, Status: status, DataStartDate: day(start), DataEndDate: day(end), StartExecutionTime: startedAt}
	}
	rerun := storedCall{Op: OpRerun, SendingAt: sent, StreamIDs: []int64{7}}
	items := []storedItem{{StreamID: 7, JobID: 100, Start: day("2026-02-20"), End: day("2026-02-20"), KnownMax: 150}}
	tests := []struct {
		name string
		call storedCall
		jobs []datorama.Job
		want []int64
	}{
		{"rerun: a newer job for the same day", rerun, []datorama.Job{job(100, "FAILURE", "2026-02-20", "2026-02-20", ts(-time.Hour)), job(160, "PENDING", "2026-02-20", "2026-02-20", datorama.Timestamp{})}, []int64{160}},
		{"rerun: a newer job for another day is a scheduled run", rerun, []datorama.Job{job(161, "PENDING", "2026-03-02", "2026-03-02", datorama.Timestamp{})}, nil},
		{"rerun: the old id unfinished again", rerun, []datorama.Job{job(100, "PENDING", "2026-02-20", "2026-02-20", datorama.Timestamp{})}, []int64{100}},
		{"rerun: the old id started after the send", rerun, []datorama.Job{job(100, "SUCCESS", "2026-02-20", "2026-02-20", ts(3*time.Minute))}, []int64{100}},
		{"rerun: nothing happened", rerun, []datorama.Job{job(100, "FAILURE", "2026-02-20", "2026-02-20", ts(-time.Hour)), job(120, "SUCCESS", "2026-02-20", "2026-02-20", ts(-2*time.Hour))}, nil},
		{"process: a new job at the chunk start", storedCall{Op: OpProcess, SendingAt: sent, Start: day("2026-01-01"), End: day("2026-01-10")},
			[]datorama.Job{job(170, "PENDING", "2026-01-01", "2026-01-10", datorama.Timestamp{})}, []int64{170}},
		{"process: a new job elsewhere", storedCall{Op: OpProcess, SendingAt: sent, Start: day("2026-01-01"), End: day("2026-01-10")},
			[]datorama.Job{job(171, "PENDING", "2026-01-11", "2026-01-20", datorama.Timestamp{})}, nil},
		{"rerun-all: new jobs for past days", storedCall{Op: OpRerunAll, SendingAt: sent},
			[]datorama.Job{job(180, "PENDING", "2026-02-01", "2026-02-01", datorama.Timestamp{}), job(181, "PENDING", "2026-03-02", "2026-03-02", datorama.Timestamp{})}, []int64{180}},
	}
	for _, tt := range tests {
		if got := evidence(tt.call, 7, items, tt.jobs); !slices.Equal(got, tt.want) {
			t.Errorf("%s: evidence %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestEstimate(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 30, 0, time.UTC)
	b := BudgetView{PerMinute: 60, MinuteRemaining: 10, MinuteReset: now.Add(30 * time.Second), DailyRemaining: 100, DailyReset: now.Add(12 * time.Hour), Known: true}
	tests := []struct {
		calls    int
		min, max time.Duration
		over     bool
	}{
		{5, time.Second, 2 * time.Second, false},
		{70, 30 * time.Second, 60 * time.Second, false},
		{250, 3*time.Minute + 30*time.Second, 4 * time.Minute, true}, // 30s to the reset, 3 full windows, 60 calls paced
	}
	for _, tt := range tests {
		e := estimate(tt.calls, b, now)
		if e.Duration < tt.min || e.Duration > tt.max || e.OverQuota != tt.over {
			t.Errorf("estimate(%d) = %s over=%v; want %s..%s over=%v", tt.calls, e.Duration, e.OverQuota, tt.min, tt.max, tt.over)
		}
	}
	if e := estimate(120, BudgetView{}, now); !e.Assumed || e.Duration < time.Minute {
		t.Errorf("unknown budget: %+v", e)
	}
	if s := estimate(250, b, now).String(); !strings.Contains(s, "more than the 100 calls left today") {
		t.Errorf("String: %s", s)
	}
}

// Deleted streams are skipped for every operation, with the reason; disabled ones only
// for those that start jobs.
func TestDeletedAndDisabledSkipped(t *testing.T) {
	e := newEnv(t, sim.Options{Workspaces: 1, Streams: 6, JobsPerStream: 2})
	tr := e.truth()
	ids := tr.enabledStreams(0)
	gone, off := ids[0], ids[1]
	e.crawl(true, "streams")
	e.sim.Mutate(func(st *sim.State) {
		must(t, st.DeleteStream(gone))
		must(t, st.SetStreamEnabled(off, false))
	})
	e.crawl(false, "streams")
	ctx := context.Background()
	for _, op := range []Op{OpRerunAll, OpRename, OpEnable} {
		rows := []Row{{Line: 1, StreamID: gone, Name: "x"}, {Line: 2, StreamID: off, Name: "y"}}
		p, err := e.eng.Prepare(ctx, Request{Op: op, Rows: rows})
		if err != nil {
			t.Fatal(err)
		}
		if p.Skipped["stream deleted"] != 1 || p.Items[0].Status != StatusSkipped {
			t.Errorf("%s: deleted stream not skipped: %v", op, p.Skipped)
		}
		disabledSkipped := p.Items[1].Status == StatusSkipped && strings.HasPrefix(p.Items[1].Reason, "stream disabled")
		if disabledSkipped != op.CreatesJobs() {
			t.Errorf("%s: disabled stream item %s (%s)", op, p.Items[1].Status, p.Items[1].Reason)
		}
	}
}

// stale-streams-7d: enabled streams without new data for 7 days get the missing days
// processed, from the day after their last data to today, chunked.
func TestStaleStreamsSelection(t *testing.T) {
	e := newEnv(t, sim.Options{Workspaces: 1, Streams: 5, JobsPerStream: 3})
	ids := e.truth().enabledStreams(0)
	stale := ids[0]
	e.sim.Mutate(func(st *sim.State) { must(t, st.SetStreamOutcome(stale, "fail")) })
	e.sim.Advance(9 * 24 * time.Hour)
	e.crawl(true, "streams")
	tr := e.truth()
	last := tr.streams[stale].LastDataDate
	today := datorama.DateOf(e.clk.Now().UTC())
	if last.IsZero() || !last.Before(today.AddDays(-7).Time) {
		t.Fatalf("stream %d's last data date %s is not stale (today %s)", stale, last, today)
	}
	p, err := e.eng.Prepare(context.Background(), Request{Selection: mustGet(t, mustCatalog(t), "stale-streams-7d")})
	if err != nil {
		t.Fatal(err)
	}
	var got *Item
	for _, it := range p.Items {
		if it.Row.StreamID == stale {
			got = it
		} else if it.Status == StatusPlanned {
			s := tr.streams[it.Row.StreamID]
			if !s.LastDataDate.Before(today.AddDays(-7).Time) {
				t.Errorf("stream %d (last data %s) selected as stale", it.Row.StreamID, s.LastDataDate)
			}
		}
	}
	if got == nil {
		t.Fatalf("stream %d not selected", stale)
	}
	if !got.Row.StartDate.Equal(last.AddDays(1).Time) || !got.Row.EndDate.Equal(today.Time) {
		t.Errorf("range %s..%s, want %s..%s", got.Row.StartDate, got.Row.EndDate, last.AddDays(1), today)
	}
	if got.ExpectedJobs != ceilDiv(days(got.Row.StartDate, got.Row.EndDate), apiChunkDays) {
		t.Errorf("expected jobs %d for %s..%s", got.ExpectedJobs, got.Row.StartDate, got.Row.EndDate)
	}
}

// When the daily quota runs out mid-run, the run stops cleanly: what was sent is
// recorded, the rest is skipped saying why, and the status says quota_exhausted.
func TestQuotaExhaustedStopsCleanly(t *testing.T) {
	e := newEnv(t, sim.Options{Workspaces: 1, Streams: 12, JobsPerStream: -1, DailyQuota: 8})
	e.crawl(true, "streams")
	used := e.sim.Calls().Total
	tr := e.truth()
	var rows []Row
	for i, id := range tr.enabledStreams(0)[:10] {
		rows = append(rows, Row{Line: i + 2, StreamID: id, Name: fmt.Sprintf("Q %d", i)})
	}
	_, rep, err := e.act(Request{Op: OpRename, Rows: rows})
	if !errors.Is(err, datorama.ErrQuotaExhausted) || rep.Status != RunQuotaExhausted || rep.QuotaReset.IsZero() {
		t.Fatalf("run: %v %+v", err, rep)
	}
	left := 8 - used
	if rep.Sent != left || rep.Skipped != 10-left {
		t.Errorf("sent %d, skipped %d; %d calls were left", rep.Sent, rep.Skipped, left)
	}
	if n := e.count(`SELECT count(*) FROM action_items WHERE action_run_id = $1 AND status = 'skipped' AND reason LIKE 'not sent:%quota%'`, rep.RunID); n != 10-left {
		t.Errorf("%d items skipped for the quota, want %d", n, 10-left)
	}
	if n := e.count(`SELECT count(*) FROM action_calls WHERE status IN ('sending', 'planned')`); n != 0 {
		t.Errorf("%d calls left open", n)
	}
}
