package datorama

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// The decoders below are the only way an answer becomes a result. They are strict where
// strictness protects the store: a body that is empty, null, of the wrong JSON type,
// truncated, followed by garbage, or holding a record without its id is an error, never
// a shorter or half-filled result. They are lenient where the facts file leaves a shape
// open (ids as strings, lastRunStatus as bool or string, unknown fields kept in Raw).

var errEmptyAnswer = errors.New("empty answer")

// firstByte is the first non-space byte of b, or 0.
func firstByte(b []byte) byte {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// decodeList decodes a JSON array of records. idOf, when set, must give a positive id
// for every record.
func decodeList[T any](body []byte, what string, idOf func(*T) int64) ([]T, error) {
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
	if idOf != nil {
		for i := range out {
			if idOf(&out[i]) <= 0 {
				return nil, fmt.Errorf("%s: record %d has no id", what, i)
			}
		}
	}
	return out, nil
}

// decodeOne decodes one JSON object record.
func decodeOne[T any](body []byte, what string, idOf func(*T) int64) (*T, error) {
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
	if idOf != nil && idOf(out) <= 0 {
		return nil, fmt.Errorf("%s: record has no id", what)
	}
	return out, nil
}

// decodeOneOrList decodes an answer that is either one object or an array holding
// exactly one, as the workspace-scoped stream GET may be (facts file §6).
func decodeOneOrList[T any](body []byte, what string, idOf func(*T) int64) (*T, error) {
	if firstByte(body) != '[' {
		return decodeOne(body, what, idOf)
	}
	list, err := decodeList(body, what, idOf)
	if err != nil {
		return nil, err
	}
	if len(list) != 1 {
		return nil, fmt.Errorf("%s: want one record, got %d", what, len(list))
	}
	return &list[0], nil
}

// decodeListOrOne decodes an array of records, or a single object as a list of one.
// It serves answers the facts file marks as "array [I]" where one source read an object
// (rerun).
func decodeListOrOne[T any](body []byte, what string, idOf func(*T) int64) ([]T, error) {
	if firstByte(body) == '{' {
		one, err := decodeOne(body, what, idOf)
		if err != nil {
			return nil, err
		}
		return []T{*one}, nil
	}
	return decodeList(body, what, idOf)
}

func idOfJob(j *Job) int64                        { return j.ID }
func idOfStream(s *Stream) int64                  { return s.ID }
func idOfWorkspace(w *Workspace) int64            { return w.ID }
func idOfStatus(s *StreamStatus) int64            { return s.ID }
func idOfConnector(c *Connector) int64            { return c.ID }
func idOfHarmonized(h *HarmonizedDimension) int64 { return h.ID }
func idOfPattern(p *Pattern) int64                { return p.ID }
func idOfCalc(m *CalculatedMeasurement) int64     { return m.ID }

// decodeFields decodes dimensions or measurements. The API answers an object keyed by
// system name (facts file §9); an array of field objects is accepted too, since the
// un-parameterised shape is unknown. The result is sorted by SystemName; a value
// without its own systemName takes the key.
func decodeFields(body []byte, what string) ([]Field, error) {
	var out []Field
	switch firstByte(body) {
	case '{':
		var m map[string]Field
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = make([]Field, 0, len(m))
		for k, f := range m {
			if f.SystemName == "" {
				f.SystemName = k
			}
			out = append(out, f)
		}
	case '[':
		list, err := decodeList[Field](body, what, nil)
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
			return nil, fmt.Errorf("%s: field %d has no system name", what, i)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].SystemName < out[j].SystemName })
	return out, nil
}

// decodeMapping keeps a mapping object as sent.
func decodeMapping(body []byte, streamID int64) (*Mapping, error) {
	if firstByte(body) != '{' {
		if firstByte(body) == 0 {
			return nil, fmt.Errorf("mapping: %w", errEmptyAnswer)
		}
		return nil, fmt.Errorf("mapping: want a JSON object, got %s", truncate(bytes.TrimSpace(body), 20))
	}
	if !json.Valid(body) {
		return nil, errors.New("mapping: malformed JSON")
	}
	return &Mapping{StreamID: streamID, Raw: append(json.RawMessage(nil), bytes.TrimSpace(body)...)}, nil
}
