package load

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nobody is the unprivileged user the BI-tool child runs as when the tests run as root,
// which ignores file modes.
const nobody = 65534

// startChildAs is startChild for a child that may run as another user: as root, the
// test binary is copied where that user can run it, and the child gets its credentials.
func startChildAs(t *testing.T, uid int, role, arg string) *bufio.Reader {
	t.Helper()
	bin := os.Args[0]
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "drextract-child-")
		must(t, err)
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		must(t, os.Chmod(dir, 0o755))
		bin = filepath.Join(dir, "load.test")
		must(t, copyFile(os.Args[0], bin, 0o755))
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}
	}
	cmd := exec.Command(bin, "-test.run=^$", arg)
	cmd.Env = append(os.Environ(), childEnv+"="+role, "HOME="+os.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	must(t, err)
	stdin, err := cmd.StdinPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return bufio.NewReader(out)
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(to, mode) // the umask may have narrowed it

}

// Issue 12, point 8: a client that opens serving.duckdb in DuckDB's default read-write
// mode used to take DuckDB's exclusive lock and lock every other reader out until the
// next publish. The published file is read-only on disk, so that client is refused
// (DuckDB does not fall back to read-only), and readers in other processes keep working.
// The client runs as the file's owner; under root, which ignores file modes, the test
// hands the file to an unprivileged user and runs the client as that user.
func TestDefaultModeOpenOfServingCopyLocksNobodyOut(t *testing.T) {
	dir := t.TempDir()
	s := openIn(t, dir)
	fill(t, s, 1, 500)
	ctx := context.Background()
	must(t, s.Publish(ctx, servingIn(dir)))
	uid := os.Geteuid()
	if uid == 0 {
		// The child must reach the file: the test's temporary folders are 0700.
		for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
			must(t, os.Chmod(d, 0o755))
		}
		must(t, os.Chown(servingIn(dir), nobody, nobody))
		uid = nobody
	}

	bi := startChildAs(t, uid, "open-default", servingIn(dir))
	line := readLine(t, bi)
	if line == "opened" {
		t.Fatal("a default-mode open of serving.duckdb by its owner succeeded: it holds DuckDB's write lock")
	}
	if !strings.HasPrefix(line, "refused") || !strings.Contains(line, "Permission denied") {
		t.Errorf("the default-mode opener said %q, want a refusal for lack of write permission", line)
	}

	// While that client is still running, another process reads the copy.
	_, out := startChild(t, "hold-readonly", servingIn(dir))
	if line := readLine(t, out); line != "ready 500" {
		t.Errorf("a reader next to the default-mode client said %q, want ready 500", line)
	}
}
