package sim

import (
	"cmp"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"time"
)

// Truth is the complete current state of the account, every record exactly as the API
// sends it to token 1 (an admin who sees every workspace), so a test can decode it with
// the client's own models and compare with what a crawl stored. Deleted streams and
// their jobs are absent, as the API no longer answers them.
type Truth struct {
	Now        time.Time         `json:"now"`
	Workspaces []json.RawMessage `json:"workspaces"` // ascending id
	Streams    []json.RawMessage `json:"streams"`    // ascending id
	Jobs       []json.RawMessage `json:"jobs"`       // ascending id
	// Mappings: stream id → the mapping object GET …/mapping answers.
	Mappings map[string]json.RawMessage `json:"mappings"`
	// Per workspace id: dimensions and measurements (objects keyed by system name),
	// harmonized dimensions, patterns and calculated measurements (arrays), and the
	// dashboards hierarchy (object).
	Dimensions             map[string]json.RawMessage `json:"dimensions"`
	Measurements           map[string]json.RawMessage `json:"measurements"`
	HarmonizedDimensions   map[string]json.RawMessage `json:"harmonized_dimensions"`
	Patterns               map[string]json.RawMessage `json:"patterns"`
	CalculatedMeasurements map[string]json.RawMessage `json:"calculated_measurements"`
	Dashboards             map[string]json.RawMessage `json:"dashboards"`
	// Connectors: data source id → GET /v1/connectors/{id}.
	Connectors map[string]json.RawMessage `json:"connectors"`
	// DailyRows is the data behind the Query API: one row per stream and day loaded by
	// a SUCCESS job, by stream id then date.
	DailyRows []DailyRow `json:"daily_rows"`
	// TokenWorkspaces: token number ("1", "2", …) → the workspace ids it can see.
	TokenWorkspaces map[string][]int64 `json:"token_workspaces"`
}

// Truth returns the complete current state, caught up to Now. It is a snapshot: later
// requests do not change it.
func (s *Sim) Truth() Truth {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUp()
	return s.st.truth()
}

// WriteTruth writes the truth as JSON to w, as GET /_sim/truth answers it.
func (s *Sim) WriteTruth(w io.Writer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.catchUp()
	return s.st.writeTruth(w)
}

func (st *State) liveStreams() []*stream {
	out := make([]*stream, 0, len(st.streams))
	for _, s := range st.streams {
		if !s.deleted {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *stream) int { return cmp.Compare(a.id, b.id) })
	return out
}

func (st *State) truth() Truth {
	t := Truth{
		Now:                    time.UnixMilli(st.now).UTC(),
		Mappings:               map[string]json.RawMessage{},
		Dimensions:             map[string]json.RawMessage{},
		Measurements:           map[string]json.RawMessage{},
		HarmonizedDimensions:   map[string]json.RawMessage{},
		Patterns:               map[string]json.RawMessage{},
		CalculatedMeasurements: map[string]json.RawMessage{},
		Dashboards:             map[string]json.RawMessage{},
		Connectors:             map[string]json.RawMessage{},
		TokenWorkspaces:        st.tokenWorkspaces(),
	}
	for _, ws := range st.workspaces {
		k := strconv.FormatInt(ws.id, 10)
		t.Workspaces = append(t.Workspaces, st.appendWorkspace(nil, ws, false))
		t.Dimensions[k] = st.appendFieldMap(nil, ws.dims, ws, false)
		t.Measurements[k] = st.appendFieldMap(nil, ws.meas, ws, false)
		t.HarmonizedDimensions[k] = st.appendHarmonized(nil, ws, false)
		t.Patterns[k] = st.appendPatterns(nil, ws, false)
		t.CalculatedMeasurements[k] = st.appendCalcs(nil, ws, false)
		t.Dashboards[k] = st.appendDashboards(nil, ws, false)
	}
	for _, c := range st.connectors {
		t.Connectors[strconv.FormatInt(c.id, 10)] = appendConnector(nil, c)
	}
	live := st.liveStreams()
	for _, s := range live {
		t.Streams = append(t.Streams, st.appendStream(nil, s, false))
		t.Mappings[strconv.FormatInt(s.id, 10)] = append(json.RawMessage(nil), s.mappingOf()...)
	}
	for i := range st.jobs {
		j := &st.jobs[i]
		if !st.streams[j.stream].deleted {
			t.Jobs = append(t.Jobs, st.appendJob(nil, j))
		}
	}
	t.DailyRows = st.dailyRows(live)
	return t
}

func (st *State) tokenWorkspaces() map[string][]int64 {
	out := map[string][]int64{}
	for _, tok := range st.tokens {
		var ids []int64
		for _, ws := range st.workspaces {
			if tok.visible[ws.id] {
				ids = append(ids, ws.id)
			}
		}
		out[strconv.Itoa(tok.index)] = ids
	}
	return out
}

func (st *State) dailyRows(live []*stream) []DailyRow {
	var out []DailyRow
	for _, s := range live {
		lo, hi := int32(1<<30), int32(-1<<30)
		for _, ji := range s.jobs {
			j := &st.jobs[ji]
			if j.status == stSuccess {
				lo, hi = min(lo, j.dataStart), max(hi, j.dataEnd)
			}
		}
		if hi < lo {
			continue
		}
		for i, ok := range st.coveredDays(s, lo, hi) {
			if !ok {
				continue
			}
			d := lo + int32(i)
			v := st.daily(s, d)
			out = append(out, DailyRow{
				DataStreamID: s.id, WorkspaceID: s.ws.id, Date: dayString(d),
				Rows: v.rows, Impressions: v.impressions, Clicks: v.clicks, CostCents: v.costCents,
			})
		}
	}
	return out
}

func (st *State) writeTruth(w io.Writer) error {
	return json.NewEncoder(w).Encode(st.truth())
}
