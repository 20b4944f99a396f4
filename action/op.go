package action

import (
	"fmt"
	"sort"
	"strings"
)

// Op is a bulk operation. Every Op has a fixed set of input columns.
type Op string

// The operations of the old client, one per API write (issue 5's table).
const (
	OpRerun    Op = "rerun"     // rerun jobs: one call per stream with its job ids
	OpRerunAll Op = "rerun-all" // rerun every job of a stream
	OpProcess  Op = "process"   // process a date range, chunked, batched across streams
	OpRename   Op = "rename"    // PATCH {"name": …}
	OpPatch    Op = "patch"     // PATCH with the given fields only
	OpPut      Op = "put"       // GET, merge, PUT the whole stream (needs ForcePut)
	OpEnable   Op = "enable"    // PATCH {"enabled": true}
	OpDisable  Op = "disable"   // PATCH {"enabled": false}
	OpMapping  Op = "mapping"   // GET the mapping, merge, PUT it
	OpDownload Op = "download"  // a job's raw data to a file
	OpDelete   Op = "delete"    // DELETE a stream (guarded: --max-delete, --force)
	// Creations, from a JSON body as the API takes it (issue 14 point 4).
	OpCreateStream  Op = "create-stream"                 // POST /v1/data-streams
	OpCreatePattern Op = "create-pattern"                // POST /v1/harmonization/patterns
	OpCreateCalc    Op = "create-calculated-measurement" // POST /v1/workspaces/{wsId}/calculated-measurements
)

// Input column names.
const (
	ColStreamID  = "stream_id"
	ColJobID     = "job_id"
	ColStartDate = "start_date"
	ColEndDate   = "end_date"
	ColName      = "name"
	ColPatch     = "patch"
	// ColWorkspaceID and ColJSON are a creation's inputs: the workspace and the body.
	ColWorkspaceID = "workspace_id"
	ColJSON        = "json"
)

var opColumns = map[Op][]string{
	OpRerun:    {ColStreamID, ColJobID},
	OpRerunAll: {ColStreamID},
	OpProcess:  {ColStreamID, ColStartDate, ColEndDate},
	OpRename:   {ColStreamID, ColName},
	OpPatch:    {ColStreamID, ColPatch},
	OpPut:      {ColStreamID, ColPatch},
	OpEnable:   {ColStreamID},
	OpDisable:  {ColStreamID},
	OpMapping:  {ColStreamID, ColPatch},
	OpDownload: {ColStreamID, ColJobID},
	OpDelete:   {ColStreamID},

	OpCreateStream:  {ColWorkspaceID, ColJSON},
	OpCreatePattern: {ColWorkspaceID, ColJSON},
	OpCreateCalc:    {ColWorkspaceID, ColJSON},
}

// Ops returns every operation, sorted by name.
func Ops() []Op {
	out := make([]Op, 0, len(opColumns))
	for op := range opColumns {
		out = append(out, op)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// ParseOp reads an operation name as written in a selection header or on the command line.
func ParseOp(s string) (Op, error) {
	op := Op(strings.ToLower(strings.TrimSpace(s)))
	if _, ok := opColumns[op]; ok {
		return op, nil
	}
	names := make([]string, 0, len(opColumns))
	for _, o := range Ops() {
		names = append(names, string(o))
	}
	return "", fmt.Errorf("unknown action %q (known: %s)", s, strings.Join(names, ", "))
}

// Columns are the input columns the operation needs, in their canonical order.
func (o Op) Columns() []string { return append([]string(nil), opColumns[o]...) }

// CreatesJobs reports whether the operation starts jobs at Datorama: those are the ones
// the pending cap, the cooldown and job reconciliation apply to, and that a disabled
// stream must not get.
func (o Op) CreatesJobs() bool { return o == OpRerun || o == OpRerunAll || o == OpProcess }

// Creates reports whether the operation creates an entity. A creation is not idempotent
// and names no stream: it goes out one call at a time, and an answer lost on the way is
// settled by looking for the entity by name in its workspace's listing.
func (o Op) Creates() bool { return o == OpCreateStream || o == OpCreatePattern || o == OpCreateCalc }

// entity names what a creation creates, for messages: "stream", "pattern", "calculated
// measurement".
func (o Op) entity() string {
	switch o {
	case OpCreateStream:
		return "stream"
	case OpCreatePattern:
		return "pattern"
	case OpCreateCalc:
		return "calculated measurement"
	}
	return ""
}

// callsPerUnit is how many API calls one planned call costs: a read-merge-write is two.
func (o Op) callsPerUnit() int {
	if o == OpPut || o == OpMapping {
		return 2
	}
	return 1
}
