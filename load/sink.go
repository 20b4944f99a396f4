package load

import (
	"context"
	"encoding/json"
	"time"
)

// Sink is the one seam between extract and load: extract writes typed batches through
// it and reads back just enough state to crawl incrementally. *Store implements it on
// DuckDB; any other implementation must pass the same conformance suite.
//
// A Sink is safe for use by one crawl at a time; the store's file lock keeps other
// writers out.
type Sink interface {
	// StartRun records a run as started and returns its id, which every row written
	// during the run carries.
	StartRun(ctx context.Context, r RunStart) (int64, error)
	// FinishRun records how the run ended. It is called once per run, also after
	// failures (with the error text).
	FinishRun(ctx context.Context, runID int64, r RunEnd) error

	// Write applies one batch and its checkpoint in a single transaction: either both
	// are stored or neither is. Writing the same batch twice leaves the store as if it
	// had been written once (a resumed crawl may repeat one page).
	Write(ctx context.Context, runID int64, b Batch) error
	// WriteBatches applies several batches and their checkpoints in a single
	// transaction: either all of them are stored or none. The result is the same as
	// writing them one after the other with Write (a later batch wins over an earlier
	// one, also for a checkpoint of the same kind and parent); a batch that Write would
	// refuse fails the whole call. It lets a fast crawl commit many pages at once.
	WriteBatches(ctx context.Context, runID int64, bs []Batch) error

	// Checkpoints returns the stored checkpoints of one kind, keyed by parent id.
	Checkpoints(ctx context.Context, kind string) (map[int64]Checkpoint, error)
	// JobIndex returns the stored jobs of one stream, ordered by id ascending.
	JobIndex(ctx context.Context, streamID int64) ([]JobKey, error)

	// RecordCalls appends API call audit rows. It may be called at any time during a run.
	// drextract's own runs record their calls through the store's journal instead
	// (Journal, FoldJournal).
	RecordCalls(ctx context.Context, runID int64, calls []APICall) error
}

// Entity names: also the names of the current-state tables.
const (
	Workspaces             = "workspaces"
	Streams                = "streams"
	Jobs                   = "jobs"
	Mappings               = "mappings"
	Dimensions             = "dimensions"
	Measurements           = "measurements"
	HarmonizedDimensions   = "harmonized_dimensions"
	Patterns               = "patterns"
	CalculatedMeasurements = "calculated_measurements"
)

// Batch is rows of one entity under one parent, observed at one time.
type Batch struct {
	Entity string
	// ParentID is the parent whose listing produced the rows: 0 for workspaces, the
	// workspace id for streams and workspace-level lists, the stream id for jobs and
	// mappings.
	ParentID   int64
	ObservedAt time.Time

	// Complete says the parent's listing finished cleanly and the batch's rows (plus
	// AllIDs, for listings delivered in several batches) are everything the parent has:
	// stored rows of this parent that are missing are then marked deleted. A batch with
	// Complete false never deletes anything.
	Complete bool
	AllIDs   []int64

	// Exactly one of these is filled, matching Entity.
	Workspaces []WorkspaceRow
	Streams    []StreamRow
	Jobs       []JobRow
	Mappings   []MappingRow
	Fields     []FieldRow // Dimensions and Measurements
	Harmonized []HarmonizedDimensionRow
	Patterns   []PatternRow
	CalcMeas   []CalculatedMeasurementRow

	// Checkpoint, if not nil, is stored in the same transaction.
	Checkpoint *Checkpoint
}

// rowCounts is the length of each of b's row slices.
func (b *Batch) rowCounts() [8]int {
	return [8]int{len(b.Workspaces), len(b.Streams), len(b.Jobs), len(b.Mappings),
		len(b.Fields), len(b.Harmonized), len(b.Patterns), len(b.CalcMeas)}
}

// Rows is the number of rows b carries.
func (b *Batch) Rows() int {
	n := 0
	for _, l := range b.rowCounts() {
		n += l
	}
	return n
}

// Checkpoint is a crawler's resumable position for one parent. State is opaque to load:
// the crawler owns its JSON.
type Checkpoint struct {
	Kind      string // e.g. "jobs", "streams", "mappings", "account"
	ParentID  int64
	State     json.RawMessage
	UpdatedAt time.Time
	RunID     int64 // the run that wrote it (filled by the store on read)
}

// JobKey is what JobIndex returns per stored job.
type JobKey struct {
	ID     int64
	Status string
}

// Row types: typed columns plus the complete source record in Raw. Zero times and dates
// are stored as NULL.

type WorkspaceRow struct {
	ID         int64
	Name       string
	AccountID  int64
	CreateTime time.Time
	UpdateTime time.Time
	Raw        json.RawMessage
}

type StreamRow struct {
	ID                int64
	WorkspaceID       int64
	Name              string
	DataSourceID      int64
	DataSourceName    string
	Enabled           bool
	HasData           bool
	LastRunStatus     string // "true"/"false" or the string the API sent
	LastRunFailed     bool
	LastRowsRetrieved int64
	ProcessedRows     int64
	LastDataDate      time.Time // a date
	LastUpdate        time.Time
	CreateTime        time.Time
	UpdateTime        time.Time
	Raw               json.RawMessage
}

type JobRow struct {
	ID                 int64
	StreamID           int64
	WorkspaceID        int64
	Status             string
	StatusReason       string
	DataStartDate      time.Time // a date
	DataEndDate        time.Time // a date
	StartExecutionTime time.Time
	EndExecutionTime   time.Time
	UserID             int64
	Raw                json.RawMessage
}

type MappingRow struct {
	StreamID    int64
	WorkspaceID int64
	Raw         json.RawMessage
}

type FieldRow struct {
	WorkspaceID int64
	SystemName  string
	DisplayName string
	Raw         json.RawMessage
}

type HarmonizedDimensionRow struct {
	ID          int64
	WorkspaceID int64
	Name        string
	UpdateTime  time.Time
	Raw         json.RawMessage
}

type PatternRow struct {
	ID                    int64
	WorkspaceID           int64
	HarmonizedDimensionID int64
	Name                  string
	UpdateTime            time.Time
	Raw                   json.RawMessage
}

type CalculatedMeasurementRow struct {
	ID          int64
	WorkspaceID int64
	Name        string
	Formula     string
	UpdateTime  time.Time
	Raw         json.RawMessage
}

// RunStart is what is known when a run begins.
type RunStart struct {
	Schedule string // schedule name, or "cli"
	Kind     string // "extract", "extract-full", "action", "export", "report", …
	Started  time.Time
}

// Run statuses.
const (
	RunOK             = "ok"
	RunPartial        = "partial"
	RunQuotaExhausted = "quota_exhausted"
	RunFailed         = "failed"
	RunRunning        = "running"
)

// RunEnd is how a run ended.
type RunEnd struct {
	Finished   time.Time
	Status     string // one of the Run* constants
	Calls      int
	Rows       map[string]int // rows written per table
	Incomplete []string       // parents whose listing failed, e.g. "jobs of stream 123"
	Error      string
}

// APICall is one audited API call attempt. It never holds a token, only its fingerprint.
type APICall struct {
	Time         time.Time
	Fingerprint  string
	Method       string
	PathTemplate string
	Status       int
	Latency      time.Duration
	Attempt      int
	// Rate headers as received; -1 when absent.
	PlatformRemaining int
	QueryRemaining    int
	DailyRemaining    int
	PlatformReset     time.Time
	DailyReset        time.Time
	Error             string
	// AttemptID is unique to the attempt (made by the process that made it): storing a
	// record twice keeps one row.
	AttemptID string
	// ActionRunID and ActionCallNo name the bulk-action call (action_calls) the attempt
	// carried out; 0 for every other call.
	ActionRunID  int64
	ActionCallNo int
}
