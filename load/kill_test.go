package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"testing"
	"time"
)

// The kill tests SIGKILL a child process while it writes batches, exports Parquet or
// publishes the serving copy, right after a step the child reports (chosen by a fixed
// seed), then check what it left. They wait for the child's words, never for a duration.

const killPage = 100 // jobs per page of the write loop

// writeLoop writes page after page, resuming after the last checkpoint, in groups of one
// to three pages per WriteBatches call, and says "committed P" once page P and all before
// it are stored. Page p holds 100 new PENDING jobs of stream p%5+1 and turns the jobs of
// page p-5 (same stream) SUCCESS, so every commit inserts, deletes and re-inserts rows and
// records status changes.
func writeLoop(ctx context.Context, dir string, fail func(error) int) int {
	s, err := Open(ctx, liveIn(dir), Options{Logger: quietLogger()})
	if err != nil {
		return fail(err)
	}
	next, err := lastKillPage(ctx, s)
	if err != nil {
		return fail(err)
	}
	run, err := s.StartRun(ctx, RunStart{Schedule: "kill", Kind: "extract"})
	if err != nil {
		return fail(err)
	}
	fmt.Println("ready")
	for p := next + 1; p < 1_000_000; {
		group := []Batch{killBatch(p)}
		for len(group) < 1+p%3 {
			group = append(group, killBatch(p+len(group)))
		}
		if err := s.WriteBatches(ctx, run, group); err != nil {
			return fail(err)
		}
		p += len(group)
		fmt.Println("committed", p-1)
	}
	return 0
}

func killBatch(p int) Batch {
	stream := int64(p%5 + 1)
	rows := jobPage(stream, 1, int64(p*killPage+1), killPage, "PENDING")
	if p >= 5 {
		rows = append(rows, jobPage(stream, 1, int64((p-5)*killPage+1), killPage, "SUCCESS")...)
	}
	state, _ := json.Marshal(map[string]int{"page": p})
	return Batch{Entity: Jobs, ParentID: stream, ObservedAt: t0.Add(time.Duration(p) * time.Second), Jobs: rows,
		Checkpoint: &Checkpoint{Kind: "killtest", ParentID: 0, State: state}}
}

// lastKillPage is the page of the stored checkpoint, -1 when there is none.
func lastKillPage(ctx context.Context, s *Store) (int, error) {
	cps, err := s.Checkpoints(ctx, "killtest")
	if err != nil {
		return 0, err
	}
	cp, ok := cps[0]
	if !ok {
		return -1, nil
	}
	var st struct{ Page int }
	err = json.Unmarshal(cp.State, &st)
	return st.Page, err
}

// killWhen starts a child in role, waits for its "ready" and then until done accepts one
// of its output lines, and kills it at once.
func killWhen(t *testing.T, role, dir string, done func(line string) bool) {
	t.Helper()
	cmd, out := startChild(t, role, dir)
	for _, until := range []func(string) bool{func(l string) bool { return l == "ready" }, done} {
		for line := readLine(t, out); !until(line); line = readLine(t, out) {
			if line == "" {
				t.Fatalf("child in role %s ended before it was to be killed", role)
			}
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

// TestKillDuringWrites kills a writer right after it reported a commit, so the kill lands
// while it stages, merges or commits the next group of pages (where exactly depends on
// the machine, but nothing asserted does).
func TestKillDuringWrites(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	last := -1
	for _, seed := range []int64{1, 2, 3} {
		// Every child resumes after the page before; the seed says how many pages it
		// reports committed before it is killed.
		target := last + 1 + rand.New(rand.NewSource(seed)).Intn(12)
		reported := -1
		killWhen(t, "write-loop", dir, func(line string) bool {
			_, _ = fmt.Sscanf(line, "committed %d", &reported)
			return reported >= target
		})

		// A reader may open the killed writer's file (and its WAL) before anyone repairs it.
		ro, err := OpenReadOnly(ctx, liveIn(dir))
		must(t, err)
		roJobs := count(t, ro.DB(), `SELECT count(*) FROM jobs`)
		must(t, ro.Close())

		s, err := Open(ctx, liveIn(dir), Options{Logger: quietLogger()})
		must(t, err)
		p, err := lastKillPage(ctx, s)
		must(t, err)
		if p < reported {
			t.Errorf("seed %d: the child reported page %d committed, the store's checkpoint is page %d", seed, reported, p)
		}
		last = p
		// Exactly the pages up to the checkpoint, each job once, in the state page p left.
		jobs := count(t, s.db, `SELECT count(*) FROM jobs`)
		distinct := count(t, s.db, `SELECT count(DISTINCT id) FROM jobs`)
		success := count(t, s.db, `SELECT count(*) FROM jobs WHERE status = 'SUCCESS'`)
		changes := count(t, s.db, `SELECT count(*) FROM job_status_changes`)
		wantJobs := (p + 1) * killPage
		wantSuccess := max(0, p-4) * killPage
		if roJobs != jobs {
			t.Errorf("seed %d: a reader of the killed store saw %d jobs, the reopened store %d", seed, roJobs, jobs)
		}
		// A job's first sight is not a status change: only PENDING → SUCCESS is.
		if jobs != wantJobs || distinct != jobs || success != wantSuccess || changes != wantSuccess {
			t.Errorf("seed %d, checkpoint page %d: %d jobs (%d distinct, want %d), %d SUCCESS (want %d), %d status changes (want %d)",
				seed, p, jobs, distinct, wantJobs, success, wantSuccess, changes, wantSuccess)
		}
		if n := count(t, s.db, `SELECT count(*) FROM runs WHERE status = 'running'`); n != 0 {
			t.Errorf("%d runs still 'running' after reopening", n)
		}
		must(t, s.Close())
	}
}

// exportLoopSteps is about how many steps one round of the export loop reports (a publish
// and an export of every table); it only spreads the kills.
const exportLoopSteps = 20

func TestKillDuringExportAndPublish(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s := openIn(t, dir)
	fill(t, s, 1, 3000)
	want := storeCounts(t, s.db)
	must(t, s.Close())

	exports, serving := 0, 0
	for i, seed := range []int64{1, 2, 3, 4} {
		// The child reports every step of Export and Publish ("stage NAME") and is killed
		// right after the seed's step, somewhere in its first two rounds. The first child
		// is killed only after one publish and one export have finished, so that every
		// kill has a previous complete version to preserve.
		steps := 1 + rand.New(rand.NewSource(seed)).Intn(2*exportLoopSteps)
		finished := i > 0
		killWhen(t, "export-loop", dir, func(line string) bool {
			finished = finished || line == "exported"
			if finished && strings.HasPrefix(line, "stage ") {
				steps--
			}
			return steps == 0
		})

		// Whatever the moment of the kill: the Parquet folder and the serving copy are
		// absent (nothing finished yet) or complete.
		if _, err := os.Lstat(parquetIn(dir)); err == nil {
			got, err := exportCounts(t, parquetIn(dir))
			if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("seed %d: export %v, %v; want %v", seed, got, err, want)
			}
			exports++
		}
		if _, err := os.Stat(servingIn(dir)); err == nil {
			r, err := OpenReadOnly(ctx, servingIn(dir))
			if err != nil {
				t.Errorf("seed %d: serving copy does not open: %v", seed, err)
			} else {
				if got := storeCounts(t, r.DB()); fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("seed %d: serving copy %v, want %v", seed, got, want)
				}
				must(t, r.Close())
				serving++
			}
		}
		// Opening the store clears what the killed export left behind.
		s, err := Open(ctx, liveIn(dir), Options{Logger: quietLogger()})
		must(t, err)
		must(t, s.Close())
		if entries, err := os.ReadDir(parquetIn(dir) + versionsSuffix); err == nil {
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), tmpSuffix) {
					t.Errorf("seed %d: %s left after reopening", seed, e.Name())
				}
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
	if exports != 4 || serving != 4 {
		t.Errorf("after %d of 4 kills an export was readable, after %d a serving copy; want all", exports, serving)
	}
}
