package datorama

import (
	"context"
	"fmt"
	"net/http"
)

// List returns every workspace the token may see, in the API's order. The API does not
// page this list.
//
// Datorama API: GET /v1/workspaces
func (s *WorkspacesService) List(ctx context.Context) ([]Workspace, error) {
	var out []Workspace
	cl := &call{kind: Platform, method: http.MethodGet, route: newRoute("/v1/workspaces"), idempotent: true}
	err := s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeRecords[Workspace](b, "workspaces", nil)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing workspaces: %w", err)
	}
	return out, nil
}

// Get returns one workspace; IsNotFound/IsForbidden tell a missing one from a hidden one.
//
// Datorama API: GET /v1/workspaces/{wsId}
func (s *WorkspacesService) Get(ctx context.Context, id int64) (*Workspace, error) {
	var out *Workspace
	cl := &call{kind: Platform, method: http.MethodGet, route: newRoute("/v1/workspaces/{wsId}", id), idempotent: true}
	err := s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeRecord(b, "workspace", workspaceAnswer(id))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("getting workspace %d: %w", id, err)
	}
	return out, nil
}
