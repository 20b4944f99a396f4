package convert

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/drextract/drextract/datorama"
)

func TestConvert(t *testing.T) {
	var s datorama.Stream
	raw := `{"id":7,"name":"s","lastRunStatus":"FAILURE","lastRowsRetrieved":"3","processedRows":4,"lastDataDate":"2026-03-01","lastUpdate":1772400000000,"createTime":1,"updateTime":2,"future":{"x":1}}`
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		t.Fatal(err)
	}
	row := Stream(42, &s)
	if row.WorkspaceID != 42 || row.LastRunStatus != "FAILURE" || !row.LastRunFailed || row.LastRowsRetrieved != 3 ||
		row.LastDataDate.Format(time.DateOnly) != "2026-03-01" || row.LastUpdate.UnixMilli() != 1772400000000 || string(row.Raw) != raw {
		t.Errorf("Stream = %+v", row)
	}
	var j datorama.Job
	if err := json.Unmarshal([]byte(`{"id":9,"status":"PENDING","dataStartDate":"2026-02-01","startExecutionTime":null,"userId":"5"}`), &j); err != nil {
		t.Fatal(err)
	}
	jr := Job(42, 7, &j)
	if jr.ID != 9 || jr.StreamID != 7 || jr.WorkspaceID != 42 || !jr.StartExecutionTime.IsZero() || jr.UserID != 5 || jr.DataStartDate.Format(time.DateOnly) != "2026-02-01" {
		t.Errorf("Job = %+v", jr)
	}
}

// A record that names its workspace keeps it; one that does not takes the listing's.
func TestWorkspaceOfRecordWins(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want int64
	}{
		{`{"id":1,"workspaceId":9,"name":"p"}`, 9},
		{`{"id":1,"name":"p"}`, 42},
		{`{"id":1,"workspaceId":"9","name":"p"}`, 9},
	} {
		var p datorama.Pattern
		if err := json.Unmarshal([]byte(tc.raw), &p); err != nil {
			t.Fatal(err)
		}
		if got := Patterns(42, []datorama.Pattern{p})[0].WorkspaceID; got != tc.want {
			t.Errorf("%s: workspace %d, want %d", tc.raw, got, tc.want)
		}
	}
}
