package sim

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Hostile listings: answers that are well-formed JSON but impossible, the way an API
// bug, a proxy or a race could send them. They rewrite the answer a handler built; the
// account and its truth are untouched.
//
// Which listings each kind can spoil:
//   - dupid, sameid: every list with at least two records: workspaces, streams, bulk
//     status, stats pages, harmonized dimensions, patterns, calculated measurements (by
//     id), dimensions and measurements (by system name: the key and the systemName).
//   - negid: the same lists but dimensions and measurements, which are keyed by name.
//   - nullstatus, hugepage: stats pages with at least one job.
//
// A mapping is one object per stream, with nothing that repeats: no kind applies.

func isHostile(kind string) bool {
	for _, k := range HostileKinds {
		if k == kind {
			return true
		}
	}
	return false
}

// Endpoint labels of the listings, as routes() registers them.
const (
	labelWorkspaces   = "GET /v1/workspaces"
	labelStreams      = "GET /v1/workspaces/{wsId}/data-streams"
	labelBulk         = "GET /v1/workspaces/{wsId}/data-streams/status/bulk"
	labelStats        = "POST /v1/data-streams/api/{id}/stats"
	labelStatsNoAPI   = "POST /v1/data-streams/{id}/stats"
	labelDimensions   = "GET /v1/workspaces/{wsId}/dimensions"
	labelMeasurements = "GET /v1/workspaces/{wsId}/measurements"
	labelHarmonized   = "GET /v1/workspaces/{wsId}/harmonized-dimensions"
	labelPatterns     = "GET /v1/workspaces/{wsId}/patterns"
	labelCalcs        = "GET /v1/workspaces/{wsId}/calculated-measurements"
)

// spoilListing applies a hostile kind to the answer out of the endpoint label. It
// returns the answer and whether the kind applied; when it did not, out is unchanged.
func spoilListing(kind, label string, out []byte, hugeBytes int) ([]byte, bool) {
	stats := label == labelStats || label == labelStatsNoAPI
	switch label {
	case labelDimensions, labelMeasurements:
		if kind == FaultDupID || kind == FaultSameID {
			return spoilKeyed(kind, out)
		}
		return out, false
	case labelWorkspaces, labelStreams, labelBulk, labelStats, labelStatsNoAPI, labelHarmonized, labelPatterns, labelCalcs:
	default:
		return out, false
	}
	var recs []json.RawMessage
	if json.Unmarshal(out, &recs) != nil {
		return out, false
	}
	switch kind {
	case FaultDupID, FaultSameID:
		if len(recs) < 2 {
			return out, false
		}
		first, ok := idOf(recs[0])
		if !ok {
			return out, false
		}
		last := 1
		if kind == FaultSameID {
			last = len(recs) - 1
		}
		for i := 1; i <= last; i++ {
			recs[i] = withID(recs[i], first)
		}
	case FaultNegID:
		n := len(recs)
		if n == 0 {
			return out, false
		}
		id, ok := idOf(recs[n-1])
		if !ok {
			return out, false
		}
		recs[n-1] = withID(recs[n-1], -id)
	case FaultNullStatus:
		if !stats || len(recs) == 0 {
			return out, false
		}
		rec, ok := withNullStatus(recs[0])
		if !ok {
			return out, false
		}
		recs[0] = rec
	case FaultHugePage:
		if !stats || len(recs) == 0 {
			return out, false
		}
		return hugePage(recs, len(out), hugeBytes), true
	default:
		return out, false
	}
	return joinRecords(recs), true
}

// idOf reads the id a simulator record starts with ({"id":N,…).
func idOf(rec []byte) (int64, bool) {
	const head = `{"id":`
	if !bytes.HasPrefix(rec, []byte(head)) {
		return 0, false
	}
	rest := rec[len(head):]
	end := bytes.IndexAny(rest, ",}")
	if end < 0 {
		return 0, false
	}
	id, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	return id, err == nil
}

// withID returns rec with its leading id replaced.
func withID(rec []byte, id int64) []byte {
	const head = `{"id":`
	rest := rec[len(head):]
	end := bytes.IndexAny(rest, ",}")
	b := append([]byte(head), strconv.FormatInt(id, 10)...)
	return append(b, rest[end:]...)
}

// withNullStatus returns a job record whose status is null.
func withNullStatus(rec []byte) ([]byte, bool) {
	const key = `"status":"`
	i := bytes.Index(rec, []byte(key))
	if i < 0 {
		return rec, false
	}
	end := bytes.IndexByte(rec[i+len(key):], '"')
	if end < 0 {
		return rec, false
	}
	b := append([]byte(nil), rec[:i]...)
	b = append(b, `"status":null`...)
	return append(b, rec[i+len(key)+end+1:]...), true
}

// hugePage pads the processLog of every job so that the page is about total bytes
// long: the log lines a runaway job might write.
func hugePage(recs []json.RawMessage, have, total int) []byte {
	const line = `[2026-03-02 10:00:00Z] Retrying the data provider request\n`
	per := max(total-have, 0) / len(recs)
	pad := bytes.Repeat([]byte(line), per/len(line)+1)[:per]
	pad = bytes.TrimRight(pad, `\`) // never end inside an escape
	b := make([]byte, 0, total+len(recs)*len(line))
	b = append(b, '[')
	for i, rec := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		// Every job record ends with its processLog: …"processLog":"…"}.
		if n := len(rec); n >= 2 && rec[n-2] == '"' && rec[n-1] == '}' {
			b = append(b, rec[:n-2]...)
			b = append(b, pad...)
			b = append(b, '"', '}')
		} else {
			b = append(b, rec...)
		}
	}
	return append(b, ']')
}

func joinRecords(recs []json.RawMessage) []byte {
	b := []byte{'['}
	for i, r := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, r...)
	}
	return append(b, ']')
}

// spoilKeyed gives the second (dupid) or every further (sameid) member of a map keyed
// by system name the first member's key and systemName.
func spoilKeyed(kind string, out []byte) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(out))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return out, false
	}
	type member struct {
		key string
		val json.RawMessage
	}
	var ms []member
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return out, false
		}
		k, _ := t.(string)
		var v json.RawMessage
		if dec.Decode(&v) != nil {
			return out, false
		}
		ms = append(ms, member{k, v})
	}
	if len(ms) < 2 {
		return out, false
	}
	last := 1
	if kind == FaultSameID {
		last = len(ms) - 1
	}
	first := ms[0].key
	for i := 1; i <= last; i++ {
		old := appendString([]byte(`"systemName":`), ms[i].key)
		ms[i].val = bytes.Replace(ms[i].val, old, appendString([]byte(`"systemName":`), first), 1)
		ms[i].key = first
	}
	b := []byte{'{'}
	for i, m := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, m.key), ':')
		b = append(b, m.val...)
	}
	return append(b, '}'), true
}
