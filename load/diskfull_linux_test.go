package load

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func init() {
	platformRoles["disk-full"] = diskFullChild // mount a small file system on dir arg and fill it
}

// smallFS is the size of the file system TestDiskFullOnASmallFileSystem fills, as in
// issue 12's reproduction.
const smallFS = "size=12m"

// roomyFS is its size once space frees.
const roomyFS = "size=64m"

// Issue 12, point 6, on a real full file system: a child process mounts a 12 MB tmpfs
// over a test folder, in mount and user namespaces of its own (no privileges needed
// where unprivileged user namespaces are allowed; root may mount in a mount namespace),
// crawls into it until publishing runs out of space, and reports what it sees. Where
// the machine allows neither, the test is skipped; TestPublishDiskFull and
// TestWriteDiskFull cover the same errors everywhere with /dev/full.
func TestDiskFullOnASmallFileSystem(t *testing.T) {
	dir := t.TempDir()
	out, err := startInNamespaces(t, "disk-full", dir)
	if err != nil {
		t.Skipf("cannot start a child in new namespaces here: %v", err)
	}
	var lines []string
	for {
		line, err := out.ReadString('\n')
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
		if err != nil {
			break
		}
	}
	report := strings.Join(lines, "\n")
	if strings.HasPrefix(report, "skip") {
		t.Skip(report)
	}
	t.Logf("child report:\n%s", report)
	for _, want := range []string{
		"publish: disk full",           // the first line of the failed publish says so
		"leftovers after failure: []",  // and its partial files are gone at once
		"reopened: jobs=",              // the store opens after the failure
		"after space freed: published", // and the next run works
		"serving verified",             // the new copy is whole
		"live verified",                // and so is the store
	} {
		if !strings.Contains(report, want) {
			t.Errorf("child report lacks %q", want)
		}
	}
	if strings.Contains(report, "FAIL") {
		t.Error("the child reported a failure")
	}
}

func jobsIn(s *Store) int {
	var n int
	_ = s.db.QueryRow("SELECT count(*) FROM jobs").Scan(&n)
	return n
}

// startInNamespaces starts the test binary in role in new user and mount namespaces (or,
// as root where user namespaces are refused, a new mount namespace only).
func startInNamespaces(t *testing.T, role, arg string) (*bufio.Reader, error) {
	attempts := []*syscall.SysProcAttr{{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}}
	if os.Geteuid() == 0 {
		attempts = append(attempts, &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS})
	}
	var errs []error
	for _, attr := range attempts {
		cmd := exec.Command(os.Args[0], "-test.run=^$", arg)
		cmd.Env = append(os.Environ(), childEnv+"="+role)
		cmd.SysProcAttr = attr
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			errs = append(errs, err)
			continue
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return bufio.NewReader(out), nil
	}
	return nil, errors.Join(errs...)
}

// diskFullChild runs in its own mount namespace: it mounts a small tmpfs on dir and
// prints what happens to a crawl, a publish and the next run there.
func diskFullChild(dir string) int {
	if err := syscall.Mount("none", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		fmt.Println("skip: making mounts private:", err)
		return 0
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, smallFS); err != nil {
		fmt.Println("skip: mounting a tmpfs:", err)
		return 0
	}
	defer syscall.Unmount(dir, syscall.MNT_DETACH)
	fail := func(what string, err error) int {
		fmt.Printf("FAIL %s: %v\n", what, err)
		return 1
	}
	ctx := context.Background()
	s, err := Open(ctx, liveIn(dir), Options{Logger: quietLogger()})
	if err != nil {
		return fail("open", err)
	}
	// A crawl that commits: a few MB of jobs.
	run, err := s.StartRun(ctx, RunStart{Schedule: "t", Kind: "extract"})
	if err != nil {
		return fail("start run", err)
	}
	const pages = 15
	for p := 0; p < pages; p++ {
		if err := s.Write(ctx, run, killBatch(p)); err != nil {
			return fail("crawl", err)
		}
	}
	if err := s.FinishRun(ctx, run, RunEnd{Status: RunOK}); err != nil {
		return fail("finish run", err)
	}
	jobs := jobsIn(s)
	// Leave less room than a serving copy needs.
	filler := filepath.Join(dir, "filler")
	free, _ := diskSpace(dir)
	live, _ := os.Stat(liveIn(dir))
	fmt.Printf("store %d bytes, %d free\n", live.Size(), free)
	if err := os.WriteFile(filler, make([]byte, int64(free)-live.Size()/2), 0o600); err != nil {
		return fail("filling the disk", err)
	}
	err = s.Publish(ctx, servingIn(dir))
	first, _, _ := strings.Cut(fmt.Sprint(err), "\n")
	fmt.Println("first line:", first)
	fmt.Println("leftovers after failure:", leftovers(servingIn(dir)))
	if err == nil || !errors.As(err, new(*DiskFullError)) {
		return fail("publish on a full disk", err)
	}
	// The next write may fail for want of space too; either way nothing is lost.
	if err := s.Write(ctx, run, killBatch(pages)); err != nil {
		fmt.Println("write on the full disk:", firstLine(s.Classify(err).Error()))
	} else {
		jobs = jobsIn(s)
	}
	if err := s.Close(); err != nil {
		fmt.Println("close on the full disk:", firstLine(err.Error()))
	}
	s, err = Open(ctx, liveIn(dir), Options{Logger: quietLogger()})
	if err != nil {
		fmt.Println("reopen on the full disk:", firstLine(err.Error()))
	} else {
		fmt.Printf("reopened: jobs=%d (want %d)\n", jobsIn(s), jobs)
		if n := jobsIn(s); n != jobs {
			return fail("jobs after reopening", fmt.Errorf("%d, want %d", n, jobs))
		}
		_ = s.Close()
	}
	// Space frees: the filler goes and the file system grows, as an operator would make
	// room, so that a serving copy (which may briefly take twice its size, its WAL then
	// its file, next to the store) surely fits.
	if err := os.Remove(filler); err != nil {
		return fail("freeing space", err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT, roomyFS); err != nil {
		return fail("growing the file system", err)
	}
	s, err = Open(ctx, liveIn(dir), Options{Logger: quietLogger()})
	if err != nil {
		return fail("open after space freed", err)
	}
	free, _ = diskSpace(dir)
	fmt.Printf("space freed: %d free\n", free)
	run, err = s.StartRun(ctx, RunStart{Schedule: "t", Kind: "extract"})
	if err == nil {
		err = s.Write(ctx, run, killBatch(pages+1))
	}
	if err == nil {
		err = s.FinishRun(ctx, run, RunEnd{Status: RunOK})
	}
	if err == nil {
		err = s.Publish(ctx, servingIn(dir))
	}
	if err != nil {
		return fail("the run after space freed", err)
	}
	fmt.Println("after space freed: published")
	if err := s.Close(); err != nil {
		return fail("close", err)
	}
	for _, f := range []string{servingIn(dir), liveIn(dir)} {
		if _, err := verifyFile(f); err != nil {
			return fail("verifying "+f, err)
		}
	}
	fmt.Println("serving verified\nlive verified")
	return 0
}
