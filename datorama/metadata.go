package datorama

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// Dimensions returns a workspace's dimensions sorted by system name. typ is sent as the
// "type" query parameter when not empty (the one source passes "dimensionType").
//
// Datorama API: GET /v1/workspaces/{wsId}/dimensions
func (s *MetadataService) Dimensions(ctx context.Context, wsID int64, typ string) ([]Field, error) {
	out, err := s.fields(ctx, newRoute("/v1/workspaces/{wsId}/dimensions", wsID), typ, "dimensions")
	if err != nil {
		return nil, fmt.Errorf("listing dimensions of workspace %d: %w", wsID, err)
	}
	return out, nil
}

// Measurements returns a workspace's measurements sorted by system name; typ as for
// Dimensions.
//
// Datorama API: GET /v1/workspaces/{wsId}/measurements
func (s *MetadataService) Measurements(ctx context.Context, wsID int64, typ string) ([]Field, error) {
	out, err := s.fields(ctx, newRoute("/v1/workspaces/{wsId}/measurements", wsID), typ, "measurements")
	if err != nil {
		return nil, fmt.Errorf("listing measurements of workspace %d: %w", wsID, err)
	}
	return out, nil
}

func (s *MetadataService) fields(ctx context.Context, r route, typ, what string) ([]Field, error) {
	var q url.Values
	if typ != "" {
		q = url.Values{"type": {typ}}
	}
	var out []Field
	cl := &call{kind: Platform, method: http.MethodGet, route: r, query: q, idempotent: true}
	err := s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeFields(b, what)
		return err
	})
	return out, err
}

// HarmonizedDimensions returns a workspace's harmonized dimensions.
//
// Datorama API: GET /v1/workspaces/{wsId}/harmonized-dimensions
func (s *MetadataService) HarmonizedDimensions(ctx context.Context, wsID int64) ([]HarmonizedDimension, error) {
	var out []HarmonizedDimension
	cl := &call{kind: Platform, method: http.MethodGet, route: newRoute("/v1/workspaces/{wsId}/harmonized-dimensions", wsID), idempotent: true}
	err := s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeRecords(b, "harmonized dimensions", inWorkspace(wsID, func(h *HarmonizedDimension) FlexInt64 { return h.WorkspaceID }))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing harmonized dimensions of workspace %d: %w", wsID, err)
	}
	return out, nil
}

// Patterns returns a workspace's harmonization patterns.
//
// Datorama API: GET /v1/workspaces/{wsId}/patterns
func (s *MetadataService) Patterns(ctx context.Context, wsID int64) ([]Pattern, error) {
	var out []Pattern
	cl := &call{kind: Platform, method: http.MethodGet, route: newRoute("/v1/workspaces/{wsId}/patterns", wsID), idempotent: true}
	err := s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeRecords(b, "patterns", inWorkspace(wsID, func(p *Pattern) FlexInt64 { return p.WorkspaceID }))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing patterns of workspace %d: %w", wsID, err)
	}
	return out, nil
}

// CreatePattern creates a harmonization pattern from body (which names its workspace
// and harmonized dimension) and returns it as created. Not idempotent.
//
// Datorama API: POST /v1/harmonization/patterns
func (s *MetadataService) CreatePattern(ctx context.Context, body any) (*Pattern, error) {
	b, err := marshalBody(body)
	if err != nil {
		return nil, fmt.Errorf("creating pattern: %w", err)
	}
	var out *Pattern
	cl := &call{kind: Platform, method: http.MethodPost, route: newRoute("/v1/harmonization/patterns"), body: b}
	err = s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeRecord[Pattern](b, "created pattern", nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating pattern: %w", err)
	}
	return out, nil
}

// CalculatedMeasurements returns a workspace's calculated measurements.
//
// Datorama API: GET /v1/workspaces/{wsId}/calculated-measurements
func (s *MetadataService) CalculatedMeasurements(ctx context.Context, wsID int64) ([]CalculatedMeasurement, error) {
	var out []CalculatedMeasurement
	cl := &call{kind: Platform, method: http.MethodGet, route: newRoute("/v1/workspaces/{wsId}/calculated-measurements", wsID), idempotent: true}
	err := s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeRecords(b, "calculated measurements", inWorkspace(wsID, func(m *CalculatedMeasurement) FlexInt64 { return m.WorkspaceID }))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing calculated measurements of workspace %d: %w", wsID, err)
	}
	return out, nil
}

// CreateCalculatedMeasurement creates a calculated measurement in a workspace from body
// and returns it as created. Not idempotent.
//
// Datorama API: POST /v1/workspaces/{wsId}/calculated-measurements
func (s *MetadataService) CreateCalculatedMeasurement(ctx context.Context, wsID int64, body any) (*CalculatedMeasurement, error) {
	b, err := marshalBody(body)
	if err != nil {
		return nil, fmt.Errorf("creating a calculated measurement in workspace %d: %w", wsID, err)
	}
	var out *CalculatedMeasurement
	cl := &call{kind: Platform, method: http.MethodPost, route: newRoute("/v1/workspaces/{wsId}/calculated-measurements", wsID), body: b}
	err = s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeRecord(b, "created calculated measurement", inWorkspace(wsID, func(m *CalculatedMeasurement) FlexInt64 { return m.WorkspaceID }))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("creating a calculated measurement in workspace %d: %w", wsID, err)
	}
	return out, nil
}
