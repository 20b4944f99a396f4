package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/sim"
	"github.com/spf13/cobra"
)

// query runs drextract query with CSV output and returns one column.
func (e *actEnv) query(sql, col string) []string {
	e.t.Helper()
	code, out, errOut := e.run("query", "--format", "csv", sql)
	if code != ExitOK {
		e.t.Fatalf("query %q: exit %d\n%s%s", sql, code, out, errOut)
	}
	return csvColumn(e.t, out, col)
}

// Issue 14 points 3, 4 and 5 through the CLI, as a user types them: a rename is visible
// to drextract query right after rename --yes (the run publishes serving.duckdb); create
// and delete are planned, guarded and sent only with --yes, and show at once too; rerun
// --job works for a job the store does not have yet.
func TestActionsShowAtOnceThroughQuery(t *testing.T) {
	e := newActEnv(t, sim.Options{Seed: 5, Workspaces: 1, Streams: 8, JobsPerStream: 3})
	if code, out, errOut := e.run("extract", "--full"); code != ExitOK {
		t.Fatalf("extract: %d\n%s%s", code, out, errOut)
	}
	var ids []int64
	for id, s := range e.truthStreams() {
		if s.Enabled {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	ws := e.truthStreams()[ids[0]].WorkspaceID

	// rename --yes, then query: the new name at once.
	s0 := fmt.Sprint(ids[0])
	if code, out, errOut := e.run("rename", "--stream", s0, "--name", "Seen Right Away", "--yes"); code != ExitOK {
		t.Fatalf("rename: exit %d\n%s%s", code, out, errOut)
	}
	if got := e.query("select name from streams where id = "+s0, "name"); !slices.Equal(got, []string{"Seen Right Away"}) {
		t.Errorf("query right after rename --yes: %q", got)
	}

	// create: a dry run sends nothing; --yes creates, and query shows it with its id.
	body := e.writeFile("stream.json", `{"name": "CLI Created", "dataSourceId": 412}`)
	mut := e.mutating()
	code, out, errOut := e.run("create", "stream", "--workspace", fmt.Sprint(ws), "--json", body)
	if code != ExitOK || !strings.Contains(out, "Dry run: nothing was sent") || !strings.Contains(out, `"workspaceId":`+fmt.Sprint(ws)+`,"name":"CLI Created"`) || e.mutating() != mut {
		t.Errorf("create dry run: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut = e.run("create", "stream", "--workspace", fmt.Sprint(ws), "--json", body, "--yes"); code != ExitOK {
		t.Fatalf("create --yes: exit %d\n%s%s", code, out, errOut)
	}
	created := e.query("select id from streams where name = 'CLI Created' and not is_deleted", "id")
	audited := e.query("select created_id from action_items where operation = 'create-stream'", "created_id")
	if len(created) != 1 || !slices.Equal(created, audited) {
		t.Errorf("created stream in the store %v, in the audit %v", created, audited)
	}
	if code, _, errOut = e.run("create", "stream", "--workspace", fmt.Sprint(ws), "--json", e.writeFile("bad.json", `{"dataSourceId": 412}`)); code != ExitUsage || !strings.Contains(errOut, `"name" must be a non-empty string`) {
		t.Errorf("a body without a name: exit %d %s", code, errOut)
	}

	other := e.writeFile("other.json", fmt.Sprintf(`{"name": "Elsewhere", "dataSourceId": 412, "workspaceId": %d}`, ws+1))
	if code, _, errOut = e.run("create", "stream", "--workspace", fmt.Sprint(ws), "--json", other); code != ExitUsage || !strings.Contains(errOut, "differs from the workspace") {
		t.Errorf("a body naming another workspace: exit %d %s", code, errOut)
	}

	// delete: a stream that just ran needs --force; with it, deleted at once.
	s1 := fmt.Sprint(ids[1])
	mut = e.mutating()
	if code, out, errOut = e.run("delete", "--stream", s1, "--yes"); code != ExitUsage || !strings.Contains(errOut, "--force") || e.mutating() != mut {
		t.Errorf("delete of a stream that ran today without --force: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut = e.run("delete", "--stream", s1, "--force", "--yes"); code != ExitOK {
		t.Fatalf("delete --force --yes: exit %d\n%s%s", code, out, errOut)
	}
	if got := e.query("select is_deleted from streams where id = "+s1, "is_deleted"); !slices.Equal(got, []string{"true"}) {
		t.Errorf("query right after delete: is_deleted %v", got)
	}
	if _, ok := e.truthStreams()[ids[1]]; ok {
		t.Error("the stream is still at the simulator")
	}
	// act --csv --action delete: more rows than --max-delete is refused.
	var b strings.Builder
	b.WriteString("stream_id\n")
	for _, id := range ids[2:] {
		fmt.Fprintln(&b, id)
	}
	many := e.writeFile("deletes.csv", b.String())
	mut = e.mutating()
	if code, _, errOut = e.run("act", "--csv", many, "--action", "delete", "--max-delete", "3", "--force", "--yes"); code != ExitUsage || !strings.Contains(errOut, "--max-delete is 3") || e.mutating() != mut {
		t.Errorf("act --action delete over --max-delete: exit %d %s", code, errOut)
	}

	// rerun --job of a job the store does not have: one lookup, rerun on its stream.
	sid := ids[2]
	e.sim.RunStreams([]int64{sid})
	e.sim.Advance(3 * time.Hour)
	var fresh int64
	for _, raw := range e.sim.Truth().Jobs {
		var j datorama.Job
		if err := json.Unmarshal(raw, &j); err != nil {
			t.Fatal(err)
		}
		if int64(j.DataStreamID) == sid && datorama.IsFinal(j.Status) && j.ID > fresh {
			fresh = j.ID
		}
	}
	if got := e.query(fmt.Sprintf("select count(*) as n from jobs where id = %d", fresh), "n"); !slices.Equal(got, []string{"0"}) {
		t.Fatalf("setup: the store has job %d already", fresh)
	}
	if code, _, errOut = e.run("rerun", "--job", fmt.Sprint(fresh)); code != ExitUsage || !strings.Contains(errOut, "not in the store") {
		t.Errorf("rerun --job dry run of an unknown job: exit %d %s", code, errOut)
	}
	reruns := e.sim.Calls().ByEndpoint["POST /v1/data-streams/api/{id}/rerun"]
	if code, out, errOut = e.run("rerun", "--job", fmt.Sprint(fresh), "--yes"); code != ExitOK {
		t.Fatalf("rerun --job --yes: exit %d\n%s%s", code, out, errOut)
	}
	if n := e.sim.Calls().ByEndpoint["GET /v1/data-stream-stat/{statId}"]; n != 1 {
		t.Errorf("%d lookups of the job, want 1", n)
	}
	if n := e.sim.Calls().ByEndpoint["POST /v1/data-streams/api/{id}/rerun"] - reruns; n != 1 {
		t.Errorf("%d reruns sent, want 1", n)
	}
	if got := e.query(fmt.Sprintf("select stream_id from jobs where id = %d", fresh), "stream_id"); !slices.Equal(got, []string{fmt.Sprint(sid)}) {
		t.Errorf("the looked-up job in the store: stream %v, want %d", got, sid)
	}
	pending := e.query(fmt.Sprintf("select count(*) as n from jobs where stream_id = %d and status = 'PENDING' and id > %d", sid, fresh), "n")
	if !slices.Equal(pending, []string{"1"}) {
		t.Errorf("the rerun's new job is not in the store as PENDING: %v", pending)
	}
}

// Issue 14 point 8: every command's --help, cobra's own included, shows an example of
// drextract at work, as the user types it.
func TestEveryCommandHasAnExample(t *testing.T) {
	var walk func(path []string, c *cobra.Command)
	seen := 0
	walk = func(path []string, c *cobra.Command) {
		if c.Hidden {
			return
		}
		seen++
		var out, errOut bytes.Buffer
		code := DoContext(context.Background(), append(slices.Clone(path), "--help"), strings.NewReader(""), &out, &errOut)
		_, examples, _ := strings.Cut(out.String(), "\nExamples:\n")
		examples, _, _ = strings.Cut(examples, "\n\n")
		if code != ExitOK || !strings.Contains(examples, "drextract ") {
			t.Errorf("drextract %s --help (exit %d) shows no example:\n%s%s", strings.Join(path, " "), code, out.String(), errOut.String())
		}
		for _, sub := range c.Commands() {
			walk(append(slices.Clone(path), sub.Name()), sub)
		}
	}
	walk(nil, newRootCommand(&globalOptions{}))
	if seen < 30 {
		t.Errorf("walked %d commands; the tree has more", seen)
	}
}

// Issue 14 point 8, for the action commands: every --help shows an example, and the flag
// help of --dry-run reads as a sentence.
func TestActionCommandsHaveExamples(t *testing.T) {
	e := newActEnv(t, sim.Options{Workspaces: 1, Streams: 1})
	for _, name := range []string{"act", "rerun", "process", "rename", "patch", "enable", "disable", "download", "create", "delete"} {
		code, out, _ := e.run(name, "--help")
		if code != ExitOK || !strings.Contains(out, "Examples:\n  drextract "+name+" ") {
			t.Errorf("%s --help shows no example:\n%s", name, out)
		}
	}
	_, out, _ := e.run("extract", "--help")
	if !regexp.MustCompile(`--dry-run +print what the run would cost, as drextract plan does`).MatchString(out) {
		t.Errorf("extract --help, --dry-run:\n%s", out)
	}
}
