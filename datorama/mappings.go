package datorama

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// Get returns a stream's mapping as the API sent it (its layout is unknown, so only
// Raw carries it). The path is inferred (facts file §6, row 16).
//
// Datorama API: GET /v1/data-streams/api/{id}/mapping
func (s *MappingsService) Get(ctx context.Context, streamID int64) (*Mapping, error) {
	var out *Mapping
	cl := &call{kind: Platform, method: http.MethodGet, route: newRoute("/v1/data-streams/api/{id}/mapping", streamID), idempotent: true}
	err := s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeMapping(b, streamID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("getting mapping of stream %d: %w", streamID, err)
	}
	return out, nil
}

// Put replaces a stream's whole mapping with m, which must be a JSON object, and
// returns the mapping as answered, or nil when the API answered without a body.
//
// Datorama API: PUT /v1/data-streams/api/{id}/mapping
func (s *MappingsService) Put(ctx context.Context, streamID int64, m json.RawMessage) (*Mapping, error) {
	if firstByte(m) != '{' || !json.Valid(m) {
		return nil, fmt.Errorf("replacing mapping of stream %d: the mapping must be a JSON object", streamID)
	}
	var out *Mapping
	cl := &call{kind: Platform, method: http.MethodPut, route: newRoute("/v1/data-streams/api/{id}/mapping", streamID), body: m, idempotent: true}
	err := s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		if firstByte(b) == 0 {
			return nil
		}
		out, err = decodeMapping(b, streamID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("replacing mapping of stream %d: %w", streamID, err)
	}
	return out, nil
}
