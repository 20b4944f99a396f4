package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/drextract/drextract/clock"
)

// The /_sim/ controls: no token, never rate-limited, never counted, never faulted.
//
//	GET    /_sim/truth              the complete state (Truth)
//	GET    /_sim/calls              call counters (CallStats)
//	DELETE /_sim/calls              reset the counters (also POST /_sim/calls/reset)
//	GET    /_sim/time               {"now": epoch ms, "time": RFC 3339}
//	POST   /_sim/advance?by=90m     advance the clock (manual or offset clocks only)
//	GET    /_sim/faults             the fault configuration
//	POST   /_sim/faults             set it: body (or ?set=) in ParseFaults form, e.g.
//	                                dupid=1,path=/v1/workspaces/*/data-streams; empty = none
//	POST   /_sim/run?ids=1,2        start a scheduled-style run on these streams now
//	POST   /_sim/mutate             one edit, JSON {"op": …}; see mutateRequest
//	POST   /_sim/webhook            keep a notification's JSON body (a stand-in webhook)
//	GET    /_sim/webhook            the notifications kept, oldest first
func (s *Sim) controlRoutes() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /_sim/truth", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := s.WriteTruth(w); err != nil {
			s.log.Warn("writing truth", "err", err)
		}
	})
	m.HandleFunc("GET /_sim/calls", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.Calls()) })
	reset := func(w http.ResponseWriter, r *http.Request) {
		s.ResetCalls()
		writeJSON(w, s.Calls())
	}
	m.HandleFunc("DELETE /_sim/calls", reset)
	m.HandleFunc("POST /_sim/calls/reset", reset)
	m.HandleFunc("GET /_sim/time", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, s.timeDoc()) })
	m.HandleFunc("POST /_sim/advance", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("by"))
		if err != nil || d < 0 {
			http.Error(w, "advance: want ?by=DURATION, e.g. ?by=90m", http.StatusBadRequest)
			return
		}
		switch s.clk.(type) {
		case *clock.Manual, *clock.Offset:
		default:
			http.Error(w, "advance: the simulator runs on a clock that cannot be advanced", http.StatusConflict)
			return
		}
		s.Advance(d)
		s.Mutate(func(*State) {}) // catch up now, so the answer reflects the new time
		writeJSON(w, s.timeDoc())
	})
	m.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, faultsDoc(s.Faults())) })
	m.HandleFunc("POST /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		spec := r.URL.Query().Get("set")
		if spec == "" {
			b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
			spec = strings.TrimSpace(string(b))
		}
		f, err := ParseFaults(spec)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.SetFaults(f)
		writeJSON(w, faultsDoc(s.Faults()))
	})
	m.HandleFunc("POST /_sim/run", func(w http.ResponseWriter, r *http.Request) {
		ids, err := parseIDs(r.URL.Query().Get("ids"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.RunStreams(ids)
		writeJSON(w, map[string]any{"started": ids})
	})
	m.HandleFunc("POST /_sim/mutate", s.serveMutate)
	hooks := &webhookSink{}
	m.HandleFunc("POST /_sim/webhook", hooks.post)
	m.HandleFunc("GET /_sim/webhook", hooks.list)
	m.HandleFunc("/_sim/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "unknown simulator control; see the sim package documentation", http.StatusNotFound)
	})
	return m
}

func (s *Sim) timeDoc() map[string]any {
	now := s.clk.Now().UTC()
	return map[string]any{"now": now.UnixMilli(), "time": now.Format(time.RFC3339)}
}

func faultsDoc(f Faults) map[string]any {
	return map[string]any{"spec": f.String(), "rates": f.Rates, "slow_delay": f.SlowDelay.String(), "only_reads": f.OnlyReads}
}

// mutateRequest is the body of POST /_sim/mutate. Ops: rename, enable, disable, delete,
// outcome (value: fail|succeed|random), config (key, value), add (workspaceId,
// dataSource, name), process (streamId, startDate, endDate), renameWorkspace
// (workspaceId, name).
type mutateRequest struct {
	Op          string          `json:"op"`
	StreamID    int64           `json:"streamId"`
	WorkspaceID int64           `json:"workspaceId"`
	Name        string          `json:"name"`
	Value       json.RawMessage `json:"value"`
	Key         string          `json:"key"`
	DataSource  string          `json:"dataSource"`
	StartDate   string          `json:"startDate"`
	EndDate     string          `json:"endDate"`
}

func (s *Sim) serveMutate(w http.ResponseWriter, r *http.Request) {
	var req mutateRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		http.Error(w, "mutate: want a JSON body with an op: "+err.Error(), http.StatusBadRequest)
		return
	}
	var result any = map[string]string{"ok": req.Op}
	var err error
	s.Mutate(func(st *State) {
		switch req.Op {
		case "rename":
			err = st.RenameStream(req.StreamID, req.Name)
		case "enable", "disable":
			err = st.SetStreamEnabled(req.StreamID, req.Op == "enable")
		case "delete":
			err = st.DeleteStream(req.StreamID)
		case "outcome":
			var v string
			_ = json.Unmarshal(req.Value, &v)
			err = st.SetStreamOutcome(req.StreamID, v)
		case "config":
			err = st.SetStreamConfig(req.StreamID, req.Key, req.Value)
		case "add":
			var id int64
			id, err = st.AddStream(req.WorkspaceID, req.DataSource, req.Name)
			result = map[string]int64{"id": id}
		case "process":
			from, e1 := time.Parse("2006-01-02", req.StartDate)
			to, e2 := time.Parse("2006-01-02", req.EndDate)
			if e1 != nil || e2 != nil {
				err = fmt.Errorf("process: startDate and endDate must be yyyy-MM-dd")
				return
			}
			var ids []int64
			ids, err = st.Process(req.StreamID, from, to)
			result = map[string][]int64{"ids": ids}
		case "renameWorkspace":
			err = st.RenameWorkspace(req.WorkspaceID, req.Name)
		default:
			err = fmt.Errorf("mutate: unknown op %q", req.Op)
		}
	})
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	writeJSON(w, result)
}

func parseIDs(s string) ([]int64, error) {
	var ids []int64
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		id, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("ids: %q is not an id", p)
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("ids: want ?ids=ID,ID,…")
	}
	return ids, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}
