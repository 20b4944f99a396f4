package sim

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
)

func truthJSON(t *testing.T, s *Sim) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := s.WriteTruth(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDeterminism(t *testing.T) {
	mk := func(seed int64) *Sim {
		return New(Options{Seed: seed, Clock: clock.NewManual(start), Tokens: 3})
	}
	a, b, c := mk(1), mk(1), mk(2)
	ta, tb, tc := truthJSON(t, a), truthJSON(t, b), truthJSON(t, c)
	if !bytes.Equal(ta, tb) {
		t.Fatal("same seed and clock gave different truth")
	}
	if bytes.Equal(ta, tc) {
		t.Fatal("different seeds gave the same truth")
	}
	if fmt.Sprint(a.Tokens()) != fmt.Sprint(b.Tokens()) || fmt.Sprint(a.Tokens()) == fmt.Sprint(c.Tokens()) {
		t.Fatal("tokens must follow the seed")
	}
	// The same requests at the same simulated times keep two copies identical, however
	// often each was caught up in between.
	for _, s := range []*Sim{a, b} {
		first := decodeAll[tStream](t, s.Truth().Streams)[0]
		s.Advance(3 * time.Hour)
		if s == a {
			for range 20 {
				s.Advance(time.Minute)
				s.Truth()
			}
		} else {
			s.Advance(20 * time.Minute)
		}
		s.Mutate(func(st *State) {
			if _, err := st.Process(first.ID, start.AddDate(0, 0, -25), start.AddDate(0, 0, -1)); err != nil {
				t.Fatal(err)
			}
		})
		s.Advance(26 * time.Hour)
	}
	if !bytes.Equal(truthJSON(t, a), truthJSON(t, b)) {
		t.Fatal("same history of requests gave different truth")
	}
}

func TestGenerateShape(t *testing.T) {
	s := New(Options{Seed: 3, Clock: clock.NewManual(start), Workspaces: 4, Streams: 300, JobsPerStream: 20})
	tr := s.Truth()
	if len(tr.Workspaces) != 4 || len(tr.Streams) != 300 {
		t.Fatalf("%d workspaces, %d streams; want 4, 300", len(tr.Workspaces), len(tr.Streams))
	}
	streams := decodeAll[tStream](t, tr.Streams)
	jobs := decodeAll[tJob](t, tr.Jobs)
	sources := map[string]int{}
	for _, st := range streams {
		if st.ID < 1_000_000 || st.ID > 9_999_999 {
			t.Errorf("stream id %d is not 7 digits", st.ID)
		}
		sources[st.DataSourceName]++
	}
	if len(sources) < 4 || sources["TotalConnect"] == 0 {
		t.Errorf("data sources %v: want several, TotalConnect among them", sources)
	}
	status := map[string]int{}
	for i, j := range jobs {
		if j.ID < 100_000_000 || j.ID > 999_999_999 {
			t.Errorf("job id %d is not 9 digits", j.ID)
		}
		if i > 0 && j.ID <= jobs[i-1].ID {
			t.Fatalf("job ids not ascending: %d after %d", j.ID, jobs[i-1].ID)
		}
		status[j.Status]++
	}
	n := len(jobs)
	if status["SUCCESS"] < n*7/10 || status["FAILURE"] < n/100 || status["IN_PROGRESS"]+status["PENDING"] == 0 {
		t.Errorf("status mix %v of %d: want mostly SUCCESS, some FAILURE, some not finished", status, n)
	}
	if avg := float64(n) / 300; avg < 16 || avg > 24 {
		t.Errorf("%.1f jobs per stream, want about 20", avg)
	}
}

func TestGenerateJobsPerStream(t *testing.T) {
	for _, want := range []int{5, 20, 60} {
		t.Run(strconv.Itoa(want), func(t *testing.T) {
			s := New(Options{Seed: 11, Clock: clock.NewManual(start), Streams: 400, JobsPerStream: want})
			got := float64(len(s.st.jobs)) / 400
			if got < 0.85*float64(want) || got > 1.15*float64(want) {
				t.Errorf("%.1f jobs per stream, want %d ±15%%", got, want)
			}
		})
	}
}

// TestLastRunFieldsConsistent checks every stream's last-run fields against its jobs and
// the daily data, after generation and again after a simulated day and a half.
func TestLastRunFieldsConsistent(t *testing.T) {
	s := New(Options{Seed: 5, Clock: clock.NewManual(start), Streams: 120})
	check := func() {
		tr := s.Truth()
		rows := map[string]int64{} // stream/date → rows
		for _, d := range tr.DailyRows {
			rows[fmt.Sprint(d.DataStreamID, d.Date)] = d.Rows
		}
		jobRows := func(j tJob) int64 {
			var n int64
			from, _ := time.Parse("2006-01-02", j.DataStartDate)
			to, _ := time.Parse("2006-01-02", j.DataEndDate)
			for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
				v, ok := rows[fmt.Sprint(j.DataStreamID, d.Format("2006-01-02"))]
				if !ok {
					t.Fatalf("job %d succeeded but %s has no daily row", j.ID, d.Format("2006-01-02"))
				}
				n += v
			}
			return n
		}
		byStream := map[int64][]tJob{}
		for _, j := range decodeAll[tJob](t, tr.Jobs) {
			byStream[j.DataStreamID] = append(byStream[j.DataStreamID], j)
		}
		for _, st := range decodeAll[tStream](t, tr.Streams) {
			var last *tJob
			var processed int64
			lastData := ""
			for i := range byStream[st.ID] {
				j := &byStream[st.ID][i]
				if j.Status != "SUCCESS" && j.Status != "FAILURE" {
					continue
				}
				if last == nil || *j.End > *last.End || (*j.End == *last.End && j.ID > last.ID) {
					last = j
				}
				if j.Status == "SUCCESS" {
					processed += jobRows(*j)
					lastData = max(lastData, j.DataEndDate)
				}
			}
			if last == nil {
				if string(st.LastRunStatus) != "null" || st.LastUpdate != nil {
					t.Errorf("stream %d has no finished job but lastRunStatus %s", st.ID, st.LastRunStatus)
				}
				continue
			}
			wantStatus := strconv.FormatBool(last.Status == "SUCCESS")
			wantRows := int64(0)
			if last.Status == "SUCCESS" {
				wantRows = jobRows(*last)
			}
			gotData := ""
			if st.LastDataDate != nil {
				gotData = *st.LastDataDate
			}
			if string(st.LastRunStatus) != wantStatus || st.LastUpdate == nil || *st.LastUpdate != *last.End ||
				st.LastRowsRetrieved != wantRows || st.ProcessedRows != processed || gotData != lastData || st.HasData != (processed > 0) {
				t.Errorf("stream %d: lastRunStatus %s lastUpdate %v lastRows %d processed %d lastDataDate %q hasData %v; "+
					"want %s %d %d %d %q %v (last job %d)", st.ID, st.LastRunStatus, st.LastUpdate, st.LastRowsRetrieved,
					st.ProcessedRows, gotData, st.HasData, wantStatus, *last.End, wantRows, processed, lastData, processed > 0, last.ID)
			}
		}
	}
	check()
	s.Advance(36 * time.Hour)
	check()
}

// BenchmarkGenerate: 20 workspaces, 2,000 streams, ~200,000 jobs. The target is well
// under 2 s an account on the 2-core machine; a test does not assert it, since the
// machine's speed is not the simulator's behaviour.
func BenchmarkGenerate(b *testing.B) {
	for b.Loop() {
		s := New(Options{Seed: 1, Clock: clock.NewManual(start), Workspaces: 20, Streams: 2000, JobsPerStream: 100})
		if n := len(s.st.jobs); n < 170_000 {
			b.Fatalf("%d jobs, want about 200,000", n)
		}
		b.ReportMetric(float64(len(s.st.jobs)), "jobs")
	}
}

// BenchmarkMillionJobs reports the heap an account of about a million jobs holds.
func BenchmarkMillionJobs(b *testing.B) {
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s := New(Options{Seed: 1, Clock: clock.NewManual(start), Workspaces: 20, Streams: 5000, JobsPerStream: 200})
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(len(s.st.jobs)), "jobs")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heapMB")
		runtime.KeepAlive(s)
	}
}
