package load

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Child processes: the test binary re-executed with DREXTRACT_LOAD_CHILD set runs one
// of these roles instead of the tests, so that locks, read-only handles and kills are
// exercised across real processes.
const childEnv = "DREXTRACT_LOAD_CHILD"

func TestMain(m *testing.M) {
	if role := os.Getenv(childEnv); role != "" {
		os.Exit(runChild(role, os.Args[len(os.Args)-1]))
	}
	code := m.Run()
	for _, f := range afterTests {
		f()
	}
	os.Exit(code)
}

// afterTests are cleanups of resources shared by several tests (AfterTests).
var afterTests []func()

// startChild starts the test binary in role with arg and waits for its first output
// line ("ready" or the like), which it returns.
func startChild(t *testing.T, role, arg string) (*exec.Cmd, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", arg)
	cmd.Env = append(os.Environ(), childEnv+"="+role)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, bufio.NewReader(out)
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	done := make(chan string, 1)
	go func() {
		line, _ := r.ReadString('\n')
		done <- strings.TrimSpace(line)
	}()
	select {
	case line := <-done:
		return line
	case <-time.After(30 * time.Second):
		t.Fatal("child process did not answer")
		return ""
	}
}

// platformRoles are roles that exist only on some systems, registered by their files.
var platformRoles = map[string]func(arg string) int{}

func runChild(role, arg string) int {
	ctx := context.Background()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "child:", role, err)
		return 1
	}
	switch role {
	case "lock": // take the lock of data dir arg and hold it until stdin closes
		unlock, err := LockDir(arg)
		if err != nil {
			return fail(err)
		}
		fmt.Println("locked")
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = unlock()
		return 0
	case "hold-readonly": // open store file arg read-only, query it, hold it until stdin closes
		s, err := OpenReadOnly(ctx, arg)
		if err != nil {
			return fail(err)
		}
		res, err := Query(ctx, s.DB(), "SELECT count(*) FROM jobs")
		if err != nil {
			return fail(err)
		}
		fmt.Println("ready", res.Rows[0][0])
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	case "open-default": // open file arg in DuckDB's default (read-write) mode, as a BI tool does, and hold it until stdin closes
		db, err := openDB(arg)
		if err == nil {
			err = db.Ping()
		}
		if err != nil {
			fmt.Println("refused", firstLine(err.Error()))
		} else {
			fmt.Println("opened")
		}
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	case "write-loop": // write job pages with checkpoints into data dir arg until killed
		return writeLoop(ctx, arg, fail)
	case "append-calls": // for each line on stdin, append childBatch records to the journal of store file arg
		j := NewJournal(arg)
		in := bufio.NewScanner(os.Stdin)
		for n := 0; in.Scan(); {
			for range childBatch {
				c := APICall{Time: t0.Add(time.Duration(n) * time.Millisecond), Fingerprint: "tok_0a1b2c3d", Method: "GET",
					PathTemplate: "/v1/workspaces", Status: 200, Attempt: 1, PlatformRemaining: -1, QueryRemaining: -1,
					DailyRemaining: -1, AttemptID: fmt.Sprintf("%d-%d", os.Getpid(), n)}
				if err := j.Append(int64(os.Getpid()), c); err != nil {
					return fail(err)
				}
				n++
			}
			if err := j.Sync(); err != nil {
				return fail(err)
			}
			fmt.Println("appended")
		}
		return 0
	case "export-loop": // export and publish data dir arg until killed, saying every step
		s, err := Open(ctx, liveIn(arg), Options{Logger: quietLogger()})
		if err != nil {
			return fail(err)
		}
		s.exportStage = func(stage string) error {
			fmt.Println("stage", stage)
			return nil
		}
		fmt.Println("ready")
		for {
			if err := s.Publish(ctx, servingIn(arg)); err != nil {
				return fail(err)
			}
			fmt.Println("published")
			if _, err := s.Export(ctx, parquetIn(arg)); err != nil {
				return fail(err)
			}
			fmt.Println("exported")
		}
	}
	if f, ok := platformRoles[role]; ok {
		return f(arg)
	}
	return fail(fmt.Errorf("unknown role"))
}
