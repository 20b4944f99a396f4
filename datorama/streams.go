package datorama

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// BulkStatusChunk is how many stream ids one bulk status request carries; longer lists
// are split. The API's own limit is unknown (facts file §6), and 100 seven-digit ids
// keep the URL under a kilobyte.
const BulkStatusChunk = 100

// List returns every stream of a workspace, with their last-run fields; it is the cheap
// change detector for a crawl. The API does not page this list.
//
// Datorama API: GET /v1/workspaces/{wsId}/data-streams
func (s *StreamsService) List(ctx context.Context, wsID int64) ([]Stream, error) {
	var out []Stream
	cl := &call{kind: Platform, method: http.MethodGet, route: newRoute("/v1/workspaces/{wsId}/data-streams", wsID), idempotent: true}
	err := s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeRecords(b, "data streams", streamIn(wsID, 0))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing streams of workspace %d: %w", wsID, err)
	}
	return out, nil
}

// Get returns one stream.
//
// Datorama API: GET /v1/data-streams/{id}
func (s *StreamsService) Get(ctx context.Context, id int64) (*Stream, error) {
	var out *Stream
	cl := &call{kind: Platform, method: http.MethodGet, route: newRoute("/v1/data-streams/{id}", id), idempotent: true}
	err := s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeRecord(b, "data stream", streamIn(0, id))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("getting stream %d: %w", id, err)
	}
	return out, nil
}

// GetInWorkspace returns one stream through the workspace-scoped path, which one
// source answered with either an object or a one-element array; both are accepted.
//
// Datorama API: GET /v1/workspaces/{wsId}/data-streams/{id}
func (s *StreamsService) GetInWorkspace(ctx context.Context, wsID, id int64) (*Stream, error) {
	var out *Stream
	cl := &call{kind: Platform, method: http.MethodGet, route: newRoute("/v1/workspaces/{wsId}/data-streams/{id}", wsID, id), idempotent: true}
	err := s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeRecordOrList(b, "data stream", streamIn(wsID, id))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("getting stream %d of workspace %d: %w", id, wsID, err)
	}
	return out, nil
}

// Create creates a stream from body (a full stream config, marshalled with
// encoding/json; a json.RawMessage passes through) and returns it as created, with its
// id. It is not idempotent: after an error matching ErrOutcomeUnknown the stream may
// exist, so the caller looks before creating again.
//
// Datorama API: POST /v1/data-streams
func (s *StreamsService) Create(ctx context.Context, body any) (*Stream, error) {
	b, err := marshalBody(body)
	if err != nil {
		return nil, fmt.Errorf("creating stream: %w", err)
	}
	var out *Stream
	cl := &call{kind: Platform, method: http.MethodPost, route: newRoute("/v1/data-streams"), body: b}
	err = s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeRecord[Stream](b, "created data stream", nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating stream: %w", err)
	}
	return out, nil
}

// Patch changes only the given fields of a stream, e.g. {"enabled": false}, and returns
// the stream as the API answered it, or nil when it answered without a body. Sending
// the same fields again is harmless, so it is retried like a read.
//
// Datorama API: PATCH /v1/data-streams/{id}
func (s *StreamsService) Patch(ctx context.Context, id int64, fields map[string]any) (*Stream, error) {
	if len(fields) == 0 {
		return nil, fmt.Errorf("patching stream %d: no fields", id)
	}
	b, err := marshalBody(fields)
	if err != nil {
		return nil, fmt.Errorf("patching stream %d: %w", id, err)
	}
	out, err := s.write(ctx, http.MethodPatch, id, b)
	if err != nil {
		return nil, fmt.Errorf("patching stream %d: %w", id, err)
	}
	return out, nil
}

// Put replaces a stream with body: every field not sent is cleared (facts file §6), so
// callers GET, change and PUT the whole record. Returns the stream as answered, or nil
// when the API answered without a body.
//
// Datorama API: PUT /v1/data-streams/{id}
func (s *StreamsService) Put(ctx context.Context, id int64, body any) (*Stream, error) {
	b, err := marshalBody(body)
	if err != nil {
		return nil, fmt.Errorf("replacing stream %d: %w", id, err)
	}
	out, err := s.write(ctx, http.MethodPut, id, b)
	if err != nil {
		return nil, fmt.Errorf("replacing stream %d: %w", id, err)
	}
	return out, nil
}

func (s *StreamsService) write(ctx context.Context, method string, id int64, body []byte) (*Stream, error) {
	var out *Stream
	cl := &call{kind: Platform, method: method, route: newRoute("/v1/data-streams/{id}", id), body: body, idempotent: true}
	err := s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		if firstByte(b) == 0 {
			return nil
		}
		out, err = decodeRecord(b, "data stream", streamIn(0, id))
		return err
	})
	return out, err
}

// Delete deletes a stream. A retried delete that finds the stream already gone counts
// as done; a first attempt answered 404 is an error (IsNotFound).
//
// Datorama API: DELETE /v1/data-streams/{id}
func (s *StreamsService) Delete(ctx context.Context, id int64) error {
	cl := &call{kind: Platform, method: http.MethodDelete, route: newRoute("/v1/data-streams/{id}", id), idempotent: true, goneOK: true}
	if err := s.c.doJSON(ctx, cl, func([]byte) error { return nil }); err != nil {
		return fmt.Errorf("deleting stream %d: %w", id, err)
	}
	return nil
}

// BulkStatus returns the latest run status and enabled state of many streams of one
// workspace, BulkStatusChunk ids per request, in the API's order within each chunk. An
// id the API does not answer for is simply absent. No ids, no request.
//
// Datorama API: GET /v1/workspaces/{wsId}/data-streams/status/bulk
func (s *StreamsService) BulkStatus(ctx context.Context, wsID int64, ids []int64) ([]StreamStatus, error) {
	var all []StreamStatus
	for start := 0; start < len(ids); start += BulkStatusChunk {
		chunk := ids[start:min(start+BulkStatusChunk, len(ids))]
		parts := make([]string, len(chunk))
		for i, id := range chunk {
			parts[i] = strconv.FormatInt(id, 10)
		}
		cl := &call{kind: Platform, method: http.MethodGet, route: newRoute("/v1/workspaces/{wsId}/data-streams/status/bulk", wsID),
			query: url.Values{"ids": {strings.Join(parts, ",")}}, idempotent: true, maxBody: pageBound(len(chunk), statusRecordCeiling)}
		var page []StreamStatus
		err := s.c.doJSON(ctx, cl, func(b []byte) (err error) {
			page, err = decodeRecords[StreamStatus](b, "stream statuses", nil)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("bulk status of %d streams of workspace %d: %w", len(chunk), wsID, err)
		}
		all = append(all, page...)
	}
	return all, nil
}

// marshalBody encodes a request body. A json.RawMessage or []byte must already be JSON.
func marshalBody(v any) ([]byte, error) {
	switch b := v.(type) {
	case nil:
		return nil, errors.New("no request body")
	case json.RawMessage:
		if !json.Valid(b) {
			return nil, errors.New("request body is not valid JSON")
		}
		return b, nil
	case []byte:
		if !json.Valid(b) {
			return nil, errors.New("request body is not valid JSON")
		}
		return b, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding request body: %w", err)
	}
	return b, nil
}
