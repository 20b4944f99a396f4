package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/drextract/drextract/load"
)

// Helper processes for the query and export tests: the test binary re-executed with
// queryHelperEnv set runs TestQueryHelperProcess as one of these roles, so that DuckDB
// read-only handles and the writer lock are held by a real second process.
const (
	queryHelperEnv    = "DREXTRACT_QUERY_HELPER"
	queryHelperDirEnv = "DREXTRACT_QUERY_HELPER_DIR"
)

var qxT0 = time.Date(2025, 3, 10, 8, 0, 0, 0, time.UTC)

func TestQueryHelperProcess(t *testing.T) {
	role := os.Getenv(queryHelperEnv)
	if role == "" {
		t.Skip("only runs as a helper process")
	}
	dir := os.Getenv(queryHelperDirEnv)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { // the parent ends the helper by closing stdin
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	code := 0
	switch role {
	case "hold-serving":
		st, err := load.OpenReadOnly(ctx, filepath.Join(dir, load.ServingFile))
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
		<-ctx.Done()
		_ = st.Close()
	case "writer": // a crawl: the lock, the live file open read-write, pages written
		unlock, err := load.LockDir(dir)
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		st, err := load.Open(ctx, filepath.Join(dir, load.LiveFile), load.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println("ready")
		for i := int64(0); ctx.Err() == nil; i++ {
			if err := st.Write(ctx, 0, qxJobs(500, 1_000_000+i*10, 10, "PENDING")); err != nil && ctx.Err() == nil {
				fmt.Println("error:", err)
				code = 1
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		_ = st.Close()
		_ = unlock()
	}
	os.Exit(code)
}

// qxHelper starts a helper process in role on data dir dir and waits until it is ready.
// It returns the helper's pid; the helper ends when the test does.
func qxHelper(t *testing.T, role, dir string) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestQueryHelperProcess$")
	cmd.Env = append(os.Environ(), queryHelperEnv+"="+role, queryHelperDirEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	select {
	case l := <-line:
		if l != "ready" {
			t.Fatalf("helper %s said %q", role, l)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("helper %s did not start", role)
	}
	return cmd.Process.Pid
}

// qxJobs is a page of n jobs of one stream; every third is FAILURE unless status is set.
func qxJobs(stream, first int64, n int, status string) load.Batch {
	b := load.Batch{Entity: load.Jobs, ParentID: stream, ObservedAt: qxT0}
	for i := 0; i < n; i++ {
		id := first + int64(i)
		st := status
		if st == "" {
			st = "SUCCESS"
			if i%3 == 0 {
				st = "FAILURE"
			}
		}
		day := qxT0.AddDate(0, 0, -i)
		raw, _ := json.Marshal(map[string]any{"id": id, "status": st, "dataStartDate": day.Format(time.DateOnly)})
		b.Jobs = append(b.Jobs, load.JobRow{ID: id, StreamID: stream, WorkspaceID: 1, Status: st,
			DataStartDate: day, StartExecutionTime: day.Add(90 * time.Minute), Raw: raw})
	}
	return b
}

// qxStore makes a data directory with a live store holding 9 jobs (3 FAILURE, 6 SUCCESS)
// of stream 10, and, if publish is set, its serving copy.
func qxStore(t *testing.T, publish bool) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	ctx := context.Background()
	st, err := load.Open(ctx, filepath.Join(dir, load.LiveFile),
		load.Options{Clock: clock.NewManual(qxT0), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Write(ctx, 1, qxJobs(10, 1, 9, "")); err != nil {
		t.Fatal(err)
	}
	if publish {
		if err := st.Publish(ctx, filepath.Join(dir, load.ServingFile)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func qxRun(dir string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	args = append([]string{"--data-dir", dir}, args...)
	code = DoContext(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestQueryFormats(t *testing.T) {
	dir := qxStore(t, true)
	const q = "select status, count(*) as n, min(data_start_date) as first_day, min(start_execution_time) as first_start from jobs group by 1 order by 1"
	tests := []struct {
		format, want string
	}{
		{"table", "" +
			"status   n  first_day   first_start\n" +
			"-------  -  ----------  --------------------\n" +
			"FAILURE  3  2025-03-04  2025-03-04T09:30:00Z\n" +
			"SUCCESS  6  2025-03-02  2025-03-02T09:30:00Z\n" +
			"(2 rows)\n"},
		{"csv", "status,n,first_day,first_start\n" +
			"FAILURE,3,2025-03-04,2025-03-04T09:30:00Z\n" +
			"SUCCESS,6,2025-03-02,2025-03-02T09:30:00Z\n"},
		{"json", "[\n" +
			`  {"status": "FAILURE", "n": 3, "first_day": "2025-03-04", "first_start": "2025-03-04T09:30:00Z"},` + "\n" +
			`  {"status": "SUCCESS", "n": 6, "first_day": "2025-03-02", "first_start": "2025-03-02T09:30:00Z"}` + "\n]\n"},
	}
	for _, tc := range tests {
		t.Run(tc.format, func(t *testing.T) {
			code, out, errOut := qxRun(dir, "query", "--format", tc.format, q)
			if code != ExitOK || out != tc.want {
				t.Errorf("exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, errOut, out, tc.want)
			}
		})
	}
	t.Run("json is valid and keeps raw records", func(t *testing.T) {
		code, out, errOut := qxRun(dir, "query", "--format", "json", "select id, raw, null as nothing from jobs where id = 2")
		var got []map[string]any
		if code != ExitOK || json.Unmarshal([]byte(out), &got) != nil || len(got) != 1 {
			t.Fatalf("exit %d, stderr %q, stdout %q", code, errOut, out)
		}
		raw, _ := got[0]["raw"].(map[string]any)
		if got[0]["id"] != float64(2) || raw["status"] != "SUCCESS" || got[0]["nothing"] != nil {
			t.Errorf("row %v", got[0])
		}
	})
	t.Run("empty result", func(t *testing.T) {
		code, out, _ := qxRun(dir, "query", "--format", "json", "select id from jobs where false")
		if code != ExitOK || out != "[]\n" {
			t.Errorf("exit %d, stdout %q", code, out)
		}
	})
}

func TestQueryRefusals(t *testing.T) {
	dir := qxStore(t, false)
	tests := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"query", "DELETE FROM jobs"}, ExitUsage, "DELETE"},
		{[]string{"query", "SELECT 1; DROP TABLE jobs"}, ExitUsage, "more than one statement"},
		{[]string{"query", "ATTACH 'x.duckdb' AS x"}, ExitUsage, "ATTACH"},
		{[]string{"query", "--format", "xml", "SELECT 1"}, ExitUsage, "--format"},
		{[]string{"query"}, ExitUsage, "arg"},
		{[]string{"query", "SELECT * FROM no_such_table"}, ExitFailure, "no_such_table"},
		{[]string{"query", "select * from read_text('/etc/passwd')"}, ExitUsage, "query refused: it reaches outside the store's tables"},
		{[]string{"query", "SET enable_external_access = true"}, ExitUsage, "query refused: SET"},
		{[]string{"query", "--timeout", "0s", "SELECT 1"}, ExitUsage, "--timeout"},
		{[]string{"query", "--timeout", "200ms", "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r) SELECT count(*) FROM r WHERE i < 10"},
			ExitFailure, "Error: timed out after 200ms\n"},
	}
	for _, tc := range tests {
		code, _, errOut := qxRun(dir, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d mentioning %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
	for _, q := range []string{"DESCRIBE jobs", "SHOW TABLES", "SUMMARIZE jobs", "EXPLAIN SELECT * FROM jobs",
		"FROM jobs LIMIT 5", "PIVOT jobs ON status USING count(*)"} {
		if code, out, errOut := qxRun(dir, "query", q); code != ExitOK || !strings.Contains(out, "row") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", q, code, out, errOut)
		}
	}
	code, out, errOut := qxRun(dir, "query", "--format", "csv", "select count(*) as n from jobs")
	if code != ExitOK || out != "n\n9\n" {
		t.Errorf("jobs after the refusals: exit %d %q %q", code, out, errOut)
	}
	code, _, errOut = qxRun(filepath.Join(t.TempDir(), "empty"), "query", "select 1")
	if code != ExitFailure || !strings.Contains(errOut, "no store") {
		t.Errorf("query without a store: exit %d, %q", code, errOut)
	}
}

// TestQueryWhileOthersHoldTheStore is the acceptance case: the query works while another
// process holds serving.duckdb open read-only, and while a crawl writes the live store.
func TestQueryWhileOthersHoldTheStore(t *testing.T) {
	const q = "select status, count(*) from jobs group by 1 order by 1"
	want := "status,count_star()\nFAILURE,3\nSUCCESS,6\n"

	t.Run("serving copy held open by another process", func(t *testing.T) {
		dir := qxStore(t, true)
		qxHelper(t, "hold-serving", dir)
		code, out, errOut := qxRun(dir, "query", "--format", "csv", q)
		if code != ExitOK || out != want {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
	})
	t.Run("crawl running", func(t *testing.T) {
		dir := qxStore(t, true)
		qxHelper(t, "hold-serving", dir)
		qxHelper(t, "writer", dir)
		for i := 0; i < 3; i++ { // while the writer commits page after page
			code, out, errOut := qxRun(dir, "query", "--format", "csv", q)
			if code != ExitOK || out != want {
				t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
			}
		}
	})
	t.Run("no serving copy: live store when nobody writes", func(t *testing.T) {
		dir := qxStore(t, false)
		code, out, errOut := qxRun(dir, "query", "--format", "csv", q)
		if code != ExitOK || out != want {
			t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		// The lock was released: a writer can start afterwards.
		unlock, err := load.LockDir(dir)
		if err != nil {
			t.Fatalf("lock left held by the query: %v", err)
		}
		_ = unlock()
	})
	t.Run("no serving copy and a crawl running", func(t *testing.T) {
		dir := qxStore(t, false)
		pid := qxHelper(t, "writer", dir)
		code, _, errOut := qxRun(dir, "query", q)
		if code != ExitFailure || !strings.Contains(errOut, fmt.Sprint(pid)) || !strings.Contains(errOut, "export") {
			t.Errorf("exit %d, stderr %q; want a failure naming pid %d and suggesting export", code, errOut, pid)
		}
	})
}
