package convert

import (
	"github.com/drextract/drextract/datorama"
	"github.com/drextract/drextract/load"
)

// Workspace converts one workspace of the workspace list.
func Workspace(w *datorama.Workspace) load.WorkspaceRow {
	return load.WorkspaceRow{
		ID:         w.ID,
		Name:       w.Name,
		AccountID:  int64(w.AccountID),
		CreateTime: w.CreateTime.Time,
		UpdateTime: w.UpdateTime.Time,
		Raw:        w.Raw,
	}
}

// Stream converts a stream listed (or answered) under workspace wsID; wsID is used when
// the record does not name its workspace.
func Stream(wsID int64, s *datorama.Stream) load.StreamRow {
	ws := orWorkspace(s.WorkspaceID, wsID)
	return load.StreamRow{
		ID:                s.ID,
		WorkspaceID:       ws,
		Name:              s.Name,
		DataSourceID:      int64(s.DataSourceID),
		DataSourceName:    s.DataSourceName,
		Enabled:           s.Enabled,
		HasData:           s.HasData,
		LastRunStatus:     s.LastRunStatus.Text(),
		LastRunFailed:     s.LastRunStatus.Failed(),
		LastRowsRetrieved: int64(s.LastRowsRetrieved),
		ProcessedRows:     int64(s.ProcessedRows),
		LastDataDate:      s.LastDataDate.Time,
		LastUpdate:        s.LastUpdate.Time,
		CreateTime:        s.CreateTime.Time,
		UpdateTime:        s.UpdateTime.Time,
		Raw:               s.Raw,
	}
}

// Job converts a job of stream streamID in workspace wsID, read from the stream's stats or
// answered by a call that created it.
func Job(wsID, streamID int64, j *datorama.Job) load.JobRow {
	return load.JobRow{
		ID:                 j.ID,
		StreamID:           streamID,
		WorkspaceID:        wsID,
		Status:             j.Status,
		StatusReason:       j.StatusReason,
		DataStartDate:      j.DataStartDate.Time,
		DataEndDate:        j.DataEndDate.Time,
		StartExecutionTime: j.StartExecutionTime.Time,
		EndExecutionTime:   j.EndExecutionTime.Time,
		UserID:             int64(j.UserID),
		Raw:                j.Raw,
	}
}

// Mapping converts the mapping of stream streamID in workspace wsID.
func Mapping(wsID, streamID int64, m *datorama.Mapping) load.MappingRow {
	return load.MappingRow{StreamID: streamID, WorkspaceID: wsID, Raw: m.Raw}
}

// Fields converts a workspace's dimensions or measurements.
func Fields(wsID int64, fs []datorama.Field) []load.FieldRow {
	out := make([]load.FieldRow, len(fs))
	for i := range fs {
		out[i] = load.FieldRow{WorkspaceID: wsID, SystemName: fs[i].SystemName, DisplayName: fs[i].DisplayName, Raw: fs[i].Raw}
	}
	return out
}

// HarmonizedDimensions converts a workspace's harmonized dimensions.
func HarmonizedDimensions(wsID int64, hs []datorama.HarmonizedDimension) []load.HarmonizedDimensionRow {
	out := make([]load.HarmonizedDimensionRow, len(hs))
	for i := range hs {
		out[i] = load.HarmonizedDimensionRow{
			ID: hs[i].ID, WorkspaceID: orWorkspace(hs[i].WorkspaceID, wsID), Name: hs[i].Name,
			UpdateTime: hs[i].UpdateTime.Time, Raw: hs[i].Raw,
		}
	}
	return out
}

// Patterns converts a workspace's patterns.
func Patterns(wsID int64, ps []datorama.Pattern) []load.PatternRow {
	out := make([]load.PatternRow, len(ps))
	for i := range ps {
		out[i] = load.PatternRow{
			ID: ps[i].ID, WorkspaceID: orWorkspace(ps[i].WorkspaceID, wsID),
			HarmonizedDimensionID: int64(ps[i].HarmonizedDimensionID), Name: ps[i].Name,
			UpdateTime: ps[i].UpdateTime.Time, Raw: ps[i].Raw,
		}
	}
	return out
}

// CalculatedMeasurements converts a workspace's calculated measurements.
func CalculatedMeasurements(wsID int64, cs []datorama.CalculatedMeasurement) []load.CalculatedMeasurementRow {
	out := make([]load.CalculatedMeasurementRow, len(cs))
	for i := range cs {
		out[i] = load.CalculatedMeasurementRow{
			ID: cs[i].ID, WorkspaceID: orWorkspace(cs[i].WorkspaceID, wsID), Name: cs[i].Name,
			Formula: cs[i].Formula, UpdateTime: cs[i].UpdateTime.Time, Raw: cs[i].Raw,
		}
	}
	return out
}

// orWorkspace is the record's workspace, or the listing's when the record names none.
func orWorkspace(v datorama.FlexInt64, wsID int64) int64 {
	if v != 0 {
		return int64(v)
	}
	return wsID
}
