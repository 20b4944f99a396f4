package datorama

import (
	"context"
	"fmt"
	"net/http"
)

// Get returns one connector (data source). Its shape is unknown beyond id and name;
// Raw keeps the rest.
//
// Datorama API: GET /v1/connectors/{id}
func (s *ConnectorsService) Get(ctx context.Context, id int64) (*Connector, error) {
	var out *Connector
	cl := &call{kind: Platform, method: http.MethodGet, route: newRoute("/v1/connectors/{id}", id), idempotent: true}
	err := s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeRecord[Connector](b, "connector", connectorAnswer(id))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("getting connector %d: %w", id, err)
	}
	return out, nil
}

// Hierarchy returns a workspace's dashboards, pages and widgets.
//
// Datorama API: GET /v1/workspaces/{wsId}/dashboards/hierarchy
func (s *DashboardsService) Hierarchy(ctx context.Context, wsID int64) (*DashboardHierarchy, error) {
	var out *DashboardHierarchy
	cl := &call{kind: Platform, method: http.MethodGet, route: newRoute("/v1/workspaces/{wsId}/dashboards/hierarchy", wsID), idempotent: true}
	err := s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeRecord[DashboardHierarchy](b, "dashboards hierarchy", nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("getting the dashboards hierarchy of workspace %d: %w", wsID, err)
	}
	return out, nil
}
