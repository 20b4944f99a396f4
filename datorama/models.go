package datorama

import (
	"encoding/json"
)

// Every model keeps the record exactly as the API sent it in Raw, so a field the API adds
// later is never lost between the wire and the store. The typed fields are the ones the
// facts file (../shared/datorama-api.md) names; their types follow it.

// History holds the server-managed fields every platform entity carries.
type History struct {
	CreateUserID FlexInt64 `json:"createUserId"`
	CreateUser   string    `json:"createUser"`
	CreateTime   Timestamp `json:"createTime"`
	UpdateUserID FlexInt64 `json:"updateUserId"`
	UpdateUser   string    `json:"updateUser"`
	UpdateTime   Timestamp `json:"updateTime"`
}

// Workspace is one entry of GET /v1/workspaces.
type Workspace struct {
	ID                       int64             `json:"id"`
	Name                     string            `json:"name"`
	AccountID                FlexInt64         `json:"accountId"`
	VerticalID               FlexInt64         `json:"verticalId"`
	ColorSchemeID            FlexInt64         `json:"colorSchemeId"`
	CurrencyID               FlexInt64         `json:"currencyId"`
	AccountCurrencyID        FlexInt64         `json:"accountCurrencyId"`
	CultureID                FlexInt64         `json:"cultureId"`
	TimezoneID               FlexInt64         `json:"timezoneId"`
	DashboardThemeID         FlexInt64         `json:"dashboardThemeId"`
	SubWorkspaces            []json.RawMessage `json:"subWorkspaces"`
	VisibleBuckets           []json.RawMessage `json:"visibleBuckets"`
	CostCenterEnabled        bool              `json:"costCenterEnabled"`
	ExecutiveWorkspace       bool              `json:"executiveWorkspace"`
	CustomCalendarEnabled    bool              `json:"customCalendarEnabled"`
	CustomLocationEnabled    bool              `json:"customLocationEnabled"`
	ApplyBlindPeriods        bool              `json:"applyBlindPeriods"`
	ArchivingEnabled         bool              `json:"archivingEnabled"`
	LiteConnectEnabled       bool              `json:"liteConnectEnabled"`
	WorkflowsEnabled         bool              `json:"workflowsEnabled"`
	ActionCenterEnabled      bool              `json:"actionCenterEnabled"`
	BalanceBudgetToolEnabled bool              `json:"balanceBudgetToolEnabled"`
	HourlyProcessingAllowed  bool              `json:"hourlyProcessingAllowed"`
	History
	Raw json.RawMessage `json:"-"`
}

// Stream is a data stream, as listed by GET /v1/workspaces/{wsId}/data-streams.
type Stream struct {
	ID                         int64           `json:"id"`
	Name                       string          `json:"name"`
	WorkspaceID                FlexInt64       `json:"workspaceId"`
	DataSourceID               FlexInt64       `json:"dataSourceId"`
	DataSourceName             string          `json:"dataSourceName"`
	SourceDisplayName          string          `json:"sourceDisplayName"`
	DataSourceAuthenticationID FlexInt64       `json:"dataSourceAuthenticationId"`
	Enabled                    bool            `json:"enabled"`
	HasData                    bool            `json:"hasData"`
	LastUpdate                 Timestamp       `json:"lastUpdate"`
	LastRunStatus              RunStatus       `json:"lastRunStatus"`
	LastRowsRetrieved          FlexInt64       `json:"lastRowsRetrieved"`
	ProcessedRows              FlexInt64       `json:"processedRows"`
	LastDataDate               Date            `json:"lastDataDate"`
	ProcessStatsCounts         json.RawMessage `json:"processStatsCounts"`
	DataLoadMode               json.RawMessage `json:"dataLoadMode"`
	RetrievalPeriodHour        json.RawMessage `json:"retrievalPeriodHour"`
	RetrievalPeriodType        json.RawMessage `json:"retrievalPeriodType"`
	TemplateID                 FlexInt64       `json:"templateId"`
	ParentInstanceID           *FlexInt64      `json:"parentInstanceId"`
	RunOnlyAsPartOfWorkflow    bool            `json:"runOnlyAsPartOfWorkflow"`
	ChannelID                  FlexInt64       `json:"channelId"`
	OriginalID                 FlexInt64       `json:"originalId"`
	OriginalDataStreamID       FlexInt64       `json:"originalDataStreamId"`
	DataPreviewPageID          FlexInt64       `json:"dataPreviewPageId"`
	Config                     json.RawMessage `json:"config"`
	History
	Raw json.RawMessage `json:"-"`
}

// IsTotalConnect reports whether the stream is a file ("dynamic") stream, whose job
// downloads use the TotalConnect form.
func (s *Stream) IsTotalConnect() bool { return s.DataSourceName == "TotalConnect" }

// StreamStatus is one entry of the bulk status endpoint.
type StreamStatus struct {
	ID        int64           `json:"id"`
	RunStatus string          `json:"runStatus"` // SUCCESS, FAILURE, IN_PROGRESS, PENDING, …
	Status    string          `json:"status"`    // ENABLED or DISABLED
	Raw       json.RawMessage `json:"-"`
}

// Job statuses seen in Datorama material. Others may exist; code must not assume the set
// is closed.
const (
	StatusSuccess    = "SUCCESS"
	StatusFailure    = "FAILURE"
	StatusInProgress = "IN_PROGRESS"
	StatusPending    = "PENDING"
)

// IsFinal reports whether a job status will not change any more. Unknown statuses count
// as not final, so a crawler keeps looking at them.
func IsFinal(status string) bool { return status == StatusSuccess || status == StatusFailure }

// Job is a data stream stat ("job", "run").
type Job struct {
	ID                 int64           `json:"id"`
	DataStreamID       FlexInt64       `json:"dataStreamId"`
	Status             string          `json:"status"`
	StatusReason       string          `json:"statusReason"`
	DataStartDate      Date            `json:"dataStartDate"`
	DataEndDate        Date            `json:"dataEndDate"`
	StartExecutionTime Timestamp       `json:"startExecutionTime"`
	EndExecutionTime   Timestamp       `json:"endExecutionTime"`
	UserID             FlexInt64       `json:"userId"`
	ProcessLog         string          `json:"processLog"`
	Raw                json.RawMessage `json:"-"`
}

// Mapping is a stream's field mapping. Its layout is unknown beyond "a JSON object", so
// only Raw is authoritative.
type Mapping struct {
	StreamID int64           `json:"-"`
	Raw      json.RawMessage `json:"-"`
}

// Field is one dimension or measurement of a workspace; the API answers a map keyed by
// system name.
type Field struct {
	SystemName  string          `json:"systemName"`
	DisplayName string          `json:"displayName"`
	Raw         json.RawMessage `json:"-"`
}

// HarmonizedDimension is one entry of GET /v1/workspaces/{wsId}/harmonized-dimensions.
type HarmonizedDimension struct {
	ID          int64     `json:"id"`
	WorkspaceID FlexInt64 `json:"workspaceId"`
	Name        string    `json:"name"`
	History
	Raw json.RawMessage `json:"-"`
}

// Pattern is one entry of GET /v1/workspaces/{wsId}/patterns.
type Pattern struct {
	ID                    int64     `json:"id"`
	WorkspaceID           FlexInt64 `json:"workspaceId"`
	HarmonizedDimensionID FlexInt64 `json:"harmonizedDimensionId"`
	Name                  string    `json:"name"`
	History
	Raw json.RawMessage `json:"-"`
}

// CalculatedMeasurement is one entry of GET /v1/workspaces/{wsId}/calculated-measurements.
type CalculatedMeasurement struct {
	ID          int64     `json:"id"`
	WorkspaceID FlexInt64 `json:"workspaceId"`
	OriginalID  FlexInt64 `json:"originalId"`
	Name        string    `json:"name"`
	Formula     string    `json:"formula"`
	History
	Raw json.RawMessage `json:"-"`
}

// Connector is GET /v1/connectors/{id}; its shape is unknown.
type Connector struct {
	ID   int64           `json:"id"`
	Name string          `json:"name"`
	Raw  json.RawMessage `json:"-"`
}

// DashboardHierarchy is GET /v1/workspaces/{wsId}/dashboards/hierarchy.
type DashboardHierarchy struct {
	Widgets []Widget        `json:"widgets"`
	Raw     json.RawMessage `json:"-"`
}

// Widget is one widget of the dashboards hierarchy.
type Widget struct {
	ID          int64     `json:"id"`
	PageID      FlexInt64 `json:"pageId"`
	DashboardID FlexInt64 `json:"dashboardId"`
}

// Each model's UnmarshalJSON decodes its typed fields and keeps a private copy of the
// exact bytes in Raw (see unmarshalModel). A record that is not a JSON object, or whose
// typed fields do not decode, is an error: a half-decoded record must never reach the
// store.

func (w *Workspace) UnmarshalJSON(b []byte) error {
	return unmarshalModel[Workspace](w, b, "workspace")
}

func (s *Stream) UnmarshalJSON(b []byte) error { return unmarshalModel[Stream](s, b, "data stream") }

func (s *StreamStatus) UnmarshalJSON(b []byte) error {
	return unmarshalModel[StreamStatus](s, b, "stream status")
}

func (j *Job) UnmarshalJSON(b []byte) error { return unmarshalModel[Job](j, b, "job") }

func (f *Field) UnmarshalJSON(b []byte) error { return unmarshalModel[Field](f, b, "field") }

func (h *HarmonizedDimension) UnmarshalJSON(b []byte) error {
	return unmarshalModel[HarmonizedDimension](h, b, "harmonized dimension")
}

func (p *Pattern) UnmarshalJSON(b []byte) error { return unmarshalModel[Pattern](p, b, "pattern") }

func (c *CalculatedMeasurement) UnmarshalJSON(b []byte) error {
	return unmarshalModel[CalculatedMeasurement](c, b, "calculated measurement")
}

func (c *Connector) UnmarshalJSON(b []byte) error {
	return unmarshalModel[Connector](c, b, "connector")
}

func (d *DashboardHierarchy) UnmarshalJSON(b []byte) error {
	return unmarshalModel[DashboardHierarchy](d, b, "dashboards hierarchy")
}
