// Package extracttest works out, from the simulator's ground truth, the fewest API calls a
// crawl of that account can make, so the crawl's tests and benchmarks measure against the
// same yardstick. It must not know how the crawler decides: only what changed in the
// account and what the API's paging forces on any reader.
package extracttest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/drextract/drextract/sim"
)

// Options describe the account's paging and what the crawl reads on its own cadence.
type Options struct {
	// PageSize is the stats page size a crawler that knows the API's cap uses (default
	// 1000, the simulator's default cap).
	PageSize int
	// Order is the stats order across pages: "asc" (default, oldest first) or "desc".
	Order string
	// Tokens is how many tokens list the workspaces (one call each; default 1).
	Tokens int
	// WorkspaceLists counts the five workspace-level lists of every workspace: a full
	// crawl reads them, an incremental crawl when their cadence is due.
	WorkspaceLists bool
}

func (o Options) withDefaults() Options {
	if o.PageSize <= 0 {
		o.PageSize = 1000
	}
	if o.Order != "desc" {
		o.Order = "asc"
	}
	if o.Tokens <= 0 {
		o.Tokens = 1
	}
	return o
}

// BulkStatusChunk is how many streams one bulk status call covers in the minimum (the
// lead's ruling: one call per workspace and 100 streams that look unchanged is the only
// way to see a job in flight or stuck, so it counts as part of the minimum).
const BulkStatusChunk = 100

// workspaceListKinds is how many workspace-level lists a workspace has (dimensions,
// measurements, harmonized dimensions, patterns, calculated measurements).
const workspaceListKinds = 5

// Minimum is the fewest calls of one crawl, by kind.
type Minimum struct {
	Workspaces     int // the workspace list: one call per token
	StreamLists    int // one per workspace
	BulkStatus     int // Σ over workspaces of ceil(streams whose jobs did not change / 100); 0 for a full crawl
	StatsPages     int // the stats pages the changed streams need
	Mappings       int // new streams and streams whose mapping changed (every stream for a full crawl)
	WorkspaceLists int // 5 per workspace when Options.WorkspaceLists
	// Changed is how many live streams changed: their record or their set of jobs
	// differs (every stream for a full crawl). JobsChanged counts those whose jobs did.
	Changed, JobsChanged int
}

// Calls is the minimum's total.
func (m Minimum) Calls() int {
	return m.Workspaces + m.StreamLists + m.BulkStatus + m.StatsPages + m.Mappings + m.WorkspaceLists
}

func (m Minimum) String() string {
	return fmt.Sprintf("%d calls (workspaces %d, stream lists %d, bulk status %d, stats pages %d, mappings %d, workspace lists %d; %d streams changed, %d of them in their jobs)",
		m.Calls(), m.Workspaces, m.StreamLists, m.BulkStatus, m.StatsPages, m.Mappings, m.WorkspaceLists, m.Changed, m.JobsChanged)
}

// Full is the minimum of a crawl that reads the account tr from nothing: every stream's
// stats to the page that ends its list (shorter than the page size, so a stream of
// exactly k pages needs an empty page k+1), every mapping, and the workspace-level lists
// when o asks for them.
func Full(tr sim.Truth, o Options) (Minimum, error) {
	o = o.withDefaults()
	a, err := decode(tr)
	if err != nil {
		return Minimum{}, err
	}
	m := Minimum{Workspaces: o.Tokens, StreamLists: len(a.workspaces)}
	if o.WorkspaceLists {
		m.WorkspaceLists = workspaceListKinds * len(a.workspaces)
	}
	for _, s := range a.streams {
		m.Changed++
		m.JobsChanged++
		m.StatsPages += len(s.jobs)/o.PageSize + 1
		m.Mappings++
	}
	return m, nil
}

// Incremental is the minimum of a crawl that finds the store equal to before and must
// leave it equal to after: the workspace and stream lists, one bulk status call per
// workspace and 100 streams whose jobs did not change, and for every stream whose jobs
// changed (a job new, gone or different) the pages that hold a new or different job in
// after's order (one page when jobs only went), plus the empty page that ends a list
// whose new last page is full; a new stream costs all its pages. Mappings count when new
// or different.
func Incremental(before, after sim.Truth, o Options) (Minimum, error) {
	o = o.withDefaults()
	b, err := decode(before)
	if err != nil {
		return Minimum{}, fmt.Errorf("before: %w", err)
	}
	a, err := decode(after)
	if err != nil {
		return Minimum{}, fmt.Errorf("after: %w", err)
	}
	m := Minimum{Workspaces: o.Tokens, StreamLists: len(a.workspaces)}
	if o.WorkspaceLists {
		m.WorkspaceLists = workspaceListKinds * len(a.workspaces)
	}
	unchanged := map[int64]int{} // per workspace: streams whose jobs did not change
	for id, s := range a.streams {
		old, ok := b.streams[id]
		if !ok {
			m.Changed++
			m.JobsChanged++
			m.StatsPages += len(s.jobs)/o.PageSize + 1
			m.Mappings++
			continue
		}
		if !bytes.Equal(old.mapping, s.mapping) {
			m.Mappings++
		}
		pages := changedPages(old.jobs, s.jobs, o)
		if pages == 0 {
			unchanged[s.ws]++
			if !bytes.Equal(old.record, s.record) {
				m.Changed++
			}
			continue
		}
		m.Changed++
		m.JobsChanged++
		m.StatsPages += pages
	}
	for _, n := range unchanged {
		m.BulkStatus += (n + BulkStatusChunk - 1) / BulkStatusChunk
	}
	return m, nil
}

// changedPages is how many stats pages a reader needs to see a stream's jobs go from
// before to after (0: they did not change).
func changedPages(before, after map[int64][]byte, o Options) int {
	ids := make([]int64, 0, len(after))
	for id := range after {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if o.Order == "desc" {
		slices.Reverse(ids)
	}
	pages := map[int]bool{}
	for i, id := range ids {
		if old, ok := before[id]; !ok || !bytes.Equal(old, after[id]) {
			pages[i/o.PageSize] = true
		}
	}
	gone := false
	for id := range before {
		if _, ok := after[id]; !ok {
			gone = true
			break
		}
	}
	switch {
	case len(pages) == 0 && !gone:
		return 0
	case len(pages) == 0:
		return 1
	}
	n := len(pages)
	last := (len(ids) - 1) / o.PageSize
	if len(ids)%o.PageSize == 0 && (o.Order == "asc" && pages[last] || o.Order == "desc" && len(pages) == last+1) {
		n++ // the full last page must be followed by an empty one to see the end
	}
	return n
}

type stream struct {
	ws      int64
	record  []byte
	mapping []byte
	jobs    map[int64][]byte // id → record
}

type account struct {
	workspaces []int64
	streams    map[int64]*stream
}

func decode(tr sim.Truth) (account, error) {
	a := account{streams: map[int64]*stream{}}
	for i, raw := range tr.Workspaces {
		var w struct {
			ID int64 `json:"id"`
		}
		if err := json.Unmarshal(raw, &w); err != nil {
			return a, fmt.Errorf("workspace %d: %w", i, err)
		}
		a.workspaces = append(a.workspaces, w.ID)
	}
	for i, raw := range tr.Streams {
		var s struct {
			ID          int64 `json:"id"`
			WorkspaceID int64 `json:"workspaceId"`
		}
		if err := json.Unmarshal(raw, &s); err != nil {
			return a, fmt.Errorf("stream %d: %w", i, err)
		}
		a.streams[s.ID] = &stream{ws: s.WorkspaceID, record: raw, mapping: tr.Mappings[fmt.Sprint(s.ID)], jobs: map[int64][]byte{}}
	}
	for i, raw := range tr.Jobs {
		var j struct {
			ID           int64 `json:"id"`
			DataStreamID int64 `json:"dataStreamId"`
		}
		if err := json.Unmarshal(raw, &j); err != nil {
			return a, fmt.Errorf("job %d: %w", i, err)
		}
		if s := a.streams[j.DataStreamID]; s != nil {
			s.jobs[j.ID] = raw
		}
	}
	return a, nil
}
