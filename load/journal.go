package load

import (
	"bytes"
	"context"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/drextract/drextract/fingerprint"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/gofrs/flock"
)

// The API-call journal. Every API attempt of every drextract process is appended, as it
// completes, to a file next to the store (JournalPath), and the process that holds the
// store folds the file into api_calls (FoldJournal: when the store opens, after each
// run). A kill therefore loses only the attempts in flight, and a process that cannot
// open the store (status --probe while serve runs) still leaves its calls behind.
//
// The file is a sequence of records, each a newline followed by one JSON object,
// written by a single write(2) on a file opened with O_APPEND and kept under PIPE_BUF
// (4096 bytes), so appends of several processes never interleave. A crash can leave a
// torn record at the end; since every record starts with its own newline, the next one
// still starts a line, and the torn one is skipped with a warning when folded.
//
// Appenders hold a shared lock on JournalPath + ".lock" for each write; a fold takes it
// exclusively only to move the journal's content into JournalPath + ".folding" (synced)
// and empty the journal, then inserts that file's records and removes it. Every record
// carries a unique attempt id, and the insert skips ids already stored, so a fold
// interrupted anywhere and repeated stores each attempt once.

// journalSuffix follows the store file's name in the journal's; the journal's lock and
// folding files add ".lock" and ".folding" to that.
const journalSuffix = ".calls"

// Bounds that keep a record under PIPE_BUF.
const (
	maxJournalError = 1024 // bytes of error text kept
	maxJournalPath  = 512  // bytes of path template kept
	maxJournalLine  = 4000 // a record never exceeds this
)

// JournalPath is the API-call journal of the store file at storePath; "" for an
// in-memory store, which has none.
func JournalPath(storePath string) string {
	if storePath == "" || storePath == ":memory:" {
		return ""
	}
	return storePath + journalSuffix
}

// Journal appends API-call records to the journal of one store. Its methods are safe for
// concurrent use, also by several processes at once. The zero value and a Journal of an
// in-memory store drop every record.
type Journal struct {
	path string

	appended atomic.Int64 // records this Journal wrote
	dirOnce  sync.Once
	dirErr   error

	syncMu    sync.Mutex
	synced    int64 // records known durable
	dirSynced bool
}

// NewJournal returns the journal of the store file at storePath. It does no I/O: the
// file is created by the first Append.
func NewJournal(storePath string) *Journal { return &Journal{path: JournalPath(storePath)} }

// journalRecord is one attempt as the journal holds it. Rate values are -1 when absent,
// as in APICall.
type journalRecord struct {
	V                 int       `json:"v"`
	ID                string    `json:"id"`
	Run               int64     `json:"run,omitempty"`
	ActionRun         int64     `json:"action_run,omitempty"`
	ActionCall        int       `json:"action_call,omitempty"`
	Time              time.Time `json:"time"`
	Fingerprint       string    `json:"fp"`
	Method            string    `json:"method"`
	PathTemplate      string    `json:"path"`
	Status            int       `json:"status"`
	LatencyNS         int64     `json:"latency_ns"`
	Attempt           int       `json:"attempt"`
	PlatformRemaining int       `json:"platform_remaining"`
	QueryRemaining    int       `json:"query_remaining"`
	DailyRemaining    int       `json:"daily_remaining"`
	PlatformReset     time.Time `json:"platform_reset,omitzero"`
	DailyReset        time.Time `json:"daily_reset,omitzero"`
	Error             string    `json:"error,omitempty"`
}

// journalVersion is the record format written; a fold skips records of other versions.
const journalVersion = 1

// newRecord is the journal's record of one attempt of run runID. The fingerprint is
// checked here already, so nothing that might be a token is ever written, and the
// texts are bounded.
func newRecord(runID int64, c APICall) journalRecord {
	fp := fingerprint.Safe(c.Fingerprint)
	return journalRecord{V: journalVersion, ID: c.AttemptID, Run: runID, ActionRun: c.ActionRunID, ActionCall: c.ActionCallNo,
		Time: c.Time.UTC(), Fingerprint: fp, Method: c.Method, PathTemplate: clip(c.PathTemplate, maxJournalPath),
		Status: c.Status, LatencyNS: int64(c.Latency), Attempt: c.Attempt,
		PlatformRemaining: c.PlatformRemaining, QueryRemaining: c.QueryRemaining, DailyRemaining: c.DailyRemaining,
		PlatformReset: c.PlatformReset.UTC(), DailyReset: c.DailyReset.UTC(), Error: clip(c.Error, maxJournalError)}
}

// encodeRecord is the bytes Append writes for one attempt: a newline and the record.
func encodeRecord(runID int64, c APICall) ([]byte, error) {
	if c.AttemptID == "" {
		return nil, errors.New("an API call record needs its attempt id")
	}
	rec := newRecord(runID, c)
	for {
		b, err := json.Marshal(rec)
		if err != nil {
			return nil, fmt.Errorf("encoding an API call record: %w", err)
		}
		if len(b)+1 <= maxJournalLine {
			return append([]byte{'\n'}, b...), nil
		}
		// Escaping can make an error text several times longer than its bytes.
		if rec.Error == "" {
			return nil, fmt.Errorf("an API call record of %d bytes is over the journal's %d", len(b)+1, maxJournalLine)
		}
		rec.Error = clip(rec.Error, len(rec.Error)/2)
	}
}

// clip keeps at most n bytes of s, cut at a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}

// Append writes one attempt of run runID (0: no run) to the journal, at once, without
// waiting for the disk (Sync does). c.AttemptID must be unique to the attempt.
func (j *Journal) Append(runID int64, c APICall) error {
	if j == nil || j.path == "" {
		return nil
	}
	line, err := encodeRecord(runID, c)
	if err != nil {
		return err
	}
	j.dirOnce.Do(func() { j.dirErr = os.MkdirAll(filepath.Dir(j.path), 0o755) })
	if j.dirErr != nil {
		return fmt.Errorf("appending to the API-call journal: %w", j.dirErr)
	}
	lk := flock.New(j.path + ".lock")
	if err := lk.RLock(); err != nil {
		return fmt.Errorf("locking the API-call journal %s: %w", j.path, err)
	}
	defer lk.Unlock() //nolint:errcheck // closing the lock's file releases it too
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("appending to the API-call journal: %w", err)
	}
	_, err = f.Write(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("appending to the API-call journal %s: %w", j.path, err)
	}
	j.appended.Add(1)
	return nil
}

// Sync makes every record this Journal appended so far durable; it returns at once when
// they already are, so callers may ask before every commit. Concurrent calls share one
// fsync.
func (j *Journal) Sync() error {
	if j == nil || j.path == "" {
		return nil
	}
	want := j.appended.Load()
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	if j.synced >= want {
		return nil
	}
	want = j.appended.Load()
	// A fold may have moved the records to its own file meanwhile; it synced that file
	// before emptying this one, so syncing what is here covers the rest.
	if err := syncFile(j.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("syncing the API-call journal: %w", err)
	}
	if !j.dirSynced {
		if err := syncDir(filepath.Dir(j.path)); err != nil {
			return fmt.Errorf("syncing the API-call journal's folder: %w", err)
		}
		j.dirSynced = true
	}
	j.synced = want
	return nil
}

// FoldStats is what one FoldJournal did.
type FoldStats struct {
	Stored  int // rows added to api_calls
	Already int // records whose attempt was already stored (a repeated fold)
	Skipped int // records that could not be read (torn by a crash) and were left out
}

// FoldJournal moves the records of the store's API-call journal into api_calls (see the
// journal's description above). It is idempotent and safe to call at any time by the
// process holding the store; other processes may append meanwhile. A record that cannot
// be read is skipped with a warning; only a failure of the store or of the files is an
// error, and then the records stay in the files for the next fold.
func (s *Store) FoldJournal(ctx context.Context) (FoldStats, error) {
	if s.readOnly {
		return FoldStats{}, errReadOnly
	}
	jp := JournalPath(s.path)
	if jp == "" {
		return FoldStats{}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wconn == nil {
		return FoldStats{}, errors.New("folding the API-call journal: store is closed")
	}
	folding := jp + ".folding"
	if err := moveJournal(jp, jp+".lock", folding); err != nil {
		return FoldStats{}, fmt.Errorf("folding the API-call journal: %w", err)
	}
	data, err := os.ReadFile(folding)
	if errors.Is(err, fs.ErrNotExist) {
		return FoldStats{}, nil
	}
	if err != nil {
		return FoldStats{}, fmt.Errorf("folding the API-call journal: %w", err)
	}
	recs, skipped := parseJournal(data)
	st := FoldStats{Skipped: skipped}
	if skipped > 0 {
		s.log.Warn("skipped API call records that could not be read (a write cut short by a crash)",
			"records", skipped, "file", folding)
	}
	stored, err := s.storeCalls(ctx, recs)
	if err != nil {
		return st, fmt.Errorf("folding the API-call journal: %w", err)
	}
	st.Stored, st.Already = stored, len(recs)-stored
	if err := os.Remove(folding); err != nil {
		// Harmless: the next fold finds the records stored and skips them.
		s.log.Warn("removing the folded API-call journal", "file", folding, "err", err)
	}
	return st, nil
}

// moveJournal appends the journal's content to the folding file, syncs it, and empties
// the journal, under the exclusive lock so that no append falls in between.
func moveJournal(journal, lock, folding string) error {
	lk := flock.New(lock)
	if err := lk.Lock(); err != nil {
		return fmt.Errorf("locking %s: %w", journal, err)
	}
	defer lk.Unlock() //nolint:errcheck // closing the lock's file releases it too
	jf, err := os.OpenFile(journal, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer jf.Close()
	data, err := io.ReadAll(jf)
	if err != nil {
		return fmt.Errorf("reading %s: %w", journal, err)
	}
	if len(data) == 0 {
		return nil
	}
	// Appended, not replaced: a folding file left by an interrupted fold keeps its
	// records until they are stored.
	ff, err := os.OpenFile(folding, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	_, err = ff.Write(data)
	if err == nil {
		err = ff.Sync()
	}
	if cerr := ff.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syncDir(filepath.Dir(folding))
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", folding, err)
	}
	// Losing the truncation to a crash only repeats records the next fold skips.
	if err := jf.Truncate(0); err != nil {
		return fmt.Errorf("emptying %s: %w", journal, err)
	}
	return nil
}

// parseJournal decodes the records of a journal file; skipped counts the non-empty
// lines that are not a whole record of the known version.
func parseJournal(data []byte) (recs []journalRecord, skipped int) {
	for line := range bytes.SplitSeq(data, []byte{'\n'}) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var r journalRecord
		if err := json.Unmarshal(line, &r); err != nil || r.V != journalVersion || r.ID == "" || r.Time.IsZero() || r.Method == "" {
			skipped++
			continue
		}
		recs = append(recs, r)
	}
	return recs, skipped
}

// stagingCallsSQL holds the records of one fold before they are inserted.
const stagingCallsSQL = `CREATE OR REPLACE TEMP TABLE stg_api_calls (
	seq INTEGER, attempt_id VARCHAR, time TIMESTAMPTZ, run_id BIGINT, token_fingerprint VARCHAR, method VARCHAR,
	path_template VARCHAR, status INTEGER, latency_ms DOUBLE, attempt INTEGER, platform_remaining INTEGER,
	query_remaining INTEGER, daily_remaining INTEGER, platform_reset TIMESTAMPTZ, daily_reset TIMESTAMPTZ,
	error VARCHAR, action_run_id BIGINT, action_call_no INTEGER)`

// insertCallsSQL adds the staged attempts not stored yet, numbered on from the largest
// id in the order they were journaled. $1 and $2 bound the staged times, so the search
// for stored attempt ids reads only the row groups of that time.
const insertCallsSQL = `INSERT INTO api_calls (id, attempt_id, time, run_id, token_fingerprint, method, path_template,
		status, latency_ms, attempt, platform_remaining, query_remaining, daily_remaining, platform_reset, daily_reset,
		error, action_run_id, action_call_no)
	SELECT (SELECT coalesce(max(id), 0) FROM api_calls) + row_number() OVER (ORDER BY seq),
		attempt_id, time, run_id, token_fingerprint, method, path_template, status, latency_ms, attempt,
		platform_remaining, query_remaining, daily_remaining, platform_reset, daily_reset, error, action_run_id, action_call_no
	FROM (SELECT DISTINCT ON (attempt_id) * FROM stg_api_calls ORDER BY attempt_id, seq) s
	WHERE NOT EXISTS (SELECT 1 FROM api_calls a WHERE a.attempt_id = s.attempt_id AND a.time BETWEEN $1 AND $2)`

// storeCalls inserts the records whose attempt is not stored yet, in one transaction,
// and returns how many it added. Callers hold s.mu.
func (s *Store) storeCalls(ctx context.Context, recs []journalRecord) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	if _, err := s.wconn.ExecContext(ctx, stagingCallsSQL); err != nil {
		return 0, fmt.Errorf("staging API calls: %w", err)
	}
	lo, hi := recs[0].Time, recs[0].Time
	var added int64
	err := s.inTx(ctx, func() error {
		err := s.wconn.Raw(func(dc any) error {
			conn, ok := dc.(driver.Conn)
			if !ok {
				return fmt.Errorf("unexpected driver connection %T", dc)
			}
			return appendTo(conn, "stg_api_calls", func(a *duckdb.Appender) error {
				for i, r := range recs {
					if r.Time.Before(lo) {
						lo = r.Time
					}
					if r.Time.After(hi) {
						hi = r.Time
					}
					fp := fingerprint.Safe(r.Fingerprint) // checked again: the file is outside input
					if err := a.AppendRow(int32(i), r.ID, r.Time.UTC(), nullInt64(r.Run), fp, r.Method, r.PathTemplate, int32(r.Status),
						float64(r.LatencyNS)/float64(time.Millisecond), int32(r.Attempt),
						remaining(r.PlatformRemaining), remaining(r.QueryRemaining), remaining(r.DailyRemaining),
						nullTime(r.PlatformReset), nullTime(r.DailyReset), nullString(r.Error),
						nullInt64(r.ActionRun), nullInt32(r.ActionCall)); err != nil {
						return fmt.Errorf("staging API call %s: %w", r.ID, err)
					}
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
		res, err := s.wconn.ExecContext(ctx, insertCallsSQL, lo.UTC(), hi.UTC())
		if err != nil {
			return fmt.Errorf("storing API calls: %w", err)
		}
		added, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, err
	}
	return int(added), nil
}

func nullInt64(v int64) driver.Value {
	if v == 0 {
		return nil
	}
	return v
}

func nullInt32(v int) driver.Value {
	if v == 0 {
		return nil
	}
	return int32(v)
}

// recoverCalls runs when the store opens, before runs left "running" are closed: it
// numbers rows stored before api_calls had ids, folds what the journal holds (the calls
// of runs a kill cut short among them) and fills in runs.calls of those runs from
// api_calls. A failure to fold is logged, not fatal: the records stay for the next open.
func (s *Store) recoverCalls(ctx context.Context) error {
	if _, err := s.wconn.ExecContext(ctx, `UPDATE api_calls SET id = n.id
		FROM (SELECT rowid AS rid, (SELECT coalesce(max(id), 0) FROM api_calls) + row_number() OVER (ORDER BY time, rowid) AS id
		      FROM api_calls WHERE id IS NULL) n
		WHERE api_calls.rowid = n.rid`); err != nil {
		return fmt.Errorf("numbering stored API calls: %w", err)
	}
	if st, err := s.FoldJournal(ctx); err != nil {
		s.log.Warn("the API-call journal could not be folded; it is kept for the next open", "err", err)
	} else if st.Stored > 0 {
		s.log.Info("folded API calls left in the journal", "stored", st.Stored, "already_stored", st.Already, "skipped", st.Skipped)
	}
	if _, err := s.wconn.ExecContext(ctx, `UPDATE runs SET calls = (SELECT count(*) FROM api_calls a WHERE a.run_id = runs.id)
		WHERE status = 'running'`); err != nil {
		return fmt.Errorf("counting the calls of abandoned runs: %w", err)
	}
	return nil
}
