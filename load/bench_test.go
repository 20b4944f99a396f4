package load

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// benchPage is page p of a crawl: n jobs of stream p, with ids interleaved with other
// streams' the way the API's global ids are.
func benchPage(p, n int, status string) Batch {
	stream := int64(p + 1)
	rows := make([]JobRow, n)
	for j := range rows {
		rows[j] = jobRow(int64(j)*10_000_000+stream, stream, 1, status, t0.AddDate(0, 0, -j%700))
	}
	state, _ := json.Marshal(map[string]int{"page": 1, "stored": n})
	return Batch{Entity: Jobs, ParentID: stream, ObservedAt: t0, Jobs: rows,
		Checkpoint: &Checkpoint{Kind: "jobs", ParentID: stream, State: state}}
}

// BenchmarkWriteJobs measures Write end to end (staging, comparison with stored rows,
// status changes, commit with the checkpoint) in job rows per second:
//
//	new      pages of jobs never seen (a first crawl)
//	reread   the same pages again, unchanged (an incremental crawl re-reading a page)
//	changed  the same pages with every status changed
func BenchmarkWriteJobs(b *testing.B) {
	for _, size := range []int{1000, 100, 20} {
		b.Run(fmt.Sprintf("new/page=%d", size), func(b *testing.B) {
			s := openTemp(b)
			pages := make([]Batch, b.N)
			for i := range pages {
				pages[i] = benchPage(i, size, "SUCCESS")
			}
			benchWrites(b, s, pages, size)
		})
	}
	for _, mode := range []string{"reread", "changed"} {
		b.Run(mode+"/page=1000", func(b *testing.B) {
			s := openTemp(b)
			const stored = 200 // pages already in the store: 200,000 jobs
			ctx := context.Background()
			for i := 0; i < stored; i++ {
				must(b, s.Write(ctx, 1, benchPage(i, 1000, "SUCCESS")))
			}
			pages := make([]Batch, b.N)
			for i := range pages {
				status := "SUCCESS"
				if mode == "changed" {
					status = fmt.Sprint("S", i/stored)
				}
				pages[i] = benchPage(i%stored, 1000, status)
				pages[i].ObservedAt = t0.Add(time.Duration(i+1) * time.Second)
			}
			benchWrites(b, s, pages, 1000)
		})
	}
}

func benchWrites(b *testing.B, s *Store, pages []Batch, size int) {
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for i := range pages {
		if err := s.Write(ctx, 2, pages[i]); err != nil {
			b.Fatal(err)
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(len(pages)*size)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(float64(len(pages))/elapsed.Seconds(), "batches/s")
}
