package datorama

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/sim"
)

// simStatsPage returns the first stats page of size n of a simulated stream with at
// least n jobs, as the simulator sends it over HTTP: realistic records (ids, dates,
// epoch times, a status reason and a multi-line processLog).
func simStatsPage(tb testing.TB, n int) []byte {
	tb.Helper()
	s := sim.New(sim.Options{Seed: 3, Workspaces: 1, Streams: 2, JobsPerStream: n + n/2,
		Clock: clock.NewManual(simStart), PlatformLimit: 1 << 30, DailyQuota: 1 << 30})
	srv := httptest.NewServer(s)
	defer srv.Close()
	for _, raw := range s.Truth().Streams {
		var st struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			tb.Fatal(err)
		}
		req, _ := http.NewRequest("POST", fmt.Sprintf("%s/v1/data-streams/api/%d/stats", srv.URL, st.ID),
			bytes.NewReader(fmt.Appendf(nil, `{"pageSize":%d,"pageNumber":1}`, n)))
		req.Header.Set("Authorization", s.Tokens()[0])
		res, err := srv.Client().Do(req)
		if err != nil {
			tb.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 {
			tb.Fatalf("stats page: %d %v", res.StatusCode, err)
		}
		if jobs, err := decodeRecords(body, "jobs", jobOf(0)); err == nil && len(jobs) == n {
			return body
		}
	}
	tb.Fatalf("no stream has %d jobs", n)
	return nil
}

// BenchmarkDecodeStatsPage decodes a realistic stats page of 800 jobs (the crawl's
// usual page) and of 100 jobs (the old client's page), keeping each record's raw JSON.
// Run with -benchmem for the allocations.
func BenchmarkDecodeStatsPage(b *testing.B) {
	for _, n := range []int{800, 100} {
		body := simStatsPage(b, n)
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				jobs, err := decodeRecords(body, "jobs", jobOf(0))
				if err != nil || len(jobs) != n {
					b.Fatalf("%d jobs, %v", len(jobs), err)
				}
			}
			b.ReportMetric(float64(len(body))/float64(n), "bytes/job")
		})
	}
}
