package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/drextract/drextract/extract"
	"github.com/drextract/drextract/load"
	"github.com/drextract/drextract/sim"
)

// record is one row of a current-state table, reduced to what a comparison needs: the
// parents it hangs under (to set aside the children of a parent whose listing failed)
// and its raw record in canonical JSON.
type record struct {
	ws, stream int64 // stream is 0 for rows that do not hang under a stream
	raw        string
	deleted    bool // store rows only
}

// snapshot is table → key → record, for the tables in extract.Entities.
type snapshot map[string]map[string]record

// digest is a table's row count and a checksum over its keys and canonical records.
func (s snapshot) digest(table string) (int, string) {
	rows := s[table]
	keys := make([]string, 0, len(rows))
	for k, r := range rows {
		if !r.deleted {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s\t%s\n", k, rows[k].raw)
	}
	return len(keys), hex.EncodeToString(h.Sum(nil))[:16]
}

// canonical re-encodes JSON with sorted keys and exact numbers, so that two encodings of
// one record compare equal.
func canonical(t testing.TB, raw []byte) string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("canonical JSON of %.80s: %v", raw, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// truthSnapshot is the simulator's ground truth in the shape of the store's tables.
func truthSnapshot(t testing.TB, tr sim.Truth) snapshot {
	t.Helper()
	out := snapshot{}
	for _, table := range extract.Entities {
		out[table] = map[string]record{}
	}
	type ids struct {
		ID           int64 `json:"id"`
		WorkspaceID  int64 `json:"workspaceId"`
		DataStreamID int64 `json:"dataStreamId"`
	}
	parse := func(raw []byte) ids {
		var v ids
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("truth record %.80s: %v", raw, err)
		}
		return v
	}
	wsOfStream := map[int64]int64{}
	for _, raw := range tr.Workspaces {
		v := parse(raw)
		out[load.Workspaces][itoa(v.ID)] = record{ws: v.ID, raw: canonical(t, raw)}
	}
	for _, raw := range tr.Streams {
		v := parse(raw)
		wsOfStream[v.ID] = v.WorkspaceID
		out[load.Streams][itoa(v.ID)] = record{ws: v.WorkspaceID, raw: canonical(t, raw)}
	}
	for _, raw := range tr.Jobs {
		v := parse(raw)
		out[load.Jobs][itoa(v.ID)] = record{ws: wsOfStream[v.DataStreamID], stream: v.DataStreamID, raw: canonical(t, raw)}
	}
	for id, raw := range tr.Mappings {
		sid, _ := strconv.ParseInt(id, 10, 64)
		out[load.Mappings][id] = record{ws: wsOfStream[sid], stream: sid, raw: canonical(t, raw)}
	}
	for table, m := range map[string]map[string]json.RawMessage{load.Dimensions: tr.Dimensions, load.Measurements: tr.Measurements} {
		for wsKey, raw := range m {
			ws, _ := strconv.ParseInt(wsKey, 10, 64)
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(raw, &fields); err != nil {
				t.Fatalf("%s of workspace %s: %v", table, wsKey, err)
			}
			for name, f := range fields {
				out[table][wsKey+"/"+name] = record{ws: ws, raw: canonical(t, f)}
			}
		}
	}
	for table, m := range map[string]map[string]json.RawMessage{load.HarmonizedDimensions: tr.HarmonizedDimensions,
		load.Patterns: tr.Patterns, load.CalculatedMeasurements: tr.CalculatedMeasurements} {
		for wsKey, raw := range m {
			ws, _ := strconv.ParseInt(wsKey, 10, 64)
			var list []json.RawMessage
			if err := json.Unmarshal(raw, &list); err != nil {
				t.Fatalf("%s of workspace %s: %v", table, wsKey, err)
			}
			for _, item := range list {
				out[table][itoa(parse(item).ID)] = record{ws: ws, raw: canonical(t, item)}
			}
		}
	}
	return out
}

// storeSnapshot reads every row of the current-state tables, deleted ones included.
func storeSnapshot(t testing.TB, db *sql.DB) snapshot {
	t.Helper()
	q := map[string]string{
		load.Workspaces:             "CAST(id AS VARCHAR), id, 0",
		load.Streams:                "CAST(id AS VARCHAR), workspace_id, 0",
		load.Jobs:                   "CAST(id AS VARCHAR), workspace_id, stream_id",
		load.Mappings:               "CAST(stream_id AS VARCHAR), workspace_id, stream_id",
		load.Dimensions:             "CAST(workspace_id AS VARCHAR) || '/' || system_name, workspace_id, 0",
		load.Measurements:           "CAST(workspace_id AS VARCHAR) || '/' || system_name, workspace_id, 0",
		load.HarmonizedDimensions:   "CAST(id AS VARCHAR), workspace_id, 0",
		load.Patterns:               "CAST(id AS VARCHAR), workspace_id, 0",
		load.CalculatedMeasurements: "CAST(id AS VARCHAR), workspace_id, 0",
	}
	out := snapshot{}
	for _, table := range extract.Entities {
		rows, err := db.QueryContext(context.Background(),
			"SELECT "+q[table]+", CAST(raw AS VARCHAR), is_deleted FROM "+table)
		if err != nil {
			t.Fatalf("reading %s: %v", table, err)
		}
		m := map[string]record{}
		for rows.Next() {
			var k, raw string
			var r record
			var ws, stream sql.NullInt64
			if err := rows.Scan(&k, &ws, &stream, &raw, &r.deleted); err != nil {
				t.Fatal(err)
			}
			r.ws, r.stream, r.raw = ws.Int64, stream.Int64, canonical(t, []byte(raw))
			if _, dup := m[k]; dup {
				t.Errorf("%s: key %s stored twice", table, k)
			}
			m[k] = r
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		out[table] = m
	}
	return out
}

// assertEqual reports every table whose live rows differ from the truth, with the first
// few differences.
func assertEqual(t testing.TB, what string, got, want snapshot) {
	t.Helper()
	for _, table := range extract.Entities {
		gn, gs := got.digest(table)
		wn, ws := want.digest(table)
		if gn == wn && gs == ws {
			continue
		}
		var diffs []string
		for k, w := range want[table] {
			switch g, ok := got[table][k]; {
			case !ok || g.deleted:
				diffs = append(diffs, "missing "+k)
			case g.raw != w.raw:
				diffs = append(diffs, "differs "+k+": store "+clip(g.raw)+" truth "+clip(w.raw))
			}
		}
		for k, g := range got[table] {
			if _, ok := want[table][k]; !ok && !g.deleted {
				diffs = append(diffs, "extra "+k)
			}
		}
		slices.Sort(diffs)
		t.Errorf("%s: %s has %d rows (sum %s), truth %d (sum %s); first of %d differences:\n  %s",
			what, table, gn, gs, wn, ws, len(diffs), strings.Join(diffs[:min(5, len(diffs))], "\n  "))
	}
}

// parentFilter says whether a row hangs under a parent whose listing failed, given the
// names the crawler reports in Result.Incomplete and runs.incomplete.
type parentFilter struct {
	all       bool
	byTableWS map[string]map[int64]bool // table → workspace ids
	jobsOf    map[int64]bool            // stream ids
	mappingOf map[int64]bool            // stream ids
}

// parseParents understands every parent name the crawler uses; an unknown one fails the
// test, since its rows could not be set aside.
func parseParents(t testing.TB, parents []string) parentFilter {
	t.Helper()
	f := parentFilter{byTableWS: map[string]map[int64]bool{}, jobsOf: map[int64]bool{}, mappingOf: map[int64]bool{}}
	addWS := func(ws int64, tables ...string) {
		for _, table := range tables {
			if f.byTableWS[table] == nil {
				f.byTableWS[table] = map[int64]bool{}
			}
			f.byTableWS[table][ws] = true
		}
	}
	for _, p := range parents {
		if p == "workspaces" {
			f.all = true
			continue
		}
		what, idText, ok := strings.Cut(p, " of ")
		var id int64
		var kind string
		if ok {
			kind, idText, _ = strings.Cut(idText, " ")
			id, _ = strconv.ParseInt(idText, 10, 64)
		}
		switch {
		case !ok || id == 0:
			t.Errorf("incomplete parent %q: not a name this test understands", p)
		case kind == "workspace" && what == "streams":
			addWS(id, load.Streams, load.Jobs, load.Mappings)
		case kind == "workspace" && what == "bulk status":
			addWS(id, load.Jobs)
		case kind == "workspace" && slices.Contains(extract.Entities, what):
			addWS(id, what)
		case kind == "stream" && what == "jobs":
			f.jobsOf[id] = true
		case kind == "stream" && what == "mapping":
			f.mappingOf[id] = true
		default:
			t.Errorf("incomplete parent %q: not a name this test understands", p)
		}
	}
	return f
}

func (f parentFilter) excludes(table string, r record) bool {
	switch {
	case f.all, f.byTableWS[table][r.ws]:
		return true
	case table == load.Jobs:
		return f.jobsOf[r.stream]
	case table == load.Mappings:
		return f.mappingOf[r.stream]
	}
	return false
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func clip(s string) string {
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}
