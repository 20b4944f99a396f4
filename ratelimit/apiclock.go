package ratelimit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/drextract/drextract/clock"
)

// The API's clock, as the processes sharing a state directory last estimated it.
//
// Resets, the daily reset and the windows are the API's times, so a Budget whose
// Config.Clock is a *clock.Remote compares them with the API's clock. A new process has
// seen no answer yet, and the shared state may say the day's quota is gone until a reset
// that, on the host's clock, is hours away although on the API's it has passed (a host
// clock that is off; a simulator advanced a day). Two things keep that from stopping
// every later run until the host's midnight:
//
//   - The last estimate is saved next to the token states (apiClockFile, any process
//     with an observed estimate writes it) and restored when a Budget, a Pool or
//     ReadStatus is made, so commands that make no call at all (status, select) read
//     the API's time too.
//   - A saved estimate can only be as new as the last answer, and the API's clock may
//     have jumped since. So while this process has not itself observed the API's clock,
//     a daily-quota refusal lets one call through (see Budget.attempt): its answer's
//     Date header fixes the clock and its rate headers fix the day. If the quota really
//     is gone, that call gets a 429 and the run stops as before, one call later.
//
// Persisting alone cannot lift the stop: the process that saw the quota run out saved
// the clock as it was before the simulator advanced. Probing alone would cost a call in
// every process, and would leave commands that make no call on the host's clock.

// apiClockFile is the estimate's file in a state directory.
const apiClockFile = "api-clock.json"

const apiClockVersion = 1

type savedClock struct {
	Version int        `json:"version"`
	Skew    clock.Skew `json:"skew"`
	// Offset is Skew.Offset() in words, for people reading the file.
	Offset string `json:"offset"`
}

// RestoreAPIClock sets api to the estimate of the API's clock last saved under
// stateDir (see Config.StateDir), unless api has already observed the API itself. No
// saved estimate is not an error; an unreadable one is reported and ignored.
func RestoreAPIClock(stateDir string, api *clock.Remote) error {
	if stateDir == "" || api == nil {
		return nil
	}
	path := filepath.Join(stateDir, apiClockFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the API clock estimate: %w", err)
	}
	var sc savedClock
	if err := json.Unmarshal(b, &sc); err != nil {
		return fmt.Errorf("%s: %w: %v", path, errCorrupt, err)
	}
	if sc.Version != apiClockVersion || sc.Skew.Min > sc.Skew.Max || sc.Skew.At.IsZero() {
		return fmt.Errorf("%s: %w: version %d, skew %+v", path, errCorrupt, sc.Version, sc.Skew)
	}
	api.Restore(sc.Skew)
	return nil
}

// clockSaver writes one state directory's estimate, at most when it changed by a
// millisecond or a minute passed; one per directory in a process (saverFor).
type clockSaver struct {
	dir string

	mu    sync.Mutex
	last  clock.Skew
	saved bool
}

var clockSavers sync.Map // cleaned absolute dir → *clockSaver

func saverFor(dir string) *clockSaver {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	dir = filepath.Clean(dir)
	s, _ := clockSavers.LoadOrStore(dir, &clockSaver{dir: dir})
	return s.(*clockSaver)
}

// save writes api's estimate if this process observed it and it is worth writing. The
// file is replaced by rename, so readers never see half of it; between processes the
// last writer wins, which is what an estimate wants.
func (c *clockSaver) save(api *clock.Remote) error {
	if !api.Observed() {
		return nil
	}
	s, ok := api.Skew()
	if !ok {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.saved && (s.Min-c.last.Min).Abs() < time.Millisecond && (s.Max-c.last.Max).Abs() < time.Millisecond &&
		s.At.Sub(c.last.At) < time.Minute {
		return nil
	}
	b, err := json.MarshalIndent(savedClock{Version: apiClockVersion, Skew: s, Offset: s.Offset().String()}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the API clock estimate: %w", err)
	}
	if err := writeFileAtomic(c.dir, filepath.Join(c.dir, apiClockFile), append(b, '\n')); err != nil {
		return err
	}
	c.last, c.saved = s, true
	return nil
}

// writeFileAtomic replaces path (in dir) with b by writing a temporary file and renaming it.
func writeFileAtomic(dir, path string, b []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the rate-limit state directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	return nil
}
