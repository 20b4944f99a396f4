package load

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
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
)

// childBatch is how many records an "append-calls" child appends per line it reads.
const childBatch = 200

// call is an attempt record as the audit makes them, numbered i.
func call(i int) APICall {
	return APICall{Time: t0.Add(time.Duration(i) * time.Second), Fingerprint: "tok_0a1b2c3d", Method: "POST",
		PathTemplate: "/v1/data-streams/api/{id}/stats", Status: 200, Latency: 1500 * time.Microsecond, Attempt: 1,
		PlatformRemaining: 59 - i, QueryRemaining: -1, DailyRemaining: 19000 - i, PlatformReset: t0.Add(time.Minute),
		AttemptID: fmt.Sprintf("attempt-%d", i)}
}

// storedCalls is what api_calls holds: count, distinct attempt ids, distinct ids and the
// largest id.
func storedCalls(t *testing.T, s *Store) (rows, attempts, ids, maxID int) {
	t.Helper()
	must(t, s.db.QueryRow(`SELECT count(*), count(DISTINCT attempt_id), count(DISTINCT id), coalesce(max(id), 0) FROM api_calls`).
		Scan(&rows, &attempts, &ids, &maxID))
	return rows, attempts, ids, maxID
}

func TestJournalFoldStoresEachAttemptOnce(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	j := NewJournal(s.path)
	for i := range 5 {
		c := call(i)
		switch i {
		case 1: // an action's call, refused, without rate headers, with a fingerprint that is not one
			c.ActionRunID, c.ActionCallNo, c.Status, c.Error = 7, 2, 500, "HTTP 500"
			c.PlatformRemaining, c.DailyRemaining, c.PlatformReset = -1, -1, time.Time{}
			c.Fingerprint = "dato-api-secret"
		case 4: // no run
		}
		runID := int64(3)
		if i == 4 {
			runID = 0
		}
		must(t, j.Append(runID, c))
	}
	must(t, j.Sync())
	if raw, err := os.ReadFile(JournalPath(s.path)); err != nil || strings.Contains(string(raw), "dato-api-secret") {
		t.Fatalf("journal (%v) holds what might be a token:\n%s", err, raw)
	}

	st, err := s.FoldJournal(ctx)
	must(t, err)
	if st != (FoldStats{Stored: 5}) {
		t.Errorf("fold: %+v, want 5 stored", st)
	}
	rows, err := s.db.Query(`SELECT id, attempt_id, coalesce(run_id, 0), token_fingerprint, status, latency_ms,
		coalesce(platform_remaining, -1), coalesce(daily_remaining, -1), platform_reset IS NOT NULL, coalesce(error, ''),
		coalesce(action_run_id, 0), coalesce(action_call_no, 0) FROM api_calls ORDER BY id`)
	must(t, err)
	defer rows.Close()
	var got []string
	for rows.Next() {
		var id, run, actRun, actCall, status, pr, dr int
		var attempt, fp, errText string
		var lat float64
		var reset bool
		must(t, rows.Scan(&id, &attempt, &run, &fp, &status, &lat, &pr, &dr, &reset, &errText, &actRun, &actCall))
		got = append(got, fmt.Sprintf("%d %s run=%d %s %d %.1fms %d/%d reset=%v %q action=%d/%d",
			id, attempt, run, fp, status, lat, pr, dr, reset, errText, actRun, actCall))
	}
	want := []string{
		`1 attempt-0 run=3 tok_0a1b2c3d 200 1.5ms 59/19000 reset=true "" action=0/0`,
		`2 attempt-1 run=3 tok_invalid 500 1.5ms -1/-1 reset=false "HTTP 500" action=7/2`,
		`3 attempt-2 run=3 tok_0a1b2c3d 200 1.5ms 57/18998 reset=true "" action=0/0`,
		`4 attempt-3 run=3 tok_0a1b2c3d 200 1.5ms 56/18997 reset=true "" action=0/0`,
		`5 attempt-4 run=0 tok_0a1b2c3d 200 1.5ms 55/18996 reset=true "" action=0/0`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("api_calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if fi, err := os.Stat(JournalPath(s.path)); err != nil || fi.Size() != 0 {
		t.Errorf("journal after the fold: %v, %v; want it empty", fi, err)
	}
	if _, err := os.Stat(JournalPath(s.path) + ".folding"); !os.IsNotExist(err) {
		t.Errorf("folding file left behind: %v", err)
	}

	// Folding again adds nothing; later records are numbered on.
	st, err = s.FoldJournal(ctx)
	must(t, err)
	if st != (FoldStats{}) {
		t.Errorf("second fold: %+v, want nothing", st)
	}
	must(t, j.Append(3, call(5)))
	_, err = s.FoldJournal(ctx)
	must(t, err)
	if n, a, ids, maxID := storedCalls(t, s); n != 6 || a != 6 || ids != 6 || maxID != 6 {
		t.Errorf("api_calls: %d rows, %d attempts, %d ids up to %d; want 6 of each", n, a, ids, maxID)
	}
}

// An error text that escaping makes long is cut so that the record stays one write
// under PIPE_BUF.
func TestJournalRecordFitsOneWrite(t *testing.T) {
	c := call(1)
	c.Error = strings.Repeat("\x01", 5000)
	line, err := encodeRecord(1, c)
	must(t, err)
	recs, skipped := parseJournal(line)
	if len(line) > maxJournalLine || len(recs) != 1 || skipped != 0 || !strings.HasPrefix(recs[0].Error, "\x01\x01") {
		t.Errorf("record of %d bytes, %d read, %d skipped", len(line), len(recs), skipped)
	}
}

// A kill between the fold's commit and the removal of its folding file leaves records
// that are stored already; a kill while appending leaves a torn record. Neither
// duplicates nor fails anything.
func TestJournalFoldAfterInterruptions(t *testing.T) {
	var logs bytes.Buffer
	path := filepath.Join(t.TempDir(), LiveFile)
	s, err := Open(context.Background(), path, Options{Clock: clock.NewManual(t0),
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	must(t, err)
	defer s.Close()
	ctx := context.Background()
	j := NewJournal(path)
	for i := range 4 {
		must(t, j.Append(1, call(i)))
	}
	folded, err := os.ReadFile(JournalPath(path))
	must(t, err)
	_, err = s.FoldJournal(ctx)
	must(t, err)

	// The state a kill after the commit leaves: the folding file still there.
	must(t, os.WriteFile(JournalPath(path)+".folding", folded, 0o600))
	// A record cut short by a kill, then a record of the next process.
	line, err := encodeRecord(1, call(4))
	must(t, err)
	f, err := os.OpenFile(JournalPath(path), os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.Write(line[:len(line)/2])
	must(t, err)
	must(t, f.Close())
	must(t, j.Append(1, call(5)))

	st, err := s.FoldJournal(ctx)
	must(t, err)
	if want := (FoldStats{Stored: 1, Already: 4, Skipped: 1}); st != want {
		t.Errorf("fold: %+v, want %+v", st, want)
	}
	if n, a, ids, maxID := storedCalls(t, s); n != 5 || a != 5 || ids != 5 || maxID != 5 {
		t.Errorf("api_calls: %d rows, %d attempts, %d ids up to %d; want 5 of each", n, a, ids, maxID)
	}
	if !strings.Contains(logs.String(), "could not be read") {
		t.Errorf("no warning about the torn record; logs:\n%s", logs.String())
	}
}

// Several processes append while the store's process folds: every record lands once.
func TestJournalAppendsFromProcessesWhileFolding(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	const children, rounds = 3, 5
	type child struct {
		in  io.WriteCloser
		out *bufio.Reader
	}
	var kids []child
	for range children {
		cmd := exec.Command(os.Args[0], "-test.run=^$", s.path)
		cmd.Env = append(os.Environ(), childEnv+"=append-calls")
		cmd.Stderr = os.Stderr
		in, err := cmd.StdinPipe()
		must(t, err)
		out, err := cmd.StdoutPipe()
		must(t, err)
		must(t, cmd.Start())
		t.Cleanup(func() { _ = in.Close(); _ = cmd.Wait() })
		kids = append(kids, child{in, bufio.NewReader(out)})
	}
	// Each round, every child appends a batch while the parent folds.
	for range rounds {
		for _, k := range kids {
			_, err := io.WriteString(k.in, "go\n")
			must(t, err)
		}
		_, err := s.FoldJournal(ctx)
		must(t, err)
		for _, k := range kids {
			if got := readLine(t, k.out); got != "appended" {
				t.Fatalf("child: %q", got)
			}
		}
	}
	_, err := s.FoldJournal(ctx)
	must(t, err)
	want := children * rounds * childBatch
	if n, a, ids, maxID := storedCalls(t, s); n != want || a != want || ids != want || maxID != want {
		t.Errorf("api_calls: %d rows, %d attempts, %d ids up to %d; want %d of each", n, a, ids, maxID, want)
	}
	var runs int
	must(t, s.db.QueryRow(`SELECT count(DISTINCT run_id) FROM api_calls`).Scan(&runs))
	if runs != children {
		t.Errorf("records of %d processes, want %d", runs, children)
	}
}

// The store's open folds what a killed run left in the journal and fills in its calls;
// rows stored before api_calls had ids are numbered first.
func TestOpenFoldsTheJournalOfAbandonedRuns(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), LiveFile)
	open := func() *Store {
		s, err := Open(ctx, path, Options{Clock: clock.NewManual(t0), Logger: quietLogger()})
		must(t, err)
		return s
	}
	s := open()
	for i := range 2 { // rows as an older drextract wrote them
		_, err := s.db.Exec(`INSERT INTO api_calls (time, method, status) VALUES ($1, 'GET', 200)`, t0.Add(time.Duration(i)*time.Second))
		must(t, err)
	}
	id, err := s.StartRun(ctx, RunStart{Schedule: "cli", Kind: "extract"})
	must(t, err)
	j := NewJournal(path)
	for i := range 3 {
		must(t, j.Append(id, call(10+i)))
	}
	must(t, s.Close()) // the run never finished: as after a kill

	s = open()
	defer s.Close()
	var status string
	var calls sql.NullInt64
	must(t, s.db.QueryRow(`SELECT status, calls FROM runs WHERE id = $1`, id).Scan(&status, &calls))
	if status != RunFailed || !calls.Valid || calls.Int64 != 3 {
		t.Errorf("abandoned run: status %s, calls %v; want failed with 3 calls", status, calls)
	}
	var older, newer string
	must(t, s.db.QueryRow(`SELECT string_agg(id::VARCHAR, ',' ORDER BY id) FILTER (WHERE attempt_id IS NULL),
		string_agg(id::VARCHAR, ',' ORDER BY id) FILTER (WHERE attempt_id IS NOT NULL) FROM api_calls`).Scan(&older, &newer))
	if older != "1,2" || newer != "3,4,5" {
		t.Errorf("ids: older rows %s, folded rows %s; want 1,2 and 3,4,5", older, newer)
	}
}

// BenchmarkJournal measures one attempt's record: appended ("append": what every call
// costs), and appended and synced ("append+sync": what a call costs when each record is
// made durable at once, as actions, reports and probes do; a crawl pays the sync once
// per page instead).
func BenchmarkJournal(b *testing.B) {
	for _, sync := range []bool{false, true} {
		name := "append"
		if sync {
			name = "append+sync"
		}
		b.Run(name, func(b *testing.B) {
			j := NewJournal(filepath.Join(b.TempDir(), LiveFile))
			c := call(1)
			for i := range b.N {
				c.AttemptID = fmt.Sprint(i)
				if err := j.Append(1, c); err != nil {
					b.Fatal(err)
				}
				if sync {
					if err := j.Sync(); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
