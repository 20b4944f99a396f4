package action

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/drextract/drextract/sim"
)

// Acceptance: renaming 1,000 streams from a CSV puts every name in the store after the
// next crawl, and in streams_history; a CSV with a bad row is refused before any call,
// naming the line.
func TestRename1000FromCSV(t *testing.T) {
	e := newEnv(t, sim.Options{Workspaces: 4, Streams: 1000, JobsPerStream: -1})
	e.crawl(true, "streams")
	tr := e.truth()
	ids := sortedKeys(tr.streams)
	if len(ids) != 1000 {
		t.Fatalf("%d streams", len(ids))
	}
	var b strings.Builder
	b.WriteString("stream_id,name\n")
	want := map[int64]string{}
	for i, id := range ids {
		name := fmt.Sprintf("US - Paid - %04d - %s", i, strings.ReplaceAll(tr.streams[id].Name, ",", ""))
		want[id] = name
		fmt.Fprintf(&b, "%d,%q\n", id, name)
	}
	good := b.String()

	// Bad files first: each is refused, naming its line, and nothing is sent.
	lines := strings.SplitAfter(good, "\n")
	bad := []struct {
		name    string
		edit    func([]string)
		wantErr string
	}{
		{"unknown stream", func(l []string) { l[5] = "999,Nobody\n" }, "renames.csv:6: stream 999 is not in the store"},
		{"empty name", func(l []string) { l[3] = fmt.Sprintf("%d,\"  \"\n", ids[2]) }, "renames.csv:4: name: empty name"},
		{"wrong column count", func(l []string) { l[700] = fmt.Sprintf("%d,a,b\n", ids[699]) }, "renames.csv:701: wrong number of columns"},
	}
	mut := e.mutatingCalls()
	for _, tt := range bad {
		l := append([]string(nil), lines...)
		tt.edit(l)
		rows, err := ParseCSV(strings.NewReader(strings.Join(l, "")), "renames.csv", OpRename)
		if err == nil {
			_, err = e.eng.Prepare(context.Background(), Request{Op: OpRename, Rows: rows, Source: Source{Kind: "csv", Name: "renames.csv"}})
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErr)
		}
	}
	if got := e.mutatingCalls() - mut; got != 0 {
		t.Fatalf("bad files sent %d calls", got)
	}

	rows, err := ParseCSV(strings.NewReader(good), "renames.csv", OpRename)
	if err != nil {
		t.Fatal(err)
	}
	p, rep, err := e.act(Request{Op: OpRename, Rows: rows, Source: Source{Kind: "csv", Name: "renames.csv"}})
	if err != nil || rep.Status != RunOK || rep.Sent != 1000 {
		t.Fatalf("execute: %v (%+v)", err, rep)
	}
	if len(p.Calls) != 1000 || e.calls(epPatch) != 1000 {
		t.Fatalf("planned %d calls, %d PATCHes sent; want 1000", len(p.Calls), e.calls(epPatch))
	}
	e.crawl(false, "streams")
	got := map[int64]string{}
	for _, r := range e.query(`SELECT id, name FROM streams`) {
		got[r[0].(int64)] = r[1].(string)
	}
	hist := map[int64]string{}
	for _, r := range e.query(`SELECT id, name FROM streams_history WHERE is_current`) {
		hist[r[0].(int64)] = r[1].(string)
	}
	for id, name := range want {
		if got[id] != name {
			t.Fatalf("stream %d is named %q in the store, want %q", id, got[id], name)
		}
		if hist[id] != name {
			t.Fatalf("stream %d: current history name %q, want %q", id, hist[id], name)
		}
	}
	if n := e.count(`SELECT count(DISTINCT id) FROM streams_history WHERE NOT is_current AND valid_to IS NOT NULL`); n != 1000 {
		t.Errorf("%d streams with a closed old version, want 1000", n)
	}
	if n := e.count(`SELECT count(*) FROM action_items WHERE action_run_id = $1 AND outcome = 'succeeded'`, rep.RunID); n != 1000 {
		t.Errorf("%d renames followed up as succeeded, want 1000", n)
	}

	// Renaming to the current names again is planned as nothing.
	p2, err := e.eng.Prepare(context.Background(), Request{Op: OpRename, Rows: rows, Source: Source{Kind: "csv", Name: "renames.csv"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(p2.Calls) != 0 || p2.Skipped["unchanged"] != 1000 {
		t.Errorf("second plan: %d calls, skipped %v", len(p2.Calls), p2.Skipped)
	}
	var le *LineError
	_, err = ParseCSV(strings.NewReader("stream_id,name\n1,\n"), "x.csv", OpRename)
	if !errors.As(err, &le) || le.Line != 2 {
		t.Errorf("LineError with line 2 expected, got %v", err)
	}
}
