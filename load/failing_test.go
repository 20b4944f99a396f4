package load

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
)

// TestStreamsReachingFailures: a stream is reported by the run in which its consecutive
// failed jobs reach the threshold, not by the runs while it stays failing, and again once
// a success ended the row and a new row reaches it. The answer is read back from the store
// alone, with or without the first-sight rows an older drextract wrote.
func TestStreamsReachingFailures(t *testing.T) {
	for _, firstSights := range []bool{true, false} {
		t.Run(fmt.Sprintf("first sights recorded %v", firstSights), func(t *testing.T) {
			testStreamsReachingFailures(t, firstSights)
		})
	}
}

func testStreamsReachingFailures(t *testing.T, firstSights bool) {
	ctx := context.Background()
	mc := clock.NewManual(t0)
	s, err := Open(ctx, filepath.Join(t.TempDir(), LiveFile), Options{Clock: mc, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, st := range []StreamRow{{ID: 10, WorkspaceID: 1, Name: "Facebook Ads"}, {ID: 20, WorkspaceID: 1, Name: "Google Ads"}} {
		st.Raw = []byte(`{}`)
		if err := s.Write(ctx, 0, Batch{Entity: Streams, ParentID: 1, Streams: []StreamRow{st}}); err != nil {
			t.Fatal(err)
		}
	}
	job := func(id int64, status string) JobRow {
		stream := int64(10)
		if id > 100 {
			stream = 20
		}
		j := jobRow(id, stream, 1, status, t0)
		if status == "FAILURE" {
			j.StatusReason = fmt.Sprintf("reason of %d", id)
		}
		return j
	}
	// run writes the jobs of one crawl (a page per stream) and returns the streams it
	// brought to 3 consecutive failures.
	run := func(jobs ...JobRow) []int64 {
		t.Helper()
		mc.Advance(time.Hour)
		id, err := s.StartRun(ctx, RunStart{Schedule: "test", Kind: "extract", Started: mc.Now()})
		if err != nil {
			t.Fatal(err)
		}
		mc.Advance(time.Second)
		pages := map[int64][]JobRow{}
		for _, j := range jobs {
			pages[j.StreamID] = append(pages[j.StreamID], j)
		}
		for stream, page := range pages {
			if err := s.Write(ctx, id, Batch{Entity: Jobs, ParentID: stream, ObservedAt: mc.Now(), Jobs: page}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.FinishRun(ctx, id, RunEnd{Status: RunOK}); err != nil {
			t.Fatal(err)
		}
		if !firstSights {
			if _, err := s.DB().ExecContext(ctx, `DELETE FROM job_status_changes WHERE old_status IS NULL`); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.StreamsReachingFailures(ctx, id, 3)
		if err != nil {
			t.Fatal(err)
		}
		var ids []int64
		for _, f := range got {
			ids = append(ids, f.StreamID)
			if f.StreamID == 10 && (f.Name != "Facebook Ads" || f.WorkspaceID != 1 || f.Reason != fmt.Sprintf("reason of %d", f.LastJobID) || f.LastFailure.IsZero()) {
				t.Errorf("stream 10 reported as %+v", f)
			}
		}
		again, err := s.StreamsReachingFailures(ctx, id, 3)
		if err != nil || len(again) != len(got) {
			t.Errorf("asking twice about run %d: %d then %d streams (%v)", id, len(got), len(again), err)
		}
		return ids
	}
	steps := []struct {
		name string
		jobs []JobRow
		want []int64
	}{
		{"first crawl: stream 20 already failed 4 times, stream 10 twice",
			[]JobRow{job(1, "SUCCESS"), job(2, "FAILURE"), job(3, "FAILURE"), job(101, "FAILURE"), job(102, "FAILURE"), job(103, "FAILURE"), job(104, "FAILURE")}, []int64{20}},
		{"a job still running neither counts nor breaks the row",
			[]JobRow{job(4, "IN_PROGRESS"), job(101, "FAILURE"), job(102, "FAILURE"), job(103, "FAILURE"), job(104, "FAILURE")}, nil},
		{"it fails: stream 10 reaches 3",
			[]JobRow{job(4, "FAILURE")}, []int64{10}},
		{"a fourth failure is not news",
			[]JobRow{job(5, "FAILURE"), job(105, "FAILURE")}, nil},
		{"a success ends the row and a new row of 3 starts in the same crawl",
			[]JobRow{job(6, "SUCCESS"), job(7, "FAILURE"), job(8, "FAILURE"), job(9, "FAILURE")}, []int64{10}},
		{"recovered",
			[]JobRow{job(10, "SUCCESS"), job(106, "SUCCESS")}, nil},
		{"failing again, two of three",
			[]JobRow{job(11, "FAILURE"), job(12, "FAILURE"), job(107, "FAILURE")}, nil},
		{"the third",
			[]JobRow{job(13, "PENDING"), job(14, "FAILURE"), job(108, "PENDING")}, []int64{10}},
		{"no jobs written: nothing to say",
			nil, nil},
	}
	for _, st := range steps {
		if got := run(st.jobs...); !slices.Equal(got, st.want) {
			t.Errorf("%s: streams %v, want %v", st.name, got, st.want)
		}
	}
	if _, err := s.StreamsReachingFailures(ctx, 1, 0); err == nil {
		t.Error("a threshold of 0 was accepted")
	}
}
