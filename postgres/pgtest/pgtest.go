// Package pgtest starts throwaway PostgreSQL clusters for tests: Debian's postgresql
// binaries, initdb into a fresh temporary folder, pg_ctl on a free loopback port, stopped
// and removed when the test ends; and it compares a published schema with the store
// (Diff). It is for tests only.
//
// PostgreSQL refuses to run as root, so as root the cluster runs as the unprivileged user
// nobody (no system user is created). When PostgreSQL is not installed the test fails
// with a message saying how to install it, unless the developer set DRX_SKIP_POSTGRES=1,
// which skips instead; CI never sets it.
package pgtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// SkipEnv is the environment variable a developer sets to 1 to skip, rather than fail,
// tests that need PostgreSQL on a machine without it.
const SkipEnv = "DRX_SKIP_POSTGRES"

// User is the superuser of every cluster; its password is random per cluster.
const User = "drx"

// Server is one running throwaway cluster, listening on 127.0.0.1 only, with password
// authentication (scram-sha-256) for every TCP connection.
type Server struct {
	Bin      string // the folder holding initdb, pg_ctl, psql
	Dir      string // the data folder
	Port     int
	Password string

	cred    *syscall.Credential // nil when not running as root
	stopped atomic.Bool
	dbs     atomic.Int64
}

// BinDir finds the PostgreSQL server binaries: the newest /usr/lib/postgresql/<ver>/bin
// (Debian's layout), else the folder of an initdb on PATH. It returns "" when there are
// none.
func BinDir() string {
	vers, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(vers, func(i, j int) bool { return version(vers[i]) > version(vers[j]) })
	for _, p := range vers {
		if isExec(filepath.Join(filepath.Dir(p), "pg_ctl")) {
			return filepath.Dir(p)
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil && isExec(filepath.Join(filepath.Dir(real), "pg_ctl")) {
			return filepath.Dir(real)
		}
	}
	return ""
}

func version(initdb string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return v
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// requireBin returns BinDir, failing (or skipping) t when PostgreSQL is not installed.
func requireBin(t testing.TB) string {
	t.Helper()
	bin := BinDir()
	if bin == "" {
		msg := "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run .ci/run, or apt-get install postgresql"
		if os.Getenv(SkipEnv) == "1" {
			t.Skip(msg + " (skipped: " + SkipEnv + "=1)")
		}
		t.Fatal(msg + "; or set " + SkipEnv + "=1 to skip these tests")
	}
	return bin
}

var shared struct {
	once sync.Once
	s    *Server
	err  error
}

// Shared returns a cluster the tests of a package share, started on first use; give each
// test its own Database. The package's TestMain stops it with StopShared after m.Run. A
// test that stops or restarts its server must Start its own.
func Shared(t testing.TB) *Server {
	t.Helper()
	bin := requireBin(t)
	shared.once.Do(func() { shared.s, shared.err = start(bin) })
	if shared.err != nil {
		t.Fatalf("starting the shared PostgreSQL cluster: %v", shared.err)
	}
	return shared.s
}

// StopShared stops and removes the shared cluster, if one was started.
func StopShared() {
	if s := shared.s; s != nil {
		_ = s.Stop()
		_ = os.RemoveAll(s.Dir)
	}
}

// Start initialises and starts a cluster and registers its stop and removal with
// t.Cleanup. It fails the test (or skips it, with DRX_SKIP_POSTGRES=1) when PostgreSQL is
// not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := requireBin(t)
	s, err := start(bin)
	if err != nil {
		t.Fatalf("starting a PostgreSQL cluster: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping the PostgreSQL cluster: %v", err)
		}
		_ = os.RemoveAll(s.Dir)
	})
	return s
}

func start(bin string) (*Server, error) {
	s := &Server{Bin: bin, Password: "pgtest-" + randomHex(12)}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL needs an unprivileged user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		s.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "drx-pgtest-")
	if err != nil {
		return nil, err
	}
	s.Dir = dir
	data := filepath.Join(dir, "data")
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(s.Password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if s.cred != nil {
		for _, p := range []string{dir, pwfile} {
			if err := os.Chown(p, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				return nil, err
			}
		}
	}
	if out, err := s.run(context.Background(), "initdb", "-D", data, "-U", User, "--pwfile", pwfile,
		"--auth-local", "trust", "--auth-host", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync"); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	_ = os.Remove(pwfile)
	// A port picked from a closed listener can be taken by someone else before the server
	// binds it: try a few.
	var lastErr error
	for range 5 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		s.Port = port
		out, err := s.pgCtlStart()
		if err == nil {
			if err := s.waitReady(); err != nil {
				_ = s.Stop()
				return nil, err
			}
			return s, nil
		}
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		lastErr = fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log)
		if !bytes.Contains(log, []byte("already in use")) {
			break
		}
	}
	return nil, lastErr
}

func (s *Server) pgCtlStart() ([]byte, error) {
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -c unix_socket_directories='' -c fsync=off -c full_page_writes=off -c synchronous_commit=off", s.Port)
	return s.run(context.Background(), "pg_ctl", "-D", filepath.Join(s.Dir, "data"), "-l", filepath.Join(s.Dir, "server.log"),
		"-o", opts, "-w", "-t", "120", "start")
}

// Restart starts a stopped cluster again on the same port, with its data.
func (s *Server) Restart() error {
	if !s.stopped.Load() {
		return errors.New("the cluster is running")
	}
	if out, err := s.pgCtlStart(); err != nil {
		return fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, s.Log())
	}
	s.stopped.Store(false)
	return s.waitReady()
}

// waitReady connects until the server answers, bounded by a deadline; pg_ctl -w has
// already waited for the postmaster, so this normally succeeds at once.
func (s *Server) waitReady() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("PostgreSQL on port %d did not accept connections: %w", s.Port, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.Bin, name), args...)
	cmd.Dir = s.Dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C", "LC_ALL=C", "HOME=" + s.Dir}
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	return cmd.CombinedOutput()
}

// Stop stops the cluster (immediately: it is thrown away). Calling it again does nothing.
func (s *Server) Stop() error {
	if !s.stopped.CompareAndSwap(false, true) {
		return nil
	}
	out, err := s.run(context.Background(), "pg_ctl", "-D", filepath.Join(s.Dir, "data"), "-m", "immediate", "-w", "-t", "120", "stop")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Stopped tells whether Stop was called.
func (s *Server) Stopped() bool { return s.stopped.Load() }

// DSN is a libpq URL for database db as the superuser, with the password.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s?sslmode=disable", User, s.Password, s.Port, db)
}

// KeyValueDSN is the key=value form of DSN.
func (s *Server) KeyValueDSN(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s sslmode=disable", s.Port, User, s.Password, db)
}

// Database creates a fresh database and returns its name.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("db%d", s.dbs.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatalf("connecting to the test cluster: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating database %s: %v", name, err)
	}
	return name
}

// Psql runs the cluster's psql against db with args and returns its standard output; the
// password travels in PGPASSWORD, never on the command line.
func (s *Server) Psql(ctx context.Context, db string, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.Bin, "psql"),
		append([]string{"-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-U", User, "-d", db}, args...)...)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+s.Password, "PGCONNECT_TIMEOUT=60")
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("psql: %w: %s", err, errb.String())
	}
	return out.String(), nil
}

// Log returns the server's log so far, for a failing test to show.
func (s *Server) Log() string {
	b, err := os.ReadFile(filepath.Join(s.Dir, "server.log"))
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("no TCP port")
	}
	return addr.Port, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
