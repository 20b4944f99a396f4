package ratelimit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofrs/flock"
)

// lockTimeout bounds how long one read-modify-write waits for the file lock. Holders
// keep it for well under a millisecond; a lock held longer belongs to a stuck process,
// and failing loudly beats waiting forever.
const lockTimeout = 10 * time.Second

// errCorrupt marks a state file that is not ours to read; it is replaced, not obeyed.
var errCorrupt = errors.New("state file is corrupt")

// stateFile is the state of one token shared by every process on the machine: a JSON
// file next to a lock file. Every change is a read-modify-write under the lock, and
// the file is replaced by rename, so a reader never sees half a write.
type stateFile struct {
	dir  string
	path string
	lock *flock.Flock
}

func newStateFile(dir, fp string) *stateFile {
	return &stateFile{
		dir:  dir,
		path: filepath.Join(dir, fp+".json"),
		lock: flock.New(filepath.Join(dir, fp+".lock"), flock.SetPermissions(0o600)),
	}
}

// locked runs fn holding the file lock.
func (f *stateFile) locked(ctx context.Context, fn func() error) error {
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return fmt.Errorf("creating the rate-limit state directory: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, lockTimeout)
	defer cancel()
	ok, err := f.lock.TryLockContext(ctx, 100*time.Microsecond)
	if err != nil || !ok {
		return fmt.Errorf("locking %s: %w", f.lock.Path(), errors.Join(err, ctx.Err()))
	}
	defer f.lock.Unlock() //nolint:errcheck // closing the descriptor releases the lock anyway
	return fn()
}

// load reads the state; (nil, nil) when there is none yet, errCorrupt when the file
// is not a state of fingerprint fp.
func (f *stateFile) load(fp string) (*state, error) {
	return readState(f.path, fp)
}

func readState(path, fp string) (*state, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var s state
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", path, errCorrupt, err)
	}
	if s.Version != stateVersion || s.Fingerprint != fp {
		return nil, fmt.Errorf("%s: %w: version %d, fingerprint %q", path, errCorrupt, s.Version, s.Fingerprint)
	}
	return &s, nil
}

// save replaces the state file with s.
func (f *stateFile) save(s *state) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the rate-limit state: %w", err)
	}
	return writeFileAtomic(f.dir, f.path, append(b, '\n'))
}

// notifier wakes every waiter when a budget's state may have changed in this process.
// Waiters take the channel before they look at the state, so no change is missed.
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func (n *notifier) changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

func (n *notifier) broadcast() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}

// dirNotifiers gives every budget of this process that uses one state directory the same
// notifier, so their waiters wake at once when one of them finishes a call; only other
// processes' changes need polling.
var dirNotifiers sync.Map // cleaned absolute dir → *notifier

func notifierFor(dir string) *notifier {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	n, _ := dirNotifiers.LoadOrStore(filepath.Clean(dir), &notifier{})
	return n.(*notifier)
}
