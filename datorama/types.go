package datorama

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
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

// UnmarshalJSON accepts an integer number of milliseconds (a JSON number, or a numeric
// string as some ids are sent), or null. A time that is not a whole number of
// milliseconds, or is negative, is refused: no source shows one, and storing a rounded
// or clamped instant would store a value the API did not send.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*t = Timestamp{}
		return nil
	}
	v, err := parseInteger(b)
	if err != nil {
		return fmt.Errorf("epoch milliseconds: %w", err)
	}
	if v < 0 || v > 1e15 {
		return errors.New("epoch milliseconds: want a whole number from 0 to 10^15")
	}
	*t = Timestamp{time.UnixMilli(v).UTC()}
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
// "2021-06-04 00:00:00.0" (seen in Query API answers), or null. Anything else, the empty
// string included, is refused.
func (d *Date) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*d = Date{}
		return nil
	}
	v, ok := parseDateJSON(b)
	if !ok {
		return errors.New("date: want a yyyy-MM-dd string or null")
	}
	*d = v
	return nil
}

// parseDateJSON parses a JSON string holding yyyy-MM-dd, optionally followed by a time
// part after ' ' or 'T', without allocating.
func parseDateJSON(b []byte) (Date, bool) {
	if len(b) < 12 || b[0] != '"' || b[len(b)-1] != '"' {
		return Date{}, false
	}
	s := b[1 : len(b)-1]
	if len(s) > 10 {
		if s[10] != ' ' && s[10] != 'T' || bytes.IndexByte(s, '\\') >= 0 {
			return Date{}, false
		}
		s = s[:10]
	}
	if len(s) != 10 || s[4] != '-' || s[7] != '-' {
		return Date{}, false
	}
	num := func(p []byte) (int, bool) {
		n := 0
		for _, c := range p {
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	y, ok1 := num(s[:4])
	m, ok2 := num(s[5:7])
	dd, ok3 := num(s[8:10])
	if !ok1 || !ok2 || !ok3 || m < 1 || m > 12 || dd < 1 {
		return Date{}, false
	}
	t := time.Date(y, time.Month(m), dd, 0, 0, 0, 0, time.UTC)
	if t.Day() != dd { // 2021-02-30 normalises into March
		return Date{}, false
	}
	return Date{t}, true
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
			return errors.New("lastRunStatus: want a boolean or a string")
		}
		r.Bool = &v
	case '"':
		if err := json.Unmarshal(b, &r.String); err != nil {
			return errors.New("lastRunStatus: want a boolean or a string")
		}
	default:
		return errors.New("lastRunStatus: want a boolean or a string")
	}
	return nil
}

// FlexInt64 decodes an id or count sent as a number or a numeric string ("27405").
type FlexInt64 int64

// UnmarshalJSON accepts an integer (a JSON number, or a string holding one) or null
// (0). A fraction, an empty string or anything else is refused.
func (f *FlexInt64) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		*f = 0
		return nil
	}
	v, err := parseInteger(b)
	if err != nil {
		return err
	}
	*f = FlexInt64(v)
	return nil
}

// errNotInteger names no value: the value may come from a hostile answer, and a
// *RecordError shows it scrubbed of tokens.
var errNotInteger = errors.New("want an integer")

// parseInteger reads an integer from a JSON number or a JSON string holding one. A
// number written with a zero fraction or an exponent (1.6e12) is accepted when its value
// is a whole number. It allocates only on the error path.
func parseInteger(b []byte) (int64, error) {
	s := b
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if len(s) == 0 || len(s) > 40 {
		return 0, errNotInteger
	}
	neg := s[0] == '-'
	digits := s
	if neg {
		digits = s[1:]
	}
	var v int64
	plain := len(digits) > 0 && len(digits) <= 18
	for _, c := range digits {
		if c < '0' || c > '9' {
			plain = false
			break
		}
		v = v*10 + int64(c-'0')
	}
	if plain {
		if neg {
			v = -v
		}
		return v, nil
	}
	if len(bytes.Trim(s, "0123456789+-.eE")) > 0 {
		return 0, errNotInteger
	}
	if iv, err := strconv.ParseInt(string(s), 10, 64); err == nil {
		return iv, nil
	}
	fv, err := strconv.ParseFloat(string(s), 64)
	if err != nil || fv != math.Trunc(fv) || math.Abs(fv) > 1<<53 {
		return 0, errNotInteger
	}
	return int64(fv), nil
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return cutUTF8(string(b), n) + "…"
}
