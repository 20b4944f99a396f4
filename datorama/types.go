package datorama

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Timestamp is an instant the API sends as epoch milliseconds (a JSON number).
// JSON null or an absent field decodes to the zero Timestamp; IsZero reports that.
type Timestamp struct{ time.Time }

// TimestampOf returns the Timestamp for t, in UTC.
func TimestampOf(t time.Time) Timestamp { return Timestamp{t.UTC()} }

// Millis returns the epoch milliseconds, or 0 for the zero Timestamp.
func (t Timestamp) Millis() int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func (t Timestamp) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	return strconv.AppendInt(nil, t.UnixMilli(), 10), nil
}

// UnmarshalJSON accepts a number (possibly with a fraction) or a numeric string.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		*t = Timestamp{}
		return nil
	}
	s := strings.Trim(string(b), `"`)
	if s == "" {
		*t = Timestamp{}
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("epoch milliseconds: %q is not a number", s)
	}
	if f < -1e15 || f > 1e15 {
		return fmt.Errorf("epoch milliseconds: %q out of range", s)
	}
	*t = Timestamp{time.UnixMilli(int64(f)).UTC()}
	return nil
}

// Date is a calendar day the API sends as "yyyy-MM-dd". The zero Date means null/absent.
type Date struct{ time.Time }

// DateLayout is the API's date format.
const DateLayout = "2006-01-02"

// DateOf returns the Date of t's calendar day (in t's location).
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{time.Date(y, m, d, 0, 0, 0, 0, time.UTC)}
}

// ParseDate parses "yyyy-MM-dd".
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(DateLayout, s)
	if err != nil {
		return Date{}, fmt.Errorf("date %q: want yyyy-MM-dd", s)
	}
	return Date{t}, nil
}

// String returns "yyyy-MM-dd", or "" for the zero Date.
func (d Date) String() string {
	if d.IsZero() {
		return ""
	}
	return d.Format(DateLayout)
}

// AddDays returns the date n days later.
func (d Date) AddDays(n int) Date { return Date{d.Time.AddDate(0, 0, n)} }

func (d Date) MarshalJSON() ([]byte, error) {
	if d.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(d.String())
}

// UnmarshalJSON accepts "yyyy-MM-dd", and also a leading date with a time part such as
// "2021-06-04 00:00:00.0" (seen in Query API answers).
func (d *Date) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		*d = Date{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("date: want a yyyy-MM-dd string, got %s", truncate(b, 40))
	}
	if s == "" {
		*d = Date{}
		return nil
	}
	if len(s) > 10 && (s[10] == ' ' || s[10] == 'T') {
		s = s[:10]
	}
	v, err := ParseDate(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// RunStatus is a stream's lastRunStatus. The facts file does not settle its type: one
// source reads it as a boolean (false = the last run failed), the stat vocabulary suggests
// a string such as "FAILURE". Both decode; Raw keeps what was sent.
type RunStatus struct {
	Raw    json.RawMessage // as sent; nil when absent or null
	Bool   *bool           // set when the API sent a boolean
	String string          // set when the API sent a string
}

// Failed reports whether the status says the last run failed: false, or a string
// such as "FAILURE"/"FAILED"/"ERROR" (case-insensitive).
func (r RunStatus) Failed() bool {
	if r.Bool != nil {
		return !*r.Bool
	}
	switch strings.ToUpper(r.String) {
	case "FAILURE", "FAILED", "ERROR", "FALSE":
		return true
	}
	return false
}

// Text is a stable text form for storage and comparisons: "true"/"false" or the string.
func (r RunStatus) Text() string {
	if r.Bool != nil {
		return strconv.FormatBool(*r.Bool)
	}
	return r.String
}

func (r RunStatus) MarshalJSON() ([]byte, error) {
	if len(r.Raw) > 0 {
		return r.Raw, nil
	}
	if r.Bool != nil {
		return json.Marshal(*r.Bool)
	}
	if r.String != "" {
		return json.Marshal(r.String)
	}
	return []byte("null"), nil
}

func (r *RunStatus) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	*r = RunStatus{}
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	r.Raw = append(json.RawMessage(nil), b...)
	switch b[0] {
	case 't', 'f':
		var v bool
		if err := json.Unmarshal(b, &v); err != nil {
			return fmt.Errorf("lastRunStatus: %s", truncate(b, 40))
		}
		r.Bool = &v
	case '"':
		if err := json.Unmarshal(b, &r.String); err != nil {
			return fmt.Errorf("lastRunStatus: %s", truncate(b, 40))
		}
	default:
		return fmt.Errorf("lastRunStatus: want a boolean or a string, got %s", truncate(b, 40))
	}
	return nil
}

// FlexInt64 decodes an id or count sent as a number or a numeric string ("27405").
type FlexInt64 int64

func (f *FlexInt64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(bytes.TrimSpace(b)), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		fv, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || fv != float64(int64(fv)) {
			return fmt.Errorf("want an integer, got %s", truncate(b, 40))
		}
		v = int64(fv)
	}
	*f = FlexInt64(v)
	return nil
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return cutUTF8(string(b), n) + "…"
}
