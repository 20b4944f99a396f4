package sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"
)

// TestNoDuplicateKeys: no object the simulator answers repeats a key. Most decoders
// keep the last value silently, but strict ones (encoding/json/v2 by default) refuse
// the document, and the real API never sends one.
func TestNoDuplicateKeys(t *testing.T) {
	h := newHarness(t, Options{Workspaces: 2, Streams: 20, JobsPerStream: 5})
	var wss []struct {
		ID int64 `json:"id"`
	}
	r := h.do("GET", "/v1/workspaces", nil)
	h.ok(r, 200, &wss)
	bodies := map[string][]byte{"/v1/workspaces": r.body}
	for _, ws := range wss {
		for _, p := range []string{"/v1/workspaces/%d", "/v1/workspaces/%d/data-streams"} {
			path := fmt.Sprintf(p, ws.ID)
			r := h.do("GET", path, nil)
			h.ok(r, 200, nil)
			bodies[path] = r.body
		}
	}
	tr := h.sim.Truth()
	for what, list := range map[string][]json.RawMessage{"truth workspaces": tr.Workspaces, "truth streams": tr.Streams, "truth jobs": tr.Jobs} {
		for i, raw := range list {
			bodies[fmt.Sprintf("%s[%d]", what, i)] = raw
		}
	}
	for what, m := range map[string]map[string]json.RawMessage{"mappings": tr.Mappings, "dimensions": tr.Dimensions,
		"harmonized dimensions": tr.HarmonizedDimensions, "patterns": tr.Patterns, "calculated measurements": tr.CalculatedMeasurements} {
		for k, raw := range m {
			bodies[what+" "+k] = raw
		}
	}
	for what, b := range bodies {
		if err := duplicateKey(b); err != nil {
			t.Errorf("%s: %v", what, err)
		}
	}
}

// duplicateKey reports the first object in the JSON document b that repeats a key.
func duplicateKey(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			keys := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return err
				}
				if keys[k.(string)] {
					return fmt.Errorf("key %q twice in one object", k)
				}
				keys[k.(string)] = true
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token() // '}'
			return err
		case json.Delim('['):
			for dec.More() {
				if err := walk(); err != nil {
					return err
				}
			}
			_, err = dec.Token() // ']'
			return err
		}
		return nil
	}
	if err := walk(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
