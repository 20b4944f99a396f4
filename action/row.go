package action

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/drextract/drextract/datorama"
)

// Row is one input row of an operation, from a selection, a CSV line or command flags.
// Only the fields of the operation's columns are set.
type Row struct {
	// Line is where the row came from: the CSV line, or the selection row number
	// (1-based). Errors and audit items name it.
	Line      int
	StreamID  int64
	JobID     int64
	StartDate datorama.Date
	EndDate   datorama.Date
	Name      string
	// Patch is the JSON object of patch/put/mapping, exactly as given.
	Patch json.RawMessage
	// WorkspaceID and Body are a creation's: the workspace to create in and the entity
	// as the API takes it (a JSON object with a name), compacted.
	WorkspaceID int64
	Body        json.RawMessage
}

// maxNameLen bounds a stream name; Datorama's own limit is unknown, and a longer value is
// far more likely a broken CSV than a name.
const maxNameLen = 1000

// maxPatchLen bounds a patch object.
const maxPatchLen = 1 << 20

// setField parses one column's text into the row. The text comes from a CSV cell or a
// selection value rendered as text; errors do not repeat the line (callers add it).
func (r *Row) setField(col, text string) error {
	switch col {
	case ColStreamID:
		id, err := parseID(text)
		if err != nil {
			return fmt.Errorf("%s: %w", col, err)
		}
		r.StreamID = id
	case ColJobID:
		id, err := parseID(text)
		if err != nil {
			return fmt.Errorf("%s: %w", col, err)
		}
		r.JobID = id
	case ColStartDate, ColEndDate:
		d, err := parseDay(text)
		if err != nil {
			return fmt.Errorf("%s: %w", col, err)
		}
		if col == ColStartDate {
			r.StartDate = d
		} else {
			r.EndDate = d
		}
	case ColName:
		if !utf8.ValidString(text) {
			return fmt.Errorf("%s: not valid UTF-8", col)
		}
		name := strings.TrimSpace(text)
		switch {
		case name == "":
			return fmt.Errorf("%s: empty name", col)
		case len(name) > maxNameLen:
			return fmt.Errorf("%s: longer than %d bytes", col, maxNameLen)
		case strings.ContainsAny(name, "\r\n\x00"):
			return fmt.Errorf("%s: contains a line break or NUL", col)
		}
		r.Name = name
	case ColPatch:
		p, err := parsePatch(text)
		if err != nil {
			return fmt.Errorf("%s: %w", col, err)
		}
		r.Patch = p
	case ColWorkspaceID:
		id, err := parseID(text)
		if err != nil {
			return fmt.Errorf("%s: %w", col, err)
		}
		r.WorkspaceID = id
	case ColJSON:
		b, err := ParseBody(text)
		if err != nil {
			return fmt.Errorf("%s: %w", col, err)
		}
		r.Body = b
	default:
		return fmt.Errorf("unknown column %q", col)
	}
	return nil
}

// check validates the row as a whole once every column is set.
func (r *Row) check(op Op) error {
	if op == OpProcess && r.EndDate.Before(r.StartDate.Time) {
		return fmt.Errorf("end_date %s is before start_date %s", r.EndDate, r.StartDate)
	}
	if op.Creates() {
		ws, ok, err := bodyWorkspace(r.Body)
		switch {
		case err != nil:
			return fmt.Errorf("json: %w", err)
		case ok && ws != r.WorkspaceID:
			return fmt.Errorf("json: workspaceId %d differs from the workspace %d it is created in", ws, r.WorkspaceID)
		}
	}
	return nil
}

func parseID(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, errors.New("empty id")
	}
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not an id", clip(t))
	}
	if v <= 0 {
		return 0, fmt.Errorf("%d is not a positive id", v)
	}
	return v, nil
}

// parseDay accepts yyyy-MM-dd, and the same day followed by a midnight time as DuckDB
// renders a DATE cast to text by some tools ("2021-06-01 00:00:00").
func parseDay(s string) (datorama.Date, error) {
	t := strings.TrimSpace(s)
	if len(t) > 10 && (t[10] == ' ' || t[10] == 'T') {
		rest := strings.TrimRight(t[11:], "Z")
		if rest != "00:00:00" && rest != "00:00:00+00" && rest != "00:00:00.000" {
			return datorama.Date{}, fmt.Errorf("%q is not a day (yyyy-MM-dd)", clip(t))
		}
		t = t[:10]
	}
	d, err := time.Parse(datorama.DateLayout, t)
	if err != nil || len(t) != 10 {
		return datorama.Date{}, fmt.Errorf("%q is not a day (yyyy-MM-dd)", clip(t))
	}
	if d.Year() < 2000 || d.Year() > 2100 {
		return datorama.Date{}, fmt.Errorf("%s is outside the years 2000–2100", t)
	}
	return datorama.Date{Time: d}, nil
}

// parsePatch accepts a non-empty JSON object and returns it compacted.
func parsePatch(s string) (json.RawMessage, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, errors.New("empty patch (want a JSON object)")
	}
	if len(t) > maxPatchLen {
		return nil, fmt.Errorf("patch longer than %d bytes", maxPatchLen)
	}
	dec := json.NewDecoder(strings.NewReader(t))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("bad JSON patch: %v", err)
	}
	if obj == nil {
		return nil, errors.New("patch is not a JSON object")
	}
	if dec.More() {
		return nil, errors.New("bad JSON patch: text after the object")
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("bad JSON patch: text after the object")
	}
	if len(obj) == 0 {
		return nil, errors.New("empty patch object {}")
	}
	for k := range obj {
		if k == "id" {
			return nil, errors.New(`patch must not change "id"`)
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(t)); err != nil {
		return nil, fmt.Errorf("bad JSON patch: %v", err)
	}
	return json.RawMessage(buf.Bytes()), nil
}

// maxBodyLen bounds a creation's body.
const maxBodyLen = 1 << 20

// ParseBody reads a creation's body: one JSON object, as the API takes it, with a
// non-empty "name" (a lost answer is settled by finding the entity by its name) and no
// "id" (the API assigns it). It returns the object compacted.
func ParseBody(s string) (json.RawMessage, error) {
	t := strings.TrimSpace(s)
	switch {
	case t == "":
		return nil, errors.New("empty (want a JSON object)")
	case len(t) > maxBodyLen:
		return nil, fmt.Errorf("longer than %d bytes", maxBodyLen)
	}
	dec := json.NewDecoder(strings.NewReader(t))
	dec.UseNumber()
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if obj == nil {
		return nil, errors.New("not a JSON object")
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("text after the object")
	}
	if _, ok := obj["id"]; ok {
		return nil, errors.New(`"id" is assigned by the API; leave it out`)
	}
	var name string
	if err := json.Unmarshal(obj["name"], &name); err != nil || strings.TrimSpace(name) == "" {
		return nil, errors.New(`"name" must be a non-empty string`)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, []byte(t)); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	return json.RawMessage(buf.Bytes()), nil
}

// bodyName is the "name" of a creation's body ("" when it has none).
func bodyName(body []byte) string {
	var v struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(body, &v)
	return v.Name
}

// bodyWorkspace reads the "workspaceId" of a creation's body, a number or a numeric
// string; ok is false when the body has none.
func bodyWorkspace(body []byte) (id int64, ok bool, err error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return 0, false, err
	}
	raw, ok := obj["workspaceId"]
	if !ok || string(raw) == "null" {
		return 0, false, nil
	}
	var f datorama.FlexInt64
	if err := json.Unmarshal(raw, &f); err != nil || f <= 0 {
		return 0, false, fmt.Errorf("workspaceId %s is not a workspace id", clip(string(raw)))
	}
	return int64(f), true, nil
}

// withWorkspace is a creation's body as sent: the workspaceId added in front when the
// body has none (every creation endpoint reads it from the body), the rest as given.
func withWorkspace(body []byte, ws int64) json.RawMessage {
	if _, ok, _ := bodyWorkspace(body); ok {
		return json.RawMessage(body)
	}
	rest := bytes.TrimPrefix(bytes.TrimSpace(body), []byte("{"))
	out := fmt.Appendf(nil, `{"workspaceId":%d`, ws)
	if len(bytes.TrimSpace(rest)) > 0 && rest[0] != '}' {
		out = append(out, ',')
	}
	return append(out, rest...)
}

// valueText renders a database value as the text setField reads.
func valueText(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	case []byte:
		return string(x), true
	case int64:
		return strconv.FormatInt(x, 10), true
	case int32:
		return strconv.FormatInt(int64(x), 10), true
	case int16:
		return strconv.FormatInt(int64(x), 10), true
	case int8:
		return strconv.FormatInt(int64(x), 10), true
	case int:
		return strconv.Itoa(x), true
	case uint64:
		return strconv.FormatUint(x, 10), true
	case uint32:
		return strconv.FormatUint(uint64(x), 10), true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return strconv.FormatInt(int64(x), 10), true
		}
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case float32:
		return valueText(float64(x))
	case bool:
		return strconv.FormatBool(x), true
	case time.Time:
		if x.Hour() == 0 && x.Minute() == 0 && x.Second() == 0 && x.Nanosecond() == 0 {
			return x.Format(datorama.DateLayout), true
		}
		return x.Format(time.RFC3339Nano), true
	case map[string]any, []any:
		b, err := json.Marshal(x)
		if err != nil {
			return "", false
		}
		return string(b), true
	default:
		return fmt.Sprint(x), true
	}
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
