package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// writeReportConfig writes a schedules.yaml with two report definitions on ws.
func writeReportConfig(t *testing.T, ws int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "schedules.yaml")
	body := fmt.Sprintf(`version: 1
reports:
  - name: rows-per-stream
    workspace: %d
    date_range: {last_days: 7}
    timezone: UTC
    dimensions: [Data Stream, Date]
    measurements: [Data Stream Total Rows]
    sort: {by: Data Stream Total Rows, order: DESC}
    table: report_rows_per_stream
  - name: broken
    workspace: %d
    date_range: {preset: THIS_MONTH}
    dimensions: [Campaign Name]
    measurements: [Data Stream Total Rows]
    table: report_broken
`, ws, ws)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReportCommand(t *testing.T) {
	e := newExtractEnv(t, sim.Options{Seed: 5, Workspaces: 1, Streams: 6, JobsPerStream: 10})
	var ws struct{ ID int64 }
	if err := json.Unmarshal(e.sim.Truth().Workspaces[0], &ws); err != nil {
		t.Fatal(err)
	}
	cfg := writeReportConfig(t, ws.ID)

	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
		wantErr  []string
	}{
		{name: "last 7 days", args: []string{"report", "rows-per-stream"}, wantCode: ExitOK,
			wantOut: []string{"report rows-per-stream: ", "rows into report_rows_per_stream for 2026-02-23..2026-03-01"}},
		{name: "fixed range", args: []string{"report", "rows-per-stream", "--from", "2026-02-01", "--to", "2026-02-03"}, wantCode: ExitOK,
			wantOut: []string{"for 2026-02-01..2026-02-03"}},
		{name: "422 names the definition and field", args: []string{"report", "broken"}, wantCode: ExitFailure,
			wantErr: []string{`report "broken"`, `field "Campaign Name"`}},
		{name: "unknown name", args: []string{"report", "nope"}, wantCode: ExitUsage,
			wantErr: []string{`no report named "nope"`, "rows-per-stream, broken"}},
		{name: "half a range", args: []string{"report", "rows-per-stream", "--from", "2026-02-01"}, wantCode: ExitUsage,
			wantErr: []string{"give both --from and --to"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := e.run(append([]string{"--config", cfg}, tc.args...)...)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, stdout, stderr)
			}
			for _, s := range tc.wantOut {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
		})
	}

	// Both good runs landed, in their own day ranges, and the serving copy has them.
	st, err := load.OpenReadOnly(context.Background(), filepath.Join(e.dataDir, load.ServingFile))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var outside, runs int
	if err := st.DB().QueryRow(`SELECT count(*) FILTER (WHERE date NOT BETWEEN DATE '2026-02-01' AND DATE '2026-03-01'), count(DISTINCT report_run_id)
		FROM report_rows_per_stream`).Scan(&outside, &runs); err != nil {
		t.Fatal(err)
	}
	if outside != 0 || runs != 2 {
		t.Errorf("serving copy: %d rows outside the asked ranges, rows of %d runs (want 0 and 2)", outside, runs)
	}
}
