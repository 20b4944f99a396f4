package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/drextract/drextract/clock"
	drsql "github.com/drextract/drextract/sql"
)

var t0 = time.Date(2025, 3, 10, 8, 0, 0, 0, time.UTC)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openTemp opens a fresh store in t.TempDir() (a real DuckDB file) and closes it at the end.
func openTemp(tb testing.TB) *Store {
	tb.Helper()
	s, err := Open(context.Background(), filepath.Join(tb.TempDir(), LiveFile),
		Options{Clock: clock.NewManual(t0), Logger: quietLogger()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// jobRow builds a job the way extract would, with a raw record of realistic size.
func jobRow(id, streamID, wsID int64, status string, start time.Time) JobRow {
	raw, _ := json.Marshal(map[string]any{
		"id": id, "dataStreamId": streamID, "status": status,
		"dataStartDate": start.Format("2006-01-02"), "dataEndDate": start.Format("2006-01-02"),
		"startExecutionTime": start.UnixMilli(), "endExecutionTime": start.Add(3 * time.Minute).UnixMilli(),
		"userId": 4711, "statusReason": "",
		"processLog": fmt.Sprintf("[%s] queued\n[%s] retrieving\n[%s] done.", start.Format(time.DateTime),
			start.Add(time.Minute).Format(time.DateTime), start.Add(3*time.Minute).Format(time.DateTime)),
	})
	return JobRow{ID: id, StreamID: streamID, WorkspaceID: wsID, Status: status,
		DataStartDate: start, DataEndDate: start, StartExecutionTime: start,
		EndExecutionTime: start.Add(3 * time.Minute), UserID: 4711, Raw: raw}
}

// jobPage makes n jobs of one stream with ids from first on.
func jobPage(streamID, wsID, first int64, n int, status string) []JobRow {
	rows := make([]JobRow, n)
	for i := range rows {
		id := first + int64(i)
		rows[i] = jobRow(id, streamID, wsID, status, t0.AddDate(0, 0, -int(id%400)))
	}
	return rows
}

func embeddedMigrations(tb testing.TB) fs.FS {
	sub, err := fs.Sub(drsql.Migrations, "migrations")
	if err != nil {
		tb.Fatal(err)
	}
	return sub
}
