package e2e

import (
	"database/sql"
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/drextract/drextract/extract"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// TestViewsAgreeWithTruth: the analyst views say what the API's records say, computed
// here a second way, in Go from the simulator's truth rather than in SQL from the store:
// every job's duration, rows retrieved (from "Retrieved N rows" in its log), stream,
// workspace and data-source names in jobs_enriched, and every stream's health figures in
// stream_health, after a full crawl and after an incremental one a day later. (That the
// serving copy and PostgreSQL hold the same views with the same rows is
// TestPostgresEqualsTruth's and load's publish tests' business.)
func TestViewsAgreeWithTruth(t *testing.T) {
	a := newAccount(t, sim.Options{Seed: 1402, Workspaces: 3, Streams: 40, JobsPerStream: 25, MaxPageSize: 50})
	only := []string{load.Workspaces, load.Streams, load.Jobs}
	for step, gap := range []time.Duration{0, 24 * time.Hour} {
		a.sim.Advance(gap)
		if res := a.crawl(extract.Options{Entities: only}); res.Status != load.RunOK {
			t.Fatalf("crawl %d: %s %v %v", step+1, res.Status, res.Incomplete, res.Err)
		}
		jobs, health := expectedViews(t, a.sim.Truth(), asOf(t, a.store.DB()))
		assertJobsEnriched(t, step+1, a.store.DB(), jobs)
		assertStreamHealth(t, step+1, a.store.DB(), health)
	}
}

// The records of the truth the views are computed from, as the API sends them.
type (
	truthWorkspace struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	truthStream struct {
		ID                int64  `json:"id"`
		Name              string `json:"name"`
		WorkspaceID       int64  `json:"workspaceId"`
		DataSourceName    string `json:"dataSourceName"`
		SourceDisplayName string `json:"sourceDisplayName"`
		Enabled           bool   `json:"enabled"`
	}
	truthJob struct {
		ID            int64  `json:"id"`
		StreamID      int64  `json:"dataStreamId"`
		Status        string `json:"status"`
		Start         *int64 `json:"startExecutionTime"`
		End           *int64 `json:"endExecutionTime"`
		ProcessLog    string `json:"processLog"`
		RowsRetrieved *int64 `json:"rowsRetrieved"`
	}
)

// enrichedJob is a row of jobs_enriched, with NULL as nil.
type enrichedJob struct {
	durationS                                                *float64
	rowsRetrieved                                            *int64
	streamName, workspaceName, dataSource, sourceDisplayName string
	workspaceID                                              int64
}

// streamHealth is a row of stream_health, with NULL as nil.
type streamHealth struct {
	enabled, runningNow      bool
	lastSuccess, lastFailure *time.Time
	failures7d, consecutive  int64
	hoursSinceLastSuccess    *float64
}

var retrievedRE = regexp.MustCompile(`Retrieved ([0-9]+) rows`)

// expectedViews computes jobs_enriched and stream_health from the truth, with asOf as
// stream_health's "now".
func expectedViews(t *testing.T, tr sim.Truth, asOf time.Time) (map[int64]enrichedJob, map[int64]streamHealth) {
	t.Helper()
	workspaces := map[int64]truthWorkspace{}
	for _, raw := range tr.Workspaces {
		var w truthWorkspace
		mustDecode(t, raw, &w)
		workspaces[w.ID] = w
	}
	streams := map[int64]truthStream{}
	health := map[int64]streamHealth{}
	for _, raw := range tr.Streams {
		var s truthStream
		mustDecode(t, raw, &s)
		streams[s.ID] = s
		health[s.ID] = streamHealth{enabled: s.Enabled}
	}
	jobs := map[int64]enrichedJob{}
	type finished struct {
		failure bool
		t       time.Time
	}
	byStream := map[int64][]finished{}
	for _, raw := range tr.Jobs {
		var j truthJob
		mustDecode(t, raw, &j)
		s := streams[j.StreamID]
		e := enrichedJob{streamName: s.Name, workspaceID: s.WorkspaceID, workspaceName: workspaces[s.WorkspaceID].Name,
			dataSource: s.DataSourceName, sourceDisplayName: s.SourceDisplayName, rowsRetrieved: j.RowsRetrieved}
		if j.Start != nil && j.End != nil {
			d := float64(*j.End-*j.Start) / 1000
			e.durationS = &d
		}
		if m := retrievedRE.FindStringSubmatch(j.ProcessLog); e.rowsRetrieved == nil && m != nil {
			n, err := strconv.ParseInt(m[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			e.rowsRetrieved = &n
		}
		jobs[j.ID] = e
		h := health[j.StreamID]
		switch j.Status {
		case "IN_PROGRESS":
			h.runningNow = true
		case "SUCCESS", "FAILURE":
			at := j.End
			if at == nil {
				at = j.Start
			}
			byStream[j.StreamID] = append(byStream[j.StreamID], finished{j.Status == "FAILURE", time.UnixMilli(*at).UTC()})
		}
		health[j.StreamID] = h
	}
	for id, fs := range byStream {
		h := health[id]
		for _, f := range fs {
			last := &h.lastSuccess
			if f.failure {
				last = &h.lastFailure
			}
			if *last == nil || f.t.After(**last) {
				at := f.t
				*last = &at
			}
		}
		for _, f := range fs {
			if f.failure && !f.t.Before(asOf.Add(-7*24*time.Hour)) {
				h.failures7d++
			}
			if f.failure && (h.lastSuccess == nil || f.t.After(*h.lastSuccess)) {
				h.consecutive++
			}
		}
		if h.lastSuccess != nil {
			hours := asOf.Sub(*h.lastSuccess).Hours()
			h.hoursSinceLastSuccess = &hours
		}
		health[id] = h
	}
	return jobs, health
}

func mustDecode(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("truth record %s: %v", clip(string(raw)), err)
	}
}

// asOf is stream_health's "now": when the store's stream data is as of.
func asOf(t *testing.T, db *sql.DB) time.Time {
	t.Helper()
	var at time.Time
	if err := db.QueryRow(`SELECT max(last_seen) FROM streams`).Scan(&at); err != nil {
		t.Fatal(err)
	}
	return at.UTC()
}

func assertJobsEnriched(t *testing.T, step int, db *sql.DB, want map[int64]enrichedJob) {
	t.Helper()
	rows, err := db.Query(`SELECT id, duration_s, rows_retrieved, stream_name, workspace_id, workspace_name,
		data_source_name, source_display_name FROM jobs_enriched WHERE NOT is_deleted`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen, withRows, withDuration := 0, 0, 0
	for rows.Next() {
		var id int64
		var got enrichedJob
		var dur sql.NullFloat64
		var n sql.NullInt64
		if err := rows.Scan(&id, &dur, &n, &got.streamName, &got.workspaceID, &got.workspaceName, &got.dataSource, &got.sourceDisplayName); err != nil {
			t.Fatal(err)
		}
		seen++
		w, ok := want[id]
		if !ok {
			t.Errorf("crawl %d: jobs_enriched has job %d, which the API does not", step, id)
			continue
		}
		if dur.Valid != (w.durationS != nil) || dur.Valid && math.Abs(dur.Float64-*w.durationS) > 1e-6 {
			t.Errorf("crawl %d: job %d: duration_s %v, want %v", step, id, dur, deref(w.durationS))
		}
		if dur.Valid {
			withDuration++
		}
		if n.Valid != (w.rowsRetrieved != nil) || n.Valid && n.Int64 != *w.rowsRetrieved {
			t.Errorf("crawl %d: job %d: rows_retrieved %v, want %v", step, id, n, deref(w.rowsRetrieved))
		}
		if n.Valid {
			withRows++
		}
		got.durationS, got.rowsRetrieved = w.durationS, w.rowsRetrieved
		if got != w {
			t.Errorf("crawl %d: job %d: names %+v, want %+v", step, id, got, w)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(want) || withRows == 0 || withDuration == 0 || withRows == seen {
		t.Errorf("crawl %d: jobs_enriched has %d live jobs (the API %d), %d with rows retrieved, %d with a duration: the account should hold both kinds",
			step, seen, len(want), withRows, withDuration)
	}
}

func assertStreamHealth(t *testing.T, step int, db *sql.DB, want map[int64]streamHealth) {
	t.Helper()
	rows, err := db.Query(`SELECT stream_id, enabled, running_now, last_success, last_failure, failures_7d,
		consecutive_failures, hours_since_last_success FROM stream_health WHERE NOT is_deleted`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen, failing, running := 0, 0, 0
	for rows.Next() {
		var id int64
		var got streamHealth
		var success, failure sql.NullTime
		var hours sql.NullFloat64
		if err := rows.Scan(&id, &got.enabled, &got.runningNow, &success, &failure, &got.failures7d, &got.consecutive, &hours); err != nil {
			t.Fatal(err)
		}
		seen++
		w, ok := want[id]
		if !ok {
			t.Errorf("crawl %d: stream_health has stream %d, which the API does not", step, id)
			continue
		}
		if !sameTime(success, w.lastSuccess) || !sameTime(failure, w.lastFailure) {
			t.Errorf("crawl %d: stream %d: last success %v, last failure %v; want %v, %v", step, id, success, failure, deref(w.lastSuccess), deref(w.lastFailure))
		}
		if hours.Valid != (w.hoursSinceLastSuccess != nil) || hours.Valid && math.Abs(hours.Float64-*w.hoursSinceLastSuccess) > 1e-6 {
			t.Errorf("crawl %d: stream %d: hours since the last success %v, want %v", step, id, hours, deref(w.hoursSinceLastSuccess))
		}
		if got.enabled != w.enabled || got.runningNow != w.runningNow || got.failures7d != w.failures7d || got.consecutive != w.consecutive {
			t.Errorf("crawl %d: stream %d: enabled %v, running %v, failures in 7 days %d, consecutive %d; want %v, %v, %d, %d",
				step, id, got.enabled, got.runningNow, got.failures7d, got.consecutive, w.enabled, w.runningNow, w.failures7d, w.consecutive)
		}
		if got.consecutive > 0 {
			failing++
		}
		if got.runningNow {
			running++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if seen != len(want) || failing == 0 || running == 0 {
		t.Errorf("crawl %d: stream_health has %d live streams (the API %d), %d failing now, %d running: the account should hold each kind",
			step, seen, len(want), failing, running)
	}
}

func sameTime(got sql.NullTime, want *time.Time) bool {
	if !got.Valid || want == nil {
		return got.Valid == (want != nil)
	}
	return got.Time.Equal(*want)
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
