package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
)

// BenchmarkCrawlPage measures what the journal adds to a crawl's page: an attempt
// journaled, then its page of jobs written, through the bare store ("bare": the record
// appended but never synced) and through Sink, which syncs the journal before the write
// ("journaled"). The difference is one fsync of the journal per page.
//
//	go test ./audit -run '^$' -bench CrawlPage -benchtime 200x
func BenchmarkCrawlPage(b *testing.B) {
	for _, size := range []int{1000, 100} {
		for _, mode := range []string{"bare", "journaled"} {
			b.Run(fmt.Sprintf("%s/page=%d", mode, size), func(b *testing.B) {
				path := filepath.Join(b.TempDir(), load.LiveFile)
				st, err := load.Open(context.Background(), path, load.Options{Clock: clock.NewManual(t0),
					Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				rec := New(load.NewJournal(path), Options{})
				var sink load.Sink = st
				if mode == "journaled" {
					sink = Sink(st, rec)
				}
				ctx := context.Background()
				runID, err := sink.StartRun(ctx, load.RunStart{Schedule: "bench", Kind: "extract", Started: t0})
				if err != nil {
					b.Fatal(err)
				}
				pages := make([]load.Batch, b.N)
				for i := range pages {
					pages[i] = page(int64(i+1), size)
				}
				call := datorama.CallRecord{Time: t0, Fingerprint: "tok_0a1b2c3d", Method: "POST",
					PathTemplate: "/v1/data-streams/api/{id}/stats", Status: 200, Latency: time.Millisecond, Attempt: 1}
				b.ResetTimer()
				for i := range pages {
					rec.ObserveCall(call)
					if err := sink.Write(ctx, runID, pages[i]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// page is a page of size jobs of stream id.
func page(id int64, size int) load.Batch {
	jobs := make([]load.JobRow, size)
	for i := range jobs {
		jid := id*100000 + int64(i)
		raw, _ := json.Marshal(map[string]any{"id": jid, "dataStreamId": id, "status": "SUCCESS",
			"processLog": "[2026-03-02 08:00:00] queued\n[2026-03-02 08:01:00] retrieving\n[2026-03-02 08:03:00] done."})
		jobs[i] = load.JobRow{ID: jid, StreamID: id, WorkspaceID: 1, Status: "SUCCESS",
			DataStartDate: t0, DataEndDate: t0, StartExecutionTime: t0, EndExecutionTime: t0, Raw: raw}
	}
	return load.Batch{Entity: load.Jobs, ParentID: id, ObservedAt: t0, Jobs: jobs,
		Checkpoint: &load.Checkpoint{Kind: "jobs", ParentID: id, State: json.RawMessage(`{}`), UpdatedAt: t0}}
}
