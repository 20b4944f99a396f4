package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/postgres"
	"github.com/drextract/drextract/postgres/pgtest"
)

const (
	benchStreams       = 1000
	benchJobsPerStream = 1000 // 1,000,000 jobs
)

// benchJobs is page p of a crawl of the benchmark account: the jobs of stream p, with ids
// interleaved with other streams' the way the API's global ids are, each with a
// realistic record (a processLog of four lines).
func benchJobs(stream int64, from, n int, status string, at time.Time) []load.JobRow {
	rows := make([]load.JobRow, n)
	for i := range rows {
		j := from + i
		id := int64(j)*10_000 + stream
		start := at.Add(-time.Duration(j) * time.Hour)
		end := start.Add(4 * time.Minute)
		log := fmt.Sprintf("[%s] Job started\n[%s] Retrieving data for %s to %s\n[%s] Retrieved %d rows\n[%s] Job finished successfully\n",
			start.Format(time.DateTime), start.Format(time.DateTime), start.Format(time.DateOnly), start.Format(time.DateOnly),
			end.Format(time.DateTime), id%5000, end.Format(time.DateTime))
		raw, _ := json.Marshal(map[string]any{"id": id, "dataStreamId": stream, "status": status, "statusReason": nil,
			"dataStartDate": start.Format(time.DateOnly), "dataEndDate": start.Format(time.DateOnly),
			"startExecutionTime": start.UnixMilli(), "endExecutionTime": end.UnixMilli(), "userId": 55120, "processLog": log})
		rows[i] = load.JobRow{ID: id, StreamID: stream, WorkspaceID: stream%20 + 1, Status: status,
			DataStartDate: start, DataEndDate: start, StartExecutionTime: start, EndExecutionTime: end, UserID: 55120, Raw: raw}
	}
	return rows
}

// BenchmarkPublish1MJobs is issue 13's benchmark (run it with
// go test ./postgres -run '^$' -bench Publish1MJobs -benchtime 1x -timeout 60m):
//
//	full: the first publish of a store of 1,000,000 jobs (1000 streams), against psql's
//	      \copy of the same jobs, as CSV, into a table of the same definition, in the
//	      same run; the target is at most 1.5 times psql's time (ratio printed)
//	hourly: a run that re-reads the newest page of 20 streams (100 jobs each, 5 of them
//	      new and 10 changed), then an incremental publish: rows sent against rows the
//	      run wrote
//
// The store is written through the Sink, as a crawl writes it. A job's first sighting
// is then taken out of job_status_changes, as the write path's rule for it has it (a
// first observation is not a transition), so that the publish carries what a crawled
// store holds.
func BenchmarkPublish1MJobs(b *testing.B) {
	ctx := context.Background()
	clk := clock.NewManual(t0)
	dir := b.TempDir()
	store, err := load.Open(ctx, filepath.Join(dir, load.LiveFile), load.Options{Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	built := time.Now()
	run, err := store.StartRun(ctx, load.RunStart{Schedule: "bench", Kind: "extract-full"})
	if err != nil {
		b.Fatal(err)
	}
	for s := int64(1); s <= benchStreams; s++ {
		if err := store.Write(ctx, run, load.Batch{Entity: load.Jobs, ParentID: s, ObservedAt: t0, Complete: true,
			Jobs: benchJobs(s, 0, benchJobsPerStream, "SUCCESS", t0)}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := store.DB().Exec(`DELETE FROM job_status_changes WHERE old_status IS NULL`); err != nil {
		b.Fatal(err)
	}
	if err := store.FinishRun(ctx, run, load.RunEnd{Status: load.RunOK, Rows: map[string]int{"jobs": benchStreams * benchJobsPerStream}}); err != nil {
		b.Fatal(err)
	}
	b.Logf("built a store of %d jobs in %v", benchStreams*benchJobsPerStream, time.Since(built).Round(time.Second))

	pg := pgtest.Start(b)
	db := pg.Database(b)
	csv := filepath.Join(dir, "jobs.csv")
	if _, err := store.DB().Exec(fmt.Sprintf(`COPY jobs TO '%s' (FORMAT CSV, HEADER false)`, csv)); err != nil {
		b.Fatal(err)
	}
	target := postgres.Target{DSN: pg.DSN(db), Schema: "datorama"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		st, err := postgres.Publish(ctx, store, target, postgres.Options{Full: true})
		if err != nil {
			b.Fatal(err)
		}
		ours := time.Since(start)
		// The baseline: psql's COPY of the same jobs into a table defined the same way.
		if _, err := pg.Psql(ctx, db, "", "-c", `DROP SCHEMA IF EXISTS baseline CASCADE; CREATE SCHEMA baseline;
			CREATE TABLE baseline.jobs (LIKE datorama.jobs INCLUDING ALL)`); err != nil {
			b.Fatal(err)
		}
		start = time.Now()
		if _, err := pg.Psql(ctx, db, "", "-c", `\copy baseline.jobs FROM '`+csv+`' (FORMAT csv)`); err != nil {
			b.Fatal(err)
		}
		psql := time.Since(start)
		jobs := st.Table(load.Jobs)
		b.Logf("full publish: %d rows (%d jobs) in %v; jobs alone %v; psql \\copy of the jobs %v: ratio %.2f (jobs alone %.2f)",
			st.Sent(), jobs.Sent, ours.Round(time.Millisecond), jobs.Duration.Round(time.Millisecond), psql.Round(time.Millisecond),
			ours.Seconds()/psql.Seconds(), jobs.Duration.Seconds()/psql.Seconds())
		b.ReportMetric(ours.Seconds()/psql.Seconds(), "x-psql")
	}
	b.StopTimer()

	// An hour later: the newest page of 20 streams again, 5 new jobs and 10 finished.
	clk.Advance(time.Hour)
	run, err = store.StartRun(ctx, load.RunStart{Schedule: "bench", Kind: "extract"})
	if err != nil {
		b.Fatal(err)
	}
	written := 0
	for s := int64(1); s <= 20; s++ {
		page := append(benchJobs(s, 0, 10, "FAILURE", t0), benchJobs(s, 10, 85, "SUCCESS", t0)...)
		page = append(page, benchJobs(s, -5, 5, "PENDING", t0.Add(time.Hour))...)
		if err := store.Write(ctx, run, load.Batch{Entity: load.Jobs, ParentID: s, ObservedAt: clk.Now(), Jobs: page}); err != nil {
			b.Fatal(err)
		}
		written += len(page)
	}
	if err := store.FinishRun(ctx, run, load.RunEnd{Status: load.RunOK, Rows: map[string]int{"jobs": written}}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	st, err := postgres.Publish(ctx, store, target, postgres.Options{Run: run})
	if err != nil {
		b.Fatal(err)
	}
	if st.Full {
		b.Fatal("the hourly publish was a full one")
	}
	b.Logf("hourly publish: %v, %d rows sent in all", time.Since(start).Round(time.Millisecond), st.Sent())
	for _, t := range st.Tables {
		if t.Sent > 0 || t.Written > 0 {
			b.Logf("  %-20s sent %6d, the run wrote %6d", t.Table, t.Sent, t.Written)
		}
	}
	if got := st.Table(load.Jobs).Sent; got != int64(written) {
		b.Errorf("the hourly publish sent %d jobs, the run wrote %d", got, written)
	}
}
