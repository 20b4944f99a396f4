package load

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"syscall"
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
	benchGroups(b, s, pages, size, 1)
}

// BenchmarkWriteGroups measures WriteBatches the way a crawl with several workers calls
// it: each call holds one page of each of group streams, a stream's last page completes
// its listing (AllIDs), every page carries its checkpoint. It reports rows per second of
// wall time and of the process's CPU time (steadier on a busy machine).
func BenchmarkWriteGroups(b *testing.B) {
	for _, size := range []int{800, 100} {
		for _, group := range []int{1, 4, 8} {
			b.Run(fmt.Sprintf("page=%d/group=%d", size, group), func(b *testing.B) {
				s := openTemp(b)
				const pagesPerStream = 3
				streams := max(b.N, group)
				var pages []Batch
				for first := 0; first < streams; first += group {
					for p := range pagesPerStream {
						for st := first; st < min(first+group, streams); st++ {
							pages = append(pages, crawlPage(int64(st+1), p, pagesPerStream, size))
						}
					}
				}
				benchGroups(b, s, pages, size, group)
			})
		}
	}
}

// crawlPage is page p (from 0) of stream's pages pages of size jobs, as a crawl writes it.
func crawlPage(stream int64, p, pages, size int) Batch {
	rows := make([]JobRow, size)
	id := func(j int) int64 { return int64(j)*100_000 + stream } // ids of streams interleave
	for j := range rows {
		rows[j] = jobRow(id(p*size+j), stream, 1, "SUCCESS", t0.AddDate(0, 0, -j%700))
	}
	state, _ := json.Marshal(map[string]int{"next": p + 2, "stored": (p + 1) * size})
	b := Batch{Entity: Jobs, ParentID: stream, ObservedAt: t0, Jobs: rows,
		Checkpoint: &Checkpoint{Kind: "jobs", ParentID: stream, State: state}}
	if p == pages-1 {
		b.Complete = true
		for j := range pages * size {
			b.AllIDs = append(b.AllIDs, id(j))
		}
	}
	return b
}

func benchGroups(b *testing.B, s *Store, pages []Batch, size, group int) {
	ctx := context.Background()
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	for i := 0; i < len(pages); i += group {
		if err := s.WriteBatches(ctx, 2, pages[i:min(i+group, len(pages))]); err != nil {
			b.Fatal(err)
		}
	}
	elapsed, cpuUsed := time.Since(start), cpuTime()-cpu
	b.ReportMetric(float64(len(pages)*size)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(float64(len(pages)*size)/cpuUsed.Seconds(), "rows/cpu-s")
	b.ReportMetric(float64(len(pages))/elapsed.Seconds(), "batches/s")
}

// cpuTime is the CPU time the process used so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkExport1MJobs measures the Parquet export of a store holding 1,000,000 jobs
// (written through the Sink as 1000 pages of 1000) and the serving-copy publish.
func BenchmarkExport1MJobs(b *testing.B) {
	dir := b.TempDir()
	s := openIn(b, dir)
	ctx := context.Background()
	loadStart := time.Now()
	for p := 0; p < 1000; p++ {
		must(b, s.Write(ctx, 1, benchPage(p, 1000, "SUCCESS")))
	}
	loaded := time.Since(loadStart)
	must(b, s.FinishRun(ctx, mustRun(b, s), RunEnd{Status: RunOK})) // checkpoints the WAL
	b.ResetTimer()
	var exportTime, publishTime time.Duration
	var st ExportStats
	for i := 0; i < b.N; i++ {
		w := time.Now()
		var err error
		st, err = s.Export(ctx, filepath.Join(dir, ParquetDir))
		must(b, err)
		exportTime += time.Since(w)
		w = time.Now()
		must(b, s.Publish(ctx, filepath.Join(dir, ServingFile)))
		publishTime += time.Since(w)
	}
	if st.Rows[Jobs] != 1_000_000 {
		b.Fatalf("exported %d jobs", st.Rows[Jobs])
	}
	b.ReportMetric(exportTime.Seconds()/float64(b.N), "export-s")
	b.ReportMetric(publishTime.Seconds()/float64(b.N), "publish-s")
	b.ReportMetric(float64(st.Bytes)/1e6, "parquet-MB")
	b.ReportMetric(1e6/loaded.Seconds(), "load-rows/s")
}

func mustRun(b *testing.B, s *Store) int64 {
	id, err := s.StartRun(context.Background(), RunStart{Schedule: "bench", Kind: "extract"})
	must(b, err)
	return id
}
