package datorama

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
)

// The decoders below are the only way an answer becomes a result. They are strict where
// strictness protects the store: a body that is empty, null, of the wrong JSON type,
// truncated or followed by garbage is an error; so is a record with an impossible field
// (*RecordError) and a list that holds two records under one id (*DuplicateError). Never
// a shorter or half-filled result. They are lenient where the facts file leaves a shape
// open: ids as numeric strings, lastRunStatus as bool or string, status spellings
// nobody has seen, unknown fields (all kept in Raw).
//
// A list is decoded in one walk of a json.Decoder over the body: each record is scanned
// once and decoded once, and its Raw is the record's own bytes within the body (a
// subslice, not a copy). The body is never written to after it was read, so the records
// of a page share it; it is freed with the last of them.

var errEmptyAnswer = errors.New("empty answer")

// firstByte is the first non-space byte of b, or 0.
func firstByte(b []byte) byte {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// model is implemented by the pointer of every record type the API lists.
type model[T any] interface {
	*T
	// decodeFrom decodes one JSON value from dec into the record's typed fields, Raw
	// excepted: each type shadows the fields it reads leniently (an id sent as a
	// string) in a wire form of its own.
	decodeFrom(dec *json.Decoder) error
	setRaw(json.RawMessage)
	// key is what makes the record one of a kind in a list: its id, or for a field its
	// system name; 0 and "" when the type has no key.
	key() (int64, string)
}

// checker finds what is impossible in a decoded record, beyond what its field types
// refuse: the field's JSON name and why, or "" when nothing is.
type checker[T any] func(*T) (field, reason string)

// decodeRecords decodes a JSON array of records of type T. what names the list in
// errors ("data streams"); check, when set, is run on every record.
func decodeRecords[T any, P model[T]](body []byte, what string, check checker[T]) ([]T, error) {
	switch firstByte(body) {
	case '[':
	case 0:
		return nil, fmt.Errorf("%s: %w", what, errEmptyAnswer)
	default:
		return nil, fmt.Errorf("%s: want a JSON array, got %s", what, truncate(bytes.TrimSpace(body), 20))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if _, err := dec.Token(); err != nil { // [
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := make([]T, 0, estimateRecords(body))
	seenID := map[int64]int{}
	seenKey := map[string]int{}
	needID := hasID[T]()
	for i := 0; dec.More(); i++ {
		start := dec.InputOffset()
		var v T
		err := P(&v).decodeFrom(dec)
		raw := valueAt(body, start, dec.InputOffset())
		if err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) || raw == nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			return nil, diagnose[T, P](what, i, raw, err)
		}
		P(&v).setRaw(raw)
		if err := checkRecord[T, P](&v, what, i, raw, check, needID); err != nil {
			return nil, err
		}
		id, key := P(&v).key()
		if err := noDuplicate(what, i, id, key, seenID, seenKey); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if _, err := dec.Token(); err != nil { // ]
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := trailing(body, dec); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// decodeRecord decodes one JSON object record.
func decodeRecord[T any, P model[T]](body []byte, what string, check checker[T]) (*T, error) {
	switch firstByte(body) {
	case '{':
	case 0:
		return nil, fmt.Errorf("%s: %w", what, errEmptyAnswer)
	default:
		return nil, fmt.Errorf("%s: want a JSON object, got %s", what, truncate(bytes.TrimSpace(body), 20))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	v := new(T)
	err := P(v).decodeFrom(dec)
	raw := valueAt(body, 0, dec.InputOffset())
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) || raw == nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return nil, diagnose[T, P](what, -1, raw, err)
	}
	if err := trailing(body, dec); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	P(v).setRaw(raw)
	if err := checkRecord[T, P](v, what, -1, raw, check, hasID[T]()); err != nil {
		return nil, err
	}
	return v, nil
}

// decodeRecordOrList decodes an answer that is either one object or an array holding
// exactly one, as the workspace-scoped stream GET may be (facts file §6).
func decodeRecordOrList[T any, P model[T]](body []byte, what string, check checker[T]) (*T, error) {
	if firstByte(body) != '[' {
		return decodeRecord[T, P](body, what, check)
	}
	list, err := decodeRecords[T, P](body, what, check)
	if err != nil {
		return nil, err
	}
	if len(list) != 1 {
		return nil, fmt.Errorf("%s: want one record, got %d", what, len(list))
	}
	return &list[0], nil
}

// decodeRecordsOrOne decodes an array of records, or a single object as a list of one.
// It serves answers the facts file marks as "array [I]" where one source read an object
// (rerun).
func decodeRecordsOrOne[T any, P model[T]](body []byte, what string, check checker[T]) ([]T, error) {
	if firstByte(body) == '{' {
		one, err := decodeRecord[T, P](body, what, check)
		if err != nil {
			return nil, err
		}
		return []T{*one}, nil
	}
	return decodeRecords[T, P](body, what, check)
}

// estimateRecords guesses how many records an array body holds, so the result is
// allocated once for a typical page: one per 300 bytes, bounded.
func estimateRecords(body []byte) int { return min(len(body)/300+1, 4096) }

// valueAt is the value that body[start:end] holds, without the separators and space the
// decoder consumed before it; nil when there is none.
func valueAt(body []byte, start, end int64) json.RawMessage {
	if start < 0 || end > int64(len(body)) || start >= end {
		return nil
	}
	v := bytes.TrimLeft(body[start:end], " \t\r\n,:")
	if len(v) == 0 {
		return nil
	}
	return json.RawMessage(v[:len(v):len(v)]) // capped: an append never writes into the body
}

// trailing refuses anything but space after the value dec has just finished.
func trailing(body []byte, dec *json.Decoder) error {
	if off := dec.InputOffset(); off < int64(len(body)) && len(bytes.TrimSpace(body[off:])) > 0 {
		return fmt.Errorf("garbage after the JSON value: %s", truncate(bytes.TrimSpace(body[off:]), 20))
	}
	return nil
}

// checkRecord applies the type's own check (a positive id, when needID) and check.
func checkRecord[T any, P model[T]](v *T, what string, i int, raw json.RawMessage, check checker[T], needID bool) error {
	id, _ := P(v).key()
	if needID && id <= 0 {
		return newRecordError(what, i, 0, raw, "id", "must be a positive integer", nil)
	}
	if check == nil {
		return nil
	}
	if field, reason := check(v); field != "" {
		return newRecordError(what, i, max(id, 0), raw, field, reason, nil)
	}
	return nil
}

// hasID reports whether records of type T carry an id that must be positive.
func hasID[T any]() bool {
	switch any(new(T)).(type) {
	case *DashboardHierarchy, *Field:
		return false
	}
	return true
}

// noDuplicate records record i's key and refuses one seen before.
func noDuplicate(what string, i int, id int64, key string, seenID map[int64]int, seenKey map[string]int) error {
	switch {
	case key != "":
		if first, dup := seenKey[key]; dup {
			return &DuplicateError{What: what, Key: key, First: first, Second: i}
		}
		seenKey[key] = i
	case id != 0:
		if first, dup := seenID[id]; dup {
			return &DuplicateError{What: what, ID: id, First: first, Second: i}
		}
		seenID[id] = i
	}
	return nil
}

// diagnose names the field of raw that made decodeFrom fail with err: each member is
// decoded alone into a fresh record, and the first that fails is the culprit. It runs
// on the error path only.
func diagnose[T any, P model[T]](what string, i int, raw json.RawMessage, err error) error {
	var members map[string]json.RawMessage
	if firstByte(raw) != '{' || json.Unmarshal(raw, &members) != nil {
		return newRecordError(what, i, 0, raw, "", "want a JSON object", err)
	}
	id := int64(0)
	if v, ok := members["id"]; ok {
		if n, perr := parseInteger(bytes.TrimSpace(v)); perr == nil && n > 0 {
			id = n
		}
	}
	names := make([]string, 0, len(members))
	for k := range members {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		one := append(appendJSONString([]byte{'{'}, name), ':')
		one = append(append(one, members[name]...), '}')
		var v T
		if ferr := P(&v).decodeFrom(json.NewDecoder(bytes.NewReader(one))); ferr != nil {
			return newRecordError(what, i, id, raw, name, unwrapMessage(ferr), ferr)
		}
	}
	return newRecordError(what, i, id, raw, "", unwrapMessage(err), err)
}

// unwrapMessage is a decoding error's text without encoding/json's Go type names.
func unwrapMessage(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return "want a JSON " + jsonKind(te.Type.Kind().String()) + ", got " + te.Value
	}
	return err.Error()
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "string"
	case "bool":
		return "boolean"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	}
	return "number"
}

func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s)
	return append(b, q...)
}

// RecordError says a record of a 2xx answer is impossible: a field the API cannot have
// sent that way (an id that is missing, null, not an integer or not positive; a job
// status that is missing, null or empty; a date that is not yyyy-MM-dd; an epoch time
// that is not a whole, non-negative number) or a record that names another parent than
// the one listed (a stream of workspace 6 in the listing of workspace 5). The answer is
// refused whole: none of its records is returned.
type RecordError struct {
	What  string // the list or record, e.g. "data streams"
	Index int    // 0-based position of the record in the answer; -1 for a one-record answer
	ID    int64  // the record's id when it has a usable one, else 0
	Field string // JSON name of the offending field; "" when it cannot be told
	// Value is the offending value as JSON text, as sent (null, "", -5, "abc"), clipped,
	// with any token removed; "" when the field is absent.
	Value  string
	Reason string
	Err    error // the decoding error, when a field's type refused the value

	raw []byte // the value's first bytes, for the transport to scrub tokens from
}

// recordValueBytes is how much of an offending value a RecordError keeps: enough that a
// token in the first recordValueClip bytes is whole and can be scrubbed before the cut.
const (
	recordValueBytes = 512
	recordValueClip  = 80
)

func newRecordError(what string, i int, id int64, record json.RawMessage, field, reason string, err error) *RecordError {
	e := &RecordError{What: what, Index: i, ID: id, Field: field, Reason: reason, Err: err}
	if field != "" {
		var members map[string]json.RawMessage
		if json.Unmarshal(record, &members) == nil {
			if v, ok := members[field]; ok {
				e.raw = bytes.Clone(v[:min(len(v), recordValueBytes)])
				e.Value = clean(string(e.raw), recordValueClip)
			}
		}
	}
	return e
}

// scrub removes tokens from Value, for the transport that knows them.
func (e *RecordError) scrub(tokens ...string) {
	if e.raw != nil {
		e.Value = clean(string(e.raw), recordValueClip, tokens...)
	}
}

func (e *RecordError) Error() string {
	s := e.What + ": "
	if e.Index >= 0 {
		s += "record at index " + strconv.Itoa(e.Index)
	} else {
		s += "the record"
	}
	if e.ID > 0 {
		s += " (id " + strconv.FormatInt(e.ID, 10) + ")"
	}
	switch {
	case e.Field != "" && e.Value == "":
		s += ": field " + e.Field + " is missing"
	case e.Field != "":
		s += ": field " + e.Field + " is " + e.Value
	}
	return s + ": " + e.Reason
}

func (e *RecordError) Unwrap() error { return e.Err }

// DuplicateError says a list answer holds two records under one id (or, for dimensions
// and measurements, one system name): an API bug, a proxy or a race. One of them hides
// another record, so the list is no evidence of what exists and is refused whole.
type DuplicateError struct {
	What          string
	ID            int64  // the repeated id; 0 when Key is set
	Key           string // the repeated system name of a dimension or measurement
	First, Second int    // 0-based indexes of the two records
}

func (e *DuplicateError) Error() string {
	k := "id " + strconv.FormatInt(e.ID, 10)
	if e.Key != "" {
		k = "system name " + strconv.Quote(e.Key)
	}
	return fmt.Sprintf("%s: %s at index %d repeats the record at index %d", e.What, k, e.Second, e.First)
}

// refused reports whether err is an answer the decoders refused for its content (an
// impossible record or a repeated id), as opposed to one that could not be read.
func refused(err error) bool {
	var re *RecordError
	var de *DuplicateError
	return errors.As(err, &re) || errors.As(err, &de)
}

// decodeValue decodes one JSON object into T with encoding/json (the Query API's
// answers, which have no records of their own).
func decodeValue[T any](body []byte, what string) (*T, error) {
	switch firstByte(body) {
	case '{':
	case 0:
		return nil, fmt.Errorf("%s: %w", what, errEmptyAnswer)
	default:
		return nil, fmt.Errorf("%s: want a JSON object, got %s", what, truncate(bytes.TrimSpace(body), 20))
	}
	out := new(T)
	if err := json.Unmarshal(body, out); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// decodeValues decodes a JSON array into []T with encoding/json.
func decodeValues[T any](body []byte, what string) ([]T, error) {
	switch firstByte(body) {
	case '[':
	case 0:
		return nil, fmt.Errorf("%s: %w", what, errEmptyAnswer)
	default:
		return nil, fmt.Errorf("%s: want a JSON array, got %s", what, truncate(bytes.TrimSpace(body), 20))
	}
	var out []T
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if out == nil {
		out = []T{}
	}
	return out, nil
}

// decodeFields decodes dimensions or measurements. The API answers an object keyed by
// system name (facts file §9); an array of field objects is accepted too, since the
// un-parameterised shape is unknown. The result is sorted by SystemName. A value
// without its own systemName takes the key; one whose systemName differs from its key
// is impossible, and a system name that appears twice is a *DuplicateError.
func decodeFields(body []byte, what string) ([]Field, error) {
	var out []Field
	switch firstByte(body) {
	case '{':
		dec := json.NewDecoder(bytes.NewReader(body))
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		seen := map[string]int{}
		for i := 0; dec.More(); i++ {
			tok, err := dec.Token()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", what, err)
			}
			name, _ := tok.(string)
			start := dec.InputOffset()
			var f Field
			err = f.decodeFrom(dec)
			raw := valueAt(body, start, dec.InputOffset())
			if err != nil {
				var se *json.SyntaxError
				if errors.As(err, &se) || raw == nil {
					return nil, fmt.Errorf("%s: %w", what, err)
				}
				return nil, diagnose[Field](what, i, raw, err)
			}
			f.Raw = raw
			switch {
			case f.SystemName == "":
				f.SystemName = name
			case f.SystemName != name:
				return nil, newRecordError(what, i, 0, raw, "systemName", "differs from the key "+strconv.Quote(clean(name, 60))+" it is listed under", nil)
			}
			if first, dup := seen[name]; dup {
				return nil, &DuplicateError{What: what, Key: name, First: first, Second: i}
			}
			seen[name] = i
			out = append(out, f)
		}
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if err := trailing(body, dec); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	case '[':
		list, err := decodeRecords[Field](body, what, nil)
		if err != nil {
			return nil, err
		}
		out = list
	case 0:
		return nil, fmt.Errorf("%s: %w", what, errEmptyAnswer)
	default:
		return nil, fmt.Errorf("%s: want a JSON object, got %s", what, truncate(bytes.TrimSpace(body), 20))
	}
	for i, f := range out {
		if f.SystemName == "" {
			return nil, newRecordError(what, i, 0, f.Raw, "systemName", "a field needs a system name", nil)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SystemName < out[j].SystemName })
	return out, nil
}

// decodeMapping keeps a mapping object as sent. Its layout is unknown (facts file §6),
// so only two things can be impossible in it: a member name that appears twice at the
// top level (the object then means different things to different readers), and a
// dataStreamId naming another stream than the one asked for.
func decodeMapping(body []byte, streamID int64) (*Mapping, error) {
	const what = "mapping"
	if firstByte(body) != '{' {
		if firstByte(body) == 0 {
			return nil, fmt.Errorf("%s: %w", what, errEmptyAnswer)
		}
		return nil, fmt.Errorf("%s: want a JSON object, got %s", what, truncate(bytes.TrimSpace(body), 20))
	}
	if !json.Valid(body) {
		return nil, errors.New("mapping: malformed JSON")
	}
	raw := json.RawMessage(bytes.TrimSpace(body))
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	seen := map[string]int{}
	for i := 0; dec.More(); i++ {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		name, _ := tok.(string)
		if first, dup := seen[name]; dup {
			return nil, &DuplicateError{What: "mapping of stream " + strconv.FormatInt(streamID, 10), Key: name, First: first, Second: i}
		}
		seen[name] = i
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if name == "dataStreamId" && string(v) != "null" {
			id, err := parseInteger(v)
			if err != nil || id != streamID {
				return nil, newRecordError(what, -1, 0, raw, "dataStreamId", "names another stream than "+strconv.FormatInt(streamID, 10), nil)
			}
		}
	}
	return &Mapping{StreamID: streamID, Raw: raw[:len(raw):len(raw)]}, nil
}

// The record types' wire forms. Each shadows its id with a FlexInt64 (an id sent as a
// numeric string decodes too) and is otherwise the type itself.

type (
	workspacePlain  Workspace
	streamPlain     Stream
	statusPlain     StreamStatus
	jobPlain        Job
	fieldPlain      Field
	harmonizedPlain HarmonizedDimension
	patternPlain    Pattern
	calcPlain       CalculatedMeasurement
	connectorPlain  Connector
	hierarchyPlain  DashboardHierarchy
)

func (w *Workspace) decodeFrom(dec *json.Decoder) error {
	aux := struct {
		*workspacePlain
		ID FlexInt64 `json:"id"`
	}{workspacePlain: (*workspacePlain)(w)}
	err := dec.Decode(&aux)
	w.ID = int64(aux.ID)
	return err
}

func (s *Stream) decodeFrom(dec *json.Decoder) error {
	aux := struct {
		*streamPlain
		ID FlexInt64 `json:"id"`
	}{streamPlain: (*streamPlain)(s)}
	err := dec.Decode(&aux)
	s.ID = int64(aux.ID)
	return err
}

func (s *StreamStatus) decodeFrom(dec *json.Decoder) error {
	aux := struct {
		*statusPlain
		ID FlexInt64 `json:"id"`
	}{statusPlain: (*statusPlain)(s)}
	err := dec.Decode(&aux)
	s.ID = int64(aux.ID)
	return err
}

func (j *Job) decodeFrom(dec *json.Decoder) error {
	aux := struct {
		*jobPlain
		ID FlexInt64 `json:"id"`
	}{jobPlain: (*jobPlain)(j)}
	err := dec.Decode(&aux)
	j.ID = int64(aux.ID)
	return err
}

func (f *Field) decodeFrom(dec *json.Decoder) error { return dec.Decode((*fieldPlain)(f)) }

func (h *HarmonizedDimension) decodeFrom(dec *json.Decoder) error {
	aux := struct {
		*harmonizedPlain
		ID FlexInt64 `json:"id"`
	}{harmonizedPlain: (*harmonizedPlain)(h)}
	err := dec.Decode(&aux)
	h.ID = int64(aux.ID)
	return err
}

func (p *Pattern) decodeFrom(dec *json.Decoder) error {
	aux := struct {
		*patternPlain
		ID FlexInt64 `json:"id"`
	}{patternPlain: (*patternPlain)(p)}
	err := dec.Decode(&aux)
	p.ID = int64(aux.ID)
	return err
}

func (c *CalculatedMeasurement) decodeFrom(dec *json.Decoder) error {
	aux := struct {
		*calcPlain
		ID FlexInt64 `json:"id"`
	}{calcPlain: (*calcPlain)(c)}
	err := dec.Decode(&aux)
	c.ID = int64(aux.ID)
	return err
}

func (c *Connector) decodeFrom(dec *json.Decoder) error {
	aux := struct {
		*connectorPlain
		ID FlexInt64 `json:"id"`
	}{connectorPlain: (*connectorPlain)(c)}
	err := dec.Decode(&aux)
	c.ID = int64(aux.ID)
	return err
}

func (d *DashboardHierarchy) decodeFrom(dec *json.Decoder) error {
	return dec.Decode((*hierarchyPlain)(d))
}

func (w *Workspace) setRaw(r json.RawMessage)             { w.Raw = r }
func (s *Stream) setRaw(r json.RawMessage)                { s.Raw = r }
func (s *StreamStatus) setRaw(r json.RawMessage)          { s.Raw = r }
func (j *Job) setRaw(r json.RawMessage)                   { j.Raw = r }
func (f *Field) setRaw(r json.RawMessage)                 { f.Raw = r }
func (h *HarmonizedDimension) setRaw(r json.RawMessage)   { h.Raw = r }
func (p *Pattern) setRaw(r json.RawMessage)               { p.Raw = r }
func (c *CalculatedMeasurement) setRaw(r json.RawMessage) { c.Raw = r }
func (c *Connector) setRaw(r json.RawMessage)             { c.Raw = r }
func (d *DashboardHierarchy) setRaw(r json.RawMessage)    { d.Raw = r }

func (w *Workspace) key() (int64, string)             { return w.ID, "" }
func (s *Stream) key() (int64, string)                { return s.ID, "" }
func (s *StreamStatus) key() (int64, string)          { return s.ID, "" }
func (j *Job) key() (int64, string)                   { return j.ID, "" }
func (f *Field) key() (int64, string)                 { return 0, f.SystemName }
func (h *HarmonizedDimension) key() (int64, string)   { return h.ID, "" }
func (p *Pattern) key() (int64, string)               { return p.ID, "" }
func (c *CalculatedMeasurement) key() (int64, string) { return c.ID, "" }
func (c *Connector) key() (int64, string)             { return c.ID, "" }
func (d *DashboardHierarchy) key() (int64, string)    { return 0, "" }

// unmarshalModel is every model's UnmarshalJSON: the record's typed fields from b, and
// a private copy of b in Raw (b belongs to the caller). It checks types only; the
// impossibilities of a listed record are the list decoders' to judge.
func unmarshalModel[T any, P model[T]](v *T, b []byte, what string) error {
	if t := bytes.TrimSpace(b); len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("decoding %s: want a JSON object, got %s", what, truncate(t, 40))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := P(v).decodeFrom(dec); err != nil {
		return fmt.Errorf("decoding %s: %w", what, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("decoding %s: garbage after the object", what)
	}
	P(v).setRaw(append(json.RawMessage(nil), b...))
	return nil
}

// Checks of the records that name their parent: a record listed under a parent must
// not name another one. A record that names none (null or absent) is taken as the
// parent's.

func jobOf(streamID int64) checker[Job] {
	return func(j *Job) (string, string) {
		if j.Status == "" {
			return "status", "a job needs a status"
		}
		if streamID != 0 && j.DataStreamID != 0 && int64(j.DataStreamID) != streamID {
			return "dataStreamId", "names another stream than " + strconv.FormatInt(streamID, 10) + ", whose jobs were asked for"
		}
		return "", ""
	}
}

// jobAnswer is the check of a job answered by a call that named it (GET one stat).
func jobAnswer(jobID int64) checker[Job] {
	return func(j *Job) (string, string) {
		if f, r := jobOf(0)(j); f != "" {
			return f, r
		}
		if jobID != 0 && j.ID != jobID {
			return "id", "is not the job asked for (" + strconv.FormatInt(jobID, 10) + ")"
		}
		return "", ""
	}
}

func streamIn(wsID, streamID int64) checker[Stream] {
	return func(s *Stream) (string, string) {
		if wsID != 0 && s.WorkspaceID != 0 && int64(s.WorkspaceID) != wsID {
			return "workspaceId", "names another workspace than " + strconv.FormatInt(wsID, 10) + ", whose streams were asked for"
		}
		if streamID != 0 && s.ID != streamID {
			return "id", "is not the stream asked for (" + strconv.FormatInt(streamID, 10) + ")"
		}
		return "", ""
	}
}

func workspaceAnswer(wsID int64) checker[Workspace] {
	return func(w *Workspace) (string, string) {
		if wsID != 0 && w.ID != wsID {
			return "id", "is not the workspace asked for (" + strconv.FormatInt(wsID, 10) + ")"
		}
		return "", ""
	}
}

func connectorAnswer(id int64) checker[Connector] {
	return func(c *Connector) (string, string) {
		if c.ID != id {
			return "id", "is not the connector asked for (" + strconv.FormatInt(id, 10) + ")"
		}
		return "", ""
	}
}

// inWorkspace checks the workspaceId of the workspace-level lists.
func inWorkspace[T any](wsID int64, of func(*T) FlexInt64) checker[T] {
	return func(v *T) (string, string) {
		if ws := int64(of(v)); ws != 0 && ws != wsID {
			return "workspaceId", "names another workspace than " + strconv.FormatInt(wsID, 10) + ", whose list was asked for"
		}
		return "", ""
	}
}
