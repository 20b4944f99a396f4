// Package loadtest builds stores for tests and benchmarks of the DuckDB store and damages
// store files the way a failing disk does. It writes through load's public API only and
// knows nothing of the API or the crawler.
package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/drextract/drextract/load"
)

// Shape is the synthetic account BuildStore writes: Streams streams in Workspaces
// workspaces, each with a job a day, back from End, until Jobs jobs are written (streams
// get between half and one and a half times their share, so their histories span
// different months, as in a crawled account).
type Shape struct {
	Jobs       int
	Streams    int
	Workspaces int
	End        time.Time // the newest data date; default 2026-06-30
	Seed       uint64
}

// Million is the shape of the benchmarks: a million jobs over 1,300 streams, about the
// account drextract's memory and export figures are measured on.
var Million = Shape{Jobs: 1_000_000, Streams: 1300, Workspaces: 20, Seed: 1}

// BuildStore writes the shape's workspaces, streams and jobs into the live store at path
// through load's Sink (1,000-job pages, one run, each page with its checkpoint), then
// closes it: a store like a crawl leaves. Job records carry what the API sends (ids,
// dates, times, status, a process log with row counts), about 430 bytes of JSON each.
// It takes tens of seconds for a million jobs.
func BuildStore(ctx context.Context, path string, sh Shape) error {
	if sh.End.IsZero() {
		sh.End = time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)
	}
	sh.Streams = max(sh.Streams, 1)
	sh.Workspaces = max(min(sh.Workspaces, sh.Streams), 1)
	st, err := load.Open(ctx, path, load.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer st.Close()
	run, err := st.StartRun(ctx, load.RunStart{Schedule: "loadtest", Kind: "extract", Started: sh.End})
	if err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(sh.Seed, 0x10ad))
	ws := make([]load.WorkspaceRow, sh.Workspaces)
	for i := range ws {
		id := int64(10_000 + i)
		ws[i] = load.WorkspaceRow{ID: id, Name: fmt.Sprintf("Workspace %d", i+1), Raw: mustJSON(map[string]any{"id": id, "name": fmt.Sprintf("Workspace %d", i+1)})}
	}
	if err := st.Write(ctx, run, load.Batch{Entity: load.Workspaces, ObservedAt: sh.End, Complete: true, Workspaces: ws}); err != nil {
		return err
	}
	streams := make([][]load.StreamRow, sh.Workspaces)
	for i := 0; i < sh.Streams; i++ {
		w := ws[i%sh.Workspaces]
		id := int64(3_000_000 + i*7919)
		name := fmt.Sprintf("%s - stream %04d", []string{"Google Ads", "Facebook", "DV360", "TotalConnect", "Salesforce"}[i%5], i)
		streams[i%sh.Workspaces] = append(streams[i%sh.Workspaces], load.StreamRow{ID: id, WorkspaceID: w.ID, Name: name,
			Raw: mustJSON(map[string]any{"id": id, "name": name, "workspaceId": w.ID, "enabled": true})})
	}
	for i, rows := range streams {
		if err := st.Write(ctx, run, load.Batch{Entity: load.Streams, ParentID: ws[i].ID, ObservedAt: sh.End, Complete: true, Streams: rows}); err != nil {
			return err
		}
	}
	share := sh.Jobs / sh.Streams
	written, nextID := 0, int64(300_000_000)
	for i := 0; i < sh.Streams && written < sh.Jobs; i++ {
		s := streams[i%sh.Workspaces][i/sh.Workspaces]
		n := share/2 + rng.IntN(share+1)
		if i == sh.Streams-1 || written+n > sh.Jobs {
			n = sh.Jobs - written
		}
		for done := 0; done < n; done += 1000 {
			page := make([]load.JobRow, 0, min(1000, n-done))
			for k := done; k < n && k < done+1000; k++ {
				nextID += 1 + int64(rng.IntN(40))
				page = append(page, job(rng, nextID, s, sh.End.AddDate(0, 0, -k)))
			}
			state, _ := json.Marshal(map[string]int{"stored": done + len(page)})
			b := load.Batch{Entity: load.Jobs, ParentID: s.ID, ObservedAt: sh.End, Jobs: page,
				Checkpoint: &load.Checkpoint{Kind: "jobs", ParentID: s.ID, State: state}}
			if err := st.Write(ctx, run, b); err != nil {
				return err
			}
		}
		written += n
	}
	if err := st.FinishRun(ctx, run, load.RunEnd{Finished: sh.End, Status: load.RunOK}); err != nil {
		return err
	}
	return st.Close()
}

var statuses = []string{"SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS", "SUCCESS", "FAILURE", "SUCCESS_WITH_WARNINGS", "IN_PROGRESS"}

// job is one day's job of stream s, as the API's stats listing returns it.
func job(rng *rand.Rand, id int64, s load.StreamRow, day time.Time) load.JobRow {
	start := day.AddDate(0, 0, 1).Add(time.Duration(rng.IntN(6*3600)) * time.Second)
	end := start.Add(time.Duration(30+rng.IntN(3000)) * time.Second)
	status := statuses[rng.IntN(len(statuses))]
	rows := rng.IntN(200_000)
	stamp := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }
	log := fmt.Sprintf("[%s] Job started\n[%s] Retrieving data for %s to %s\n[%s] Retrieved %d rows\n[%s] Job finished %s\n",
		stamp(start), stamp(start), day.Format(time.DateOnly), day.Format(time.DateOnly), stamp(end), rows, stamp(end), status)
	var reason any
	if status == "FAILURE" {
		reason = []string{"Authentication failed", "Source timed out", "Quota exceeded at the source"}[rng.IntN(3)]
	}
	userID := int64(56_000 + rng.IntN(12))
	raw := mustJSON(map[string]any{
		"id": id, "dataStreamId": s.ID, "status": status, "statusReason": reason,
		"dataStartDate": day.Format(time.DateOnly), "dataEndDate": day.Format(time.DateOnly),
		"startExecutionTime": start.UnixMilli(), "endExecutionTime": end.UnixMilli(),
		"userId": userID, "processLog": log,
	})
	r := load.JobRow{ID: id, StreamID: s.ID, WorkspaceID: s.WorkspaceID, Status: status,
		DataStartDate: day, DataEndDate: day, StartExecutionTime: start, EndExecutionTime: end, UserID: userID, Raw: raw}
	if s, ok := reason.(string); ok {
		r.StatusReason = s
	}
	return r
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Corrupt damages the file at path the way issue 12's reproduction did: size bytes
// inverted (XOR 0xFF) every `every` bytes from offset from on, to the end of the file.
// It returns how many places it damaged.
func Corrupt(path string, from, every int64, size int) (int, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	buf := make([]byte, size)
	n := 0
	for off := from; off+int64(size) <= fi.Size(); off += every {
		if _, err := f.ReadAt(buf, off); err != nil {
			return n, err
		}
		for i := range buf {
			buf[i] ^= 0xFF
		}
		if _, err := f.WriteAt(buf, off); err != nil {
			return n, err
		}
		n++
	}
	return n, f.Sync()
}
