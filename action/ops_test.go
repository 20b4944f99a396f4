package action

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/sim"
)

// opsEnv is a small crawled account for the per-operation tests.
func opsEnv(t *testing.T) (*env, truth) {
	t.Helper()
	e := newEnv(t, sim.Options{Workspaces: 2, Streams: 14, JobsPerStream: 6})
	e.crawl(true)
	return e, e.truth()
}

func rawField(t *testing.T, raw json.RawMessage, key string) any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m[key]
}

// rerun-all: the built-in failed-streams selection reruns every job of streams whose
// last run failed, one rerun-all call per stream.
func TestOpRerunAllFromFailedStreams(t *testing.T) {
	e, tr := opsEnv(t)
	ids := tr.enabledStreams(0)
	broken := ids[:2]
	e.sim.Mutate(func(st *sim.State) {
		for _, id := range broken {
			must(t, st.SetStreamOutcome(id, "fail"))
			must(t, st.RunNow(id))
		}
	})
	e.sim.Advance(26 * time.Hour) // the runs fail; the last run of the day too
	e.crawl(false)
	tr = e.truth()
	var failed []int64
	for _, id := range tr.enabledStreams(0) {
		if tr.streams[id].LastRunStatus.Failed() {
			failed = append(failed, id)
		}
	}
	for _, id := range broken {
		if !tr.streams[id].LastRunStatus.Failed() {
			t.Fatalf("stream %d's last run did not fail: setup", id)
		}
	}
	known := maxJobIDs(tr)
	p, rep, err := e.act(Request{Selection: mustGet(t, mustCatalog(t), "failed-streams")})
	if err != nil || rep.Status != RunOK {
		t.Fatalf("execute: %v %+v", err, rep)
	}
	if len(p.Calls) != len(failed) || e.calls(epRerunAll) != len(failed) {
		t.Fatalf("rerun-all calls: planned %d, sent %d; want %d (streams %v)", len(p.Calls), e.calls(epRerunAll), len(failed), failed)
	}
	after := e.truth()
	for _, id := range failed {
		if len(newJobs(after, id, known[id])) == 0 {
			t.Errorf("stream %d: no rerun jobs at the simulator", id)
		}
	}
	// The jobs found their items.
	if n := e.count(`SELECT count(*) FROM action_items WHERE action_run_id = $1 AND len(job_ids) > 0`, rep.RunID); n != len(failed) {
		t.Errorf("%d items with job ids, want %d", n, len(failed))
	}
}

// enable / disable: PATCH enabled; a stream already in the state is skipped; the crawl
// confirms the outcome.
func TestOpEnableDisable(t *testing.T) {
	e, tr := opsEnv(t)
	ids := tr.enabledStreams(0)
	target := ids[:3]
	rows := func() []Row {
		var r []Row
		for i, id := range target {
			r = append(r, Row{Line: i + 1, StreamID: id})
		}
		return r
	}
	_, rep, err := e.act(Request{Op: OpDisable, Rows: rows()})
	if err != nil || rep.Sent != 3 {
		t.Fatalf("disable: %v %+v", err, rep)
	}
	tr = e.truth()
	for _, id := range target {
		if tr.streams[id].Enabled {
			t.Errorf("stream %d still enabled at the simulator", id)
		}
	}
	e.crawl(false, "streams")
	if n := e.count(`SELECT count(*) FROM action_items WHERE action_run_id = $1 AND outcome = 'succeeded'`, rep.RunID); n != 3 {
		t.Errorf("disable outcomes: %d succeeded, want 3", n)
	}
	// Disabled streams are not rerun or processed: skipped with the reason.
	p, err := e.eng.Prepare(context.Background(), Request{Op: OpProcess, Rows: []Row{{Line: 1, StreamID: target[0], StartDate: day("2026-01-01"), EndDate: day("2026-01-02")}}})
	if err != nil || p.Skipped["stream disabled"] != 1 || len(p.Calls) != 0 {
		t.Errorf("process of a disabled stream: %v, skipped %v", err, p.Skipped)
	}
	p, err = e.eng.Prepare(context.Background(), Request{Op: OpDisable, Rows: rows()})
	if err != nil || p.Skipped["unchanged"] != 3 {
		t.Errorf("disabling again: %v, skipped %v", err, p.Skipped)
	}
	mut := e.mutatingCalls()
	_, rep, err = e.act(Request{Op: OpEnable, Rows: rows()})
	if err != nil || rep.Sent != 3 || e.mutatingCalls()-mut != 3 {
		t.Fatalf("enable: %v %+v", err, rep)
	}
	tr = e.truth()
	for _, id := range target {
		if !tr.streams[id].Enabled {
			t.Errorf("stream %d not enabled again", id)
		}
	}
}

// patch: only the given fields are sent and change; the rest of the stream stays.
func TestOpPatch(t *testing.T) {
	e, tr := opsEnv(t)
	id := tr.enabledStreams(0)[0]
	before := tr.streams[id]
	patch := json.RawMessage(`{"customAttribute3":"team-a","runOnlyAsPartOfWorkflow":true}`)
	_, rep, err := e.act(Request{Op: OpPatch, Rows: []Row{{Line: 1, StreamID: id, Patch: patch}}})
	if err != nil || rep.Sent != 1 || e.calls(epPatch) != 1 {
		t.Fatalf("patch: %v %+v", err, rep)
	}
	after := e.truth().streams[id]
	if rawField(t, after.Raw, "customAttribute3") != "team-a" || !after.RunOnlyAsPartOfWorkflow {
		t.Errorf("fields not patched: %s", after.Raw)
	}
	if after.Name != before.Name || after.Enabled != before.Enabled || string(after.Config) != string(before.Config) {
		t.Errorf("fields outside the patch changed")
	}
	e.crawl(false, "streams")
	if n := e.count(`SELECT count(*) FROM action_items WHERE action_run_id = $1 AND outcome = 'succeeded'`, rep.RunID); n != 1 {
		t.Errorf("patch outcome not succeeded")
	}
}

// put: refused without ForcePut; with it, GET + merge + PUT: the change lands and the
// fields the record had survive (they were sent back).
func TestOpPut(t *testing.T) {
	e, tr := opsEnv(t)
	id := tr.enabledStreams(0)[1]
	before := tr.streams[id]
	patch := json.RawMessage(`{"customAttribute3":"full-update"}`)
	req := Request{Op: OpPut, Rows: []Row{{Line: 1, StreamID: id, Patch: patch}}}
	if _, err := e.eng.Prepare(context.Background(), req); err == nil || !strings.Contains(err.Error(), "--force-put") {
		t.Fatalf("put without ForcePut: %v", err)
	}
	req.Options.ForcePut = true
	p, rep, err := e.act(req)
	if err != nil || rep.Sent != 1 {
		t.Fatalf("put: %v %+v", err, rep)
	}
	if len(p.Warnings) == 0 || !strings.Contains(p.Warnings[0], "cleared") {
		t.Errorf("no warning that omitted fields are cleared: %v", p.Warnings)
	}
	if e.calls(epPut) != 1 || e.calls("GET /v1/data-streams/{id}") != 1 {
		t.Errorf("calls: PUT %d, GET %d; want 1 each", e.calls(epPut), e.calls("GET /v1/data-streams/{id}"))
	}
	after := e.truth().streams[id]
	if rawField(t, after.Raw, "customAttribute3") != "full-update" {
		t.Errorf("PUT did not land: %s", after.Raw)
	}
	if after.Name != before.Name || after.Enabled != before.Enabled || string(after.Config) != string(before.Config) || after.TemplateID != before.TemplateID {
		t.Errorf("PUT cleared fields it should have sent back")
	}
}

// mapping: GET the mapping, merge, PUT it.
func TestOpMapping(t *testing.T) {
	e, tr := opsEnv(t)
	id := tr.enabledStreams(0)[2]
	patch := json.RawMessage(`{"drextractNote":"checked"}`)
	_, rep, err := e.act(Request{Op: OpMapping, Rows: []Row{{Line: 1, StreamID: id, Patch: patch}}})
	if err != nil || rep.Sent != 1 || e.calls(epMappingPut) != 1 {
		t.Fatalf("mapping: %v %+v", err, rep)
	}
	m := e.truth().maps[id]
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(m, &obj); err != nil {
		t.Fatal(err)
	}
	if string(obj["drextractNote"]) != `"checked"` {
		t.Fatalf("mapping not changed: %s", m)
	}
	before := tr.maps[id]
	var old map[string]json.RawMessage
	_ = json.Unmarshal(before, &old)
	for k, v := range old {
		if string(obj[k]) != string(v) {
			t.Errorf("mapping key %s changed: %s → %s", k, v, obj[k])
		}
	}
	e.crawl(false, "mappings")
	if n := e.count(`SELECT count(*) FROM action_items WHERE action_run_id = $1 AND outcome = 'succeeded'`, rep.RunID); n != 1 {
		t.Errorf("mapping outcome not succeeded")
	}
}

// download: an API stream's job as a zip, a TotalConnect stream's job as CSV, each
// through its own endpoint.
func TestOpDownload(t *testing.T) {
	e, tr := opsEnv(t)
	var apiJob, tcJob datorama.Job
	for sid, jobs := range tr.byStr {
		for _, j := range jobs {
			if j.Status != datorama.StatusSuccess {
				continue
			}
			if s := tr.streams[sid]; s.IsTotalConnect() {
				if tcJob.ID == 0 {
					tcJob = j
				}
			} else if apiJob.ID == 0 {
				apiJob = j
			}
		}
	}
	if apiJob.ID == 0 || tcJob.ID == 0 {
		t.Skip("the account has no successful job of both kinds")
	}
	dir := t.TempDir()
	rows := []Row{
		{Line: 2, StreamID: int64(apiJob.DataStreamID), JobID: apiJob.ID},
		{Line: 3, StreamID: int64(tcJob.DataStreamID), JobID: tcJob.ID},
	}
	_, rep, err := e.act(Request{Op: OpDownload, Rows: rows, Options: Options{OutDir: dir}, Source: Source{Kind: "csv", Name: "jobs.csv"}})
	if err != nil || rep.Sent != 2 {
		t.Fatalf("download: %v %+v", err, rep)
	}
	if e.calls("GET /v1/data-stream-stats/api/{statId}/download") != 1 || e.calls("GET /v1/data-stream-stats/dynamic/{statId}/download") != 1 {
		t.Errorf("download endpoints: %v", e.sim.Calls().ByEndpoint)
	}
	zipPath := filepath.Join(dir, "stream-"+itoa(int64(apiJob.DataStreamID))+"_job-"+itoa(apiJob.ID)+".zip")
	b, err := os.ReadFile(zipPath)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil || len(zr.File) != 1 {
		t.Fatalf("not a zip with one file: %v", err)
	}
	csvPath := filepath.Join(dir, "stream-"+itoa(int64(tcJob.DataStreamID))+"_job-"+itoa(tcJob.ID)+".csv")
	c, err := os.ReadFile(csvPath)
	if err != nil || !strings.HasPrefix(string(c), "Date,") {
		t.Fatalf("TotalConnect CSV: %v %.40q", err, c)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("leftover files in the download folder: %v", entries)
	}
	if _, err := FollowUp(context.Background(), e.store.DB()); err != nil {
		t.Fatal(err)
	}
	if n := e.count(`SELECT count(*) FROM action_items WHERE action_run_id = $1 AND outcome = 'succeeded'`, rep.RunID); n != 2 {
		t.Errorf("download outcomes: %d succeeded", n)
	}
}

func itoa(v int64) string { b, _ := json.Marshal(v); return string(b) }
