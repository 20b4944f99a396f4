package sim

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

func (s *Sim) routes() {
	m := http.NewServeMux()
	h := func(pattern string, kind int, mutating bool, fn handlerFunc) {
		m.Handle(pattern, s.endpoint(pattern, kind, mutating, fn))
	}
	p, q := kindPlatform, kindQuery
	// Endpoint index rows of the facts file, in order.
	h("GET /v1/workspaces", p, false, listWorkspaces)                                   // 1
	h("GET /v1/workspaces/{wsId}", p, false, getWorkspace)                              // 2
	h("GET /v1/workspaces/{wsId}/data-streams", p, false, listStreams)                  // 3
	h("GET /v1/workspaces/{wsId}/data-streams/{id}", p, false, getWorkspaceStream)      // 4
	h("GET /v1/workspaces/{wsId}/data-streams/status/bulk", p, false, bulkStatus)       // 5
	h("GET /v1/data-streams/{id}", p, false, getStream)                                 // 6
	h("PUT /v1/data-streams/{id}", p, true, putStream)                                  // 6
	h("PATCH /v1/data-streams/{id}", p, true, patchStream)                              // 6
	h("DELETE /v1/data-streams/{id}", p, true, deleteStream)                            // 6
	h("POST /v1/data-streams", p, true, createStream)                                   // 7
	h("POST /v1/data-streams/{id}/process", p, true, processStream)                     // 8
	h("POST /v1/data-streams/process", p, true, processStreams)                         // 9
	h("POST /v1/data-streams/api/{id}/stats", p, false, listStats)                      // 10
	h("POST /v1/data-streams/{id}/stats", p, false, listStats)                          // 10b
	h("GET /v1/data-stream-stat/{statId}", p, false, getStat)                           // 11
	h("POST /v1/data-streams/api/{id}/rerun", p, true, rerunJobs)                       // 12
	h("POST /v1/data-streams/api/{id}/rerun-all", p, true, rerunAll)                    // 13
	h("GET /v1/data-stream-stats/api/{statId}/download", p, false, downloadAPI)         // 14
	h("GET /v1/data-stream-stats/dynamic/{statId}/download", p, false, downloadDynamic) // 15
	h("GET /v1/data-streams/api/{id}/mapping", p, false, getMapping)                    // 16
	h("PUT /v1/data-streams/api/{id}/mapping", p, true, putMapping)                     // 16
	h("GET /v1/workspaces/{wsId}/dimensions", p, false, listDimensions)                 // 17
	h("GET /v1/workspaces/{wsId}/measurements", p, false, listMeasurements)             // 18
	h("GET /v1/workspaces/{wsId}/harmonized-dimensions", p, false, listHarmonized)      // 19
	h("GET /v1/workspaces/{wsId}/patterns", p, false, listPatterns)                     // 20
	h("POST /v1/harmonization/patterns", p, true, createPattern)                        // 21
	h("GET /v1/workspaces/{wsId}/calculated-measurements", p, false, listCalcs)         // 22
	h("POST /v1/workspaces/{wsId}/calculated-measurements", p, true, createCalc)        // 22
	h("GET /v1/connectors/{id}", p, false, getConnector)                                // 23
	h("GET /v1/workspaces/{wsId}/dashboards/hierarchy", p, false, getDashboards)        // 24
	h("POST /v1/query", q, false, runQuery)                                             // 28
	h("POST /v1/query-batch", q, false, runQueryBatch)                                  // 29
	s.api = m
	s.ctl = s.controlRoutes()
}

// workspace resolves the {wsId} path value: 404 when there is no such workspace, 403
// when the token may not see it.
func (c *call) workspace() *workspace {
	id, ok := c.pathID("wsId")
	if !ok {
		return nil
	}
	return c.workspaceByID(id)
}

func (c *call) workspaceByID(id int64) *workspace {
	ws := c.st.workspace(id)
	if ws == nil {
		c.errorf(http.StatusNotFound, "Workspace %d not found", id)
		return nil
	}
	if !c.tok.visible[id] {
		c.errorf(http.StatusForbidden, "You do not have permission to access workspace %d", id)
		return nil
	}
	return ws
}

// stream resolves a stream id: 404 when it does not exist, was deleted, or belongs to
// a workspace the token cannot see.
func (c *call) stream(id int64) (*stream, int32) {
	si, ok := c.st.streamByID[id]
	if ok {
		s := c.st.streams[si]
		if !s.deleted && c.tok.visible[s.ws.id] {
			return s, si
		}
	}
	c.errorf(http.StatusNotFound, "Data stream %d not found", id)
	return nil, -1
}

func (c *call) pathStream() (*stream, int32) {
	id, ok := c.pathID("id")
	if !ok {
		return nil, -1
	}
	return c.stream(id)
}

// pathJob resolves {statId} to a job of a visible, live stream.
func (c *call) pathJob() (*job, *stream) {
	id, ok := c.pathID("statId")
	if !ok {
		return nil, nil
	}
	if ji := c.st.jobIndex(id); ji >= 0 {
		j := &c.st.jobs[ji]
		s := c.st.streams[j.stream]
		if !s.deleted && c.tok.visible[s.ws.id] {
			return j, s
		}
	}
	c.errorf(http.StatusNotFound, "Data stream stat %d not found", id)
	return nil, nil
}

func listWorkspaces(c *call) {
	b := []byte{'['}
	for _, ws := range c.st.workspaces {
		if c.tok.visible[ws.id] {
			b = c.st.appendWorkspace(b, ws, c.viewer())
		}
	}
	c.json(http.StatusOK, append(b, ']'))
}

func getWorkspace(c *call) {
	if ws := c.workspace(); ws != nil {
		c.json(http.StatusOK, c.st.appendWorkspace(nil, ws, c.viewer()))
	}
}

func listStreams(c *call) {
	ws := c.workspace()
	if ws == nil {
		return
	}
	b := []byte{'['}
	for _, si := range ws.streams {
		if s := c.st.streams[si]; !s.deleted {
			b = c.st.appendStream(b, s, c.viewer())
		}
	}
	c.json(http.StatusOK, append(b, ']'))
}

func getWorkspaceStream(c *call) {
	ws := c.workspace()
	if ws == nil {
		return
	}
	s, _ := c.pathStream()
	if s == nil {
		return
	}
	if s.ws != ws {
		c.errorf(http.StatusNotFound, "Data stream %d not found in workspace %d", s.id, ws.id)
		return
	}
	c.json(http.StatusOK, c.st.appendStream(nil, s, c.viewer()))
}

func getStream(c *call) {
	if s, _ := c.pathStream(); s != nil {
		c.json(http.StatusOK, c.st.appendStream(nil, s, c.viewer()))
	}
}

// bulkStatus answers the latest run status of each listed stream of the workspace.
// Ids that are not live streams of the workspace are left out; repeated ids answer once.
func bulkStatus(c *call) {
	ws := c.workspace()
	if ws == nil {
		return
	}
	raw := c.r.URL.Query().Get("ids")
	if strings.TrimSpace(raw) == "" {
		c.errorf(http.StatusBadRequest, "Query parameter ids is required")
		return
	}
	parts := strings.Split(raw, ",")
	if max := c.s.opts.BulkStatusMaxIDs; max > 0 && len(parts) > max {
		c.errorf(http.StatusBadRequest, "At most %d ids per call, got %d", max, len(parts))
		return
	}
	seen := map[int64]bool{}
	b := []byte{'['}
	for _, p := range parts {
		id, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
		if err != nil {
			c.errorf(http.StatusBadRequest, "ids: %q is not a data stream id", p)
			return
		}
		si, ok := c.st.streamByID[id]
		if !ok || seen[id] {
			continue
		}
		s := c.st.streams[si]
		if s.deleted || s.ws != ws {
			continue
		}
		seen[id] = true
		b = append(comma(b), '{')
		b = kint(b, "id", id)
		if n := len(s.jobs); n > 0 {
			b = kstr(b, "runStatus", statusNames[c.st.jobs[s.jobs[n-1]].status])
		} else {
			b = knull(b, "runStatus")
		}
		if s.enabled {
			b = kstr(b, "status", "ENABLED")
		} else {
			b = kstr(b, "status", "DISABLED")
		}
		b = append(b, '}')
	}
	c.json(http.StatusOK, append(b, ']'))
}

func patchStream(c *call) { updateStream(c, false) }
func putStream(c *call)   { updateStream(c, true) }

// updateStream applies PATCH (only the given fields change) or PUT (the whole record is
// replaced: writable fields left out are cleared). Server-managed fields in the body
// (ids, history, last-run fields, the data source) are ignored. It answers the updated
// stream.
func updateStream(c *call, replace bool) {
	s, _ := c.pathStream()
	if s == nil {
		return
	}
	var m map[string]json.RawMessage
	if !c.decode(&m) {
		return
	}
	if m == nil {
		c.errorf(http.StatusBadRequest, "The body must be a JSON object")
		return
	}
	if err := c.st.applyStreamFields(s, m, replace); err != nil {
		c.errorf(http.StatusBadRequest, "%v", err)
		return
	}
	c.st.touch(&s.hist, c.tok.user)
	c.json(http.StatusOK, c.st.appendStream(nil, s, c.viewer()))
}

func deleteStream(c *call) {
	if s, _ := c.pathStream(); s != nil {
		c.st.deleteStream(s)
		c.noContent()
	}
}

func createStream(c *call) {
	var m map[string]json.RawMessage
	if !c.decode(&m) {
		return
	}
	if m == nil {
		c.errorf(http.StatusBadRequest, "The body must be a JSON object")
		return
	}
	var wsID flexInt
	if err := json.Unmarshal(m["workspaceId"], &wsID); err != nil || wsID == 0 {
		c.errorf(http.StatusBadRequest, "workspaceId is required")
		return
	}
	ws := c.workspaceByID(int64(wsID))
	if ws == nil {
		return
	}
	var src *connector
	var dsID flexInt
	if json.Unmarshal(m["dataSourceId"], &dsID) == nil && dsID != 0 {
		src = c.st.connByID[int64(dsID)]
	}
	var dsName string
	if src == nil && json.Unmarshal(m["dataSourceName"], &dsName) == nil {
		for _, k := range c.st.connectors {
			if strings.EqualFold(k.name, dsName) {
				src = k
			}
		}
	}
	if src == nil {
		c.errorf(http.StatusBadRequest, "dataSourceId or dataSourceName must name a known data source")
		return
	}
	var name string
	if json.Unmarshal(m["name"], &name) != nil || strings.TrimSpace(name) == "" {
		c.errorf(http.StatusBadRequest, "name is required")
		return
	}
	s := c.st.newStream(ws, src, c.tok.user)
	if _, ok := m["config"]; !ok {
		m["config"] = c.st.defaultConfig(s)
	}
	if _, ok := m["enabled"]; !ok {
		m["enabled"] = json.RawMessage("true")
	}
	if err := c.st.applyStreamFields(s, m, false); err != nil {
		c.st.dropNewStream(s)
		c.errorf(http.StatusBadRequest, "%v", err)
		return
	}
	c.st.queueSchedule(c.st.streamByID[s.id], c.st.now)
	c.json(http.StatusCreated, c.st.appendStream(nil, s, c.viewer()))
}

type processBody struct {
	StartDate string `json:"startDate"`
	EndDate   string `json:"endDate"`
}

func (c *call) dateRange(startDate, endDate string) (from, to int32, ok bool) {
	from, ok1 := parseDay(startDate)
	to, ok2 := parseDay(endDate)
	switch {
	case startDate == "" || endDate == "":
		c.errorf(http.StatusBadRequest, "startDate and endDate are required (yyyy-MM-dd)")
	case !ok1:
		c.errorf(http.StatusBadRequest, "startDate %q: want yyyy-MM-dd", startDate)
	case !ok2:
		c.errorf(http.StatusBadRequest, "endDate %q: want yyyy-MM-dd", endDate)
	case to < from:
		c.errorf(http.StatusBadRequest, "endDate %s is before startDate %s", endDate, startDate)
	default:
		return from, to, true
	}
	return 0, 0, false
}

func (c *call) jobList(jis []int32) []byte {
	b := []byte{'['}
	for _, ji := range jis {
		b = c.st.appendJob(b, &c.st.jobs[ji])
	}
	return append(b, ']')
}

// processStream splits the range into jobs of at most 10 days with consecutive ids,
// each PENDING, and answers them.
func processStream(c *call) {
	s, si := c.pathStream()
	if s == nil {
		return
	}
	var body processBody
	if !c.decode(&body) {
		return
	}
	from, to, ok := c.dateRange(body.StartDate, body.EndDate)
	if !ok {
		return
	}
	c.json(http.StatusOK, c.jobList(c.st.createJobs(si, from, to, originProcess, c.tok.user, true)))
}

// processStreams is the many-streams form. Every stream must exist and be visible, or
// nothing is processed. It answers every created job, stream by stream in the order
// given ([I]: the real body is unknown).
func processStreams(c *call) {
	var body struct {
		DataStreamIDs json.RawMessage `json:"dataStreamIds"`
		StartDate     string          `json:"startDate"`
		EndDate       string          `json:"endDate"`
		Create        json.RawMessage `json:"create"`
	}
	if !c.decode(&body) {
		return
	}
	var ids []flexInt
	if err := json.Unmarshal(body.DataStreamIDs, &ids); err != nil {
		var one flexInt
		if err2 := json.Unmarshal(body.DataStreamIDs, &one); err2 != nil || one == 0 {
			c.errorf(http.StatusBadRequest, "dataStreamIds: want an array of data stream ids")
			return
		}
		ids = []flexInt{one}
	}
	if len(ids) == 0 {
		c.errorf(http.StatusBadRequest, "dataStreamIds must not be empty")
		return
	}
	from, to, ok := c.dateRange(body.StartDate, body.EndDate)
	if !ok {
		return
	}
	sis := make([]int32, 0, len(ids))
	for _, id := range ids {
		_, si := c.stream(int64(id))
		if si < 0 {
			return
		}
		sis = append(sis, si)
	}
	var all []int32
	for _, si := range sis {
		all = append(all, c.st.createJobs(si, from, to, originProcess, c.tok.user, true)...)
	}
	c.json(http.StatusOK, c.jobList(all))
}

// listStats answers one page of a stream's jobs: 1-based pageNumber, pageSize capped
// silently at MaxPageSize, ordered by id (ascending by default), [] past the end.
func listStats(c *call) {
	s, _ := c.pathStream()
	if s == nil {
		return
	}
	var body struct {
		PageSize   *flexInt `json:"pageSize"`
		PageNumber *flexInt `json:"pageNumber"`
	}
	if len(bytes.TrimSpace(c.body)) > 0 && !c.decode(&body) {
		return
	}
	size, page := int64(100), int64(1)
	if body.PageSize != nil && *body.PageSize > 0 {
		size = int64(*body.PageSize)
	}
	if body.PageNumber != nil {
		page = int64(*body.PageNumber)
	}
	if page < 1 {
		c.errorf(http.StatusBadRequest, "pageNumber must be 1 or more")
		return
	}
	if max := int64(c.s.opts.MaxPageSize); size > max {
		size = max
		c.s.calls.note("page_size_capped")
	}
	n := int64(len(s.jobs))
	at := func(i int64) *job {
		if c.s.opts.StatsOrder == "desc" {
			i = n - 1 - i
		}
		return &c.st.jobs[s.jobs[i]]
	}
	start := (page - 1) * size
	switch {
	case c.fault == FaultRepeat && page > 1 && start < n:
		start -= size
		c.hit = true
	case c.fault == FaultEmptyPage && start+size < n:
		c.hit = true
		c.json(http.StatusOK, []byte("[]"))
		return
	}
	if start >= n {
		c.s.calls.note("stats_past_end")
	}
	b := []byte{'['}
	for i := start; i < min(n, start+size); i++ {
		b = c.st.appendJob(b, at(i))
	}
	c.json(http.StatusOK, append(b, ']'))
}

func getStat(c *call) {
	if j, _ := c.pathJob(); j != nil {
		c.json(http.StatusOK, c.st.appendJob(nil, j))
	}
}

// rerunJobs reruns the listed stats of the stream (body: a JSON array of stat ids) and
// answers the resulting jobs: new ones by default, the same ones reset to PENDING with
// RerunNewIDs false.
func rerunJobs(c *call) {
	s, si := c.pathStream()
	if s == nil {
		return
	}
	var ids []flexInt
	if !c.decode(&ids) {
		return
	}
	if len(ids) == 0 {
		c.errorf(http.StatusBadRequest, "The body must be a non-empty JSON array of stat ids")
		return
	}
	seen := map[int64]bool{}
	var jis []int32
	for _, id := range ids {
		ji := c.st.jobIndex(int64(id))
		if ji < 0 || c.st.jobs[ji].stream != si {
			c.errorf(http.StatusNotFound, "Stat %d not found in data stream %d", int64(id), s.id)
			return
		}
		if !seen[int64(id)] {
			seen[int64(id)] = true
			jis = append(jis, ji)
		}
	}
	if !c.s.opts.rerunNewIDs() {
		c.s.calls.note("rerun_reused_ids")
	}
	c.json(http.StatusOK, c.jobList(c.st.rerun(si, jis, c.tok.user)))
}

// rerunAll reruns, for every date range the stream has jobs for, the latest job of that
// range if it has finished ([I]: "rerun all of a stream's jobs", without re-running
// earlier attempts of the same range twice). It answers the resulting jobs, oldest
// range first.
func rerunAll(c *call) {
	s, si := c.pathStream()
	if s == nil {
		return
	}
	latest := map[[2]int32]int32{}
	for _, ji := range s.jobs {
		j := &c.st.jobs[ji]
		latest[[2]int32{j.dataStart, j.dataEnd}] = ji
	}
	var jis []int32
	for _, ji := range latest {
		if c.st.jobs[ji].final() {
			jis = append(jis, ji)
		}
	}
	sort.Slice(jis, func(a, b int) bool {
		ja, jb := &c.st.jobs[jis[a]], &c.st.jobs[jis[b]]
		if ja.dataStart != jb.dataStart {
			return ja.dataStart < jb.dataStart
		}
		return ja.dataEnd < jb.dataEnd
	})
	if !c.s.opts.rerunNewIDs() {
		c.s.calls.note("rerun_reused_ids")
	}
	c.json(http.StatusOK, c.jobList(c.st.rerun(si, jis, c.tok.user)))
}

func downloadAPI(c *call)     { download(c, false) }
func downloadDynamic(c *call) { download(c, true) }

// download streams a successful job's raw data: a zip holding one CSV for API streams,
// the CSV itself for TotalConnect streams. The other family's path answers 400; a job
// that has not succeeded has no data (404).
func download(c *call, dynamic bool) {
	j, s := c.pathJob()
	if j == nil {
		return
	}
	if s.source.totalConnect != dynamic {
		if dynamic {
			c.errorf(http.StatusBadRequest, "Stat %d belongs to an API data stream: use /v1/data-stream-stats/api/%d/download", j.id, j.id)
		} else {
			c.errorf(http.StatusBadRequest, "Stat %d belongs to a TotalConnect data stream: use /v1/data-stream-stats/dynamic/%d/download", j.id, j.id)
		}
		return
	}
	if j.status != stSuccess {
		c.errorf(http.StatusNotFound, "Stat %d has no data (status %s)", j.id, statusNames[j.status])
		return
	}
	csv := c.st.rawCSV(s, j)
	name := fmt.Sprintf("%d.csv", j.id)
	if dynamic {
		c.status = http.StatusOK
		c.header.Set("Content-Type", "text/csv; charset=utf-8")
		c.header.Set("Content-Disposition", `attachment; filename="`+name+`"`)
		c.out = csv
		return
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	fw, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: time.UnixMilli(j.end).UTC()})
	if err == nil {
		_, err = fw.Write(csv)
	}
	if err == nil {
		err = zw.Close()
	}
	if err != nil {
		c.errorf(http.StatusInternalServerError, "building the download: %v", err)
		return
	}
	c.status = http.StatusOK
	c.header.Set("Content-Type", "application/zip")
	c.header.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%d.zip"`, j.id))
	c.out = buf.Bytes()
}

// rawCSV is a job's raw data: per day of its range, a few campaign lines whose numbers
// add up to the day's impressions, clicks and cost; at most DownloadMaxLines lines.
func (st *State) rawCSV(s *stream, j *job) []byte {
	b := []byte("Date,Data Stream,Campaign,Impressions,Clicks,Media Cost\n")
	lines := 0
	for d := j.dataStart; d <= j.dataEnd && lines < st.opts.DownloadMaxLines; d++ {
		v := st.daily(s, d)
		const parts = 3
		for p := int64(0); p < parts && lines < st.opts.DownloadMaxLines; p++ {
			share := func(x int64) int64 {
				if p == parts-1 {
					return x - 2*(x/parts)
				}
				return x / parts
			}
			cost := share(v.costCents)
			b = fmt.Appendf(b, "%s,%d,Campaign %d,%d,%d,%d.%02d\n", dayString(d), s.id, p+1,
				share(v.impressions), share(v.clicks), cost/100, cost%100)
			lines++
		}
	}
	return b
}

func getMapping(c *call) {
	if s, _ := c.pathStream(); s != nil {
		c.json(http.StatusOK, s.mappingOf())
	}
}

// putMapping replaces the stream's mapping with the body (a JSON object). The mapping is
// also the config's "mapping" entry, so the stream's config and updateTime change too.
func putMapping(c *call) {
	s, _ := c.pathStream()
	if s == nil {
		return
	}
	var m map[string]json.RawMessage
	if !c.decode(&m) {
		return
	}
	if m == nil {
		c.errorf(http.StatusBadRequest, "The mapping must be a JSON object")
		return
	}
	m["dataStreamId"] = json.RawMessage(strconv.FormatInt(s.id, 10))
	if s.config == nil {
		s.config = map[string]json.RawMessage{}
	}
	s.config["mapping"] = appendObject(nil, m)
	c.st.touch(&s.hist, c.tok.user)
	c.json(http.StatusOK, s.mappingOf())
}

func listDimensions(c *call) {
	if ws := c.workspace(); ws != nil {
		c.json(http.StatusOK, c.st.appendFieldMap(nil, ws.dims, ws, c.viewer()))
	}
}

func listMeasurements(c *call) {
	if ws := c.workspace(); ws != nil {
		c.json(http.StatusOK, c.st.appendFieldMap(nil, ws.meas, ws, c.viewer()))
	}
}

func listHarmonized(c *call) {
	if ws := c.workspace(); ws != nil {
		c.json(http.StatusOK, c.st.appendHarmonized(nil, ws, c.viewer()))
	}
}

func listPatterns(c *call) {
	if ws := c.workspace(); ws != nil {
		c.json(http.StatusOK, c.st.appendPatterns(nil, ws, c.viewer()))
	}
}

// createPattern creates a pattern of a harmonized dimension: the body names
// workspaceId, harmonizedDimensionId and name. It answers 201 with the pattern.
func createPattern(c *call) {
	var body struct {
		WorkspaceID           flexInt `json:"workspaceId"`
		HarmonizedDimensionID flexInt `json:"harmonizedDimensionId"`
		Name                  string  `json:"name"`
		SourceDimension       string  `json:"sourceDimension"`
		Expression            string  `json:"expression"`
		Value                 string  `json:"value"`
	}
	if !c.decode(&body) {
		return
	}
	if body.WorkspaceID == 0 {
		c.errorf(http.StatusBadRequest, "workspaceId is required")
		return
	}
	ws := c.workspaceByID(int64(body.WorkspaceID))
	if ws == nil {
		return
	}
	found := false
	for _, h := range ws.harmonized {
		found = found || h.id == int64(body.HarmonizedDimensionID)
	}
	if !found {
		c.errorf(http.StatusBadRequest, "harmonizedDimensionId %d is not a harmonized dimension of workspace %d", int64(body.HarmonizedDimensionID), ws.id)
		return
	}
	if strings.TrimSpace(body.Name) == "" {
		c.errorf(http.StatusBadRequest, "name is required")
		return
	}
	p := pattern{
		id: c.st.newEntityID(), harmonizedDimID: int64(body.HarmonizedDimensionID), name: body.Name,
		sourceDimension: body.SourceDimension, expression: body.Expression, value: body.Value,
		hist: c.st.hist(c.now, c.tok.user),
	}
	ws.patterns = append(ws.patterns, p)
	c.json(http.StatusCreated, c.st.appendPattern(nil, &ws.patterns[len(ws.patterns)-1], ws, c.viewer()))
}

func listCalcs(c *call) {
	if ws := c.workspace(); ws != nil {
		c.json(http.StatusOK, c.st.appendCalcs(nil, ws, c.viewer()))
	}
}

// createCalc creates a calculated measurement from a body with at least name and
// formula; a workspaceId in the body must match the path. An empty body (the bug of the
// one client that calls it) answers 400. It answers 201 with the created measurement.
func createCalc(c *call) {
	ws := c.workspace()
	if ws == nil {
		return
	}
	var body struct {
		WorkspaceID *flexInt `json:"workspaceId"`
		OriginalID  flexInt  `json:"originalId"`
		Name        string   `json:"name"`
		SystemName  string   `json:"systemName"`
		Formula     string   `json:"formula"`
	}
	if !c.decode(&body) {
		return
	}
	if body.WorkspaceID != nil && int64(*body.WorkspaceID) != ws.id {
		c.errorf(http.StatusBadRequest, "workspaceId %d does not match the path's workspace %d", int64(*body.WorkspaceID), ws.id)
		return
	}
	if strings.TrimSpace(body.Name) == "" || strings.TrimSpace(body.Formula) == "" {
		c.errorf(http.StatusBadRequest, "name and formula are required")
		return
	}
	sys := body.SystemName
	if sys == "" {
		sys = "CALC_" + strings.ToUpper(strings.Join(strings.Fields(body.Name), "_"))
	}
	cm := calcMeasurement{
		id: c.st.newEntityID(), originalID: int64(body.OriginalID), name: body.Name, systemName: sys,
		formula: body.Formula, hist: c.st.hist(c.now, c.tok.user),
	}
	ws.calcs = append(ws.calcs, cm)
	c.json(http.StatusCreated, c.st.appendCalc(nil, &ws.calcs[len(ws.calcs)-1], ws, c.viewer()))
}

func getConnector(c *call) {
	id, ok := c.pathID("id")
	if !ok {
		return
	}
	k := c.st.connByID[id]
	if k == nil {
		c.errorf(http.StatusNotFound, "Connector %d not found", id)
		return
	}
	c.json(http.StatusOK, appendConnector(nil, k))
}

func getDashboards(c *call) {
	if ws := c.workspace(); ws != nil {
		c.json(http.StatusOK, c.st.appendDashboards(nil, ws, c.viewer()))
	}
}

// flexInt decodes a number or a numeric string ("27405"), as the API's examples send
// ids both ways.
type flexInt int64

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.Trim(strings.TrimSpace(string(b)), `"`)
	if s == "" || s == "null" {
		*f = 0
		return nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		fv, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || fv != float64(int64(fv)) {
			return fmt.Errorf("want an integer, got %s", b)
		}
		v = int64(fv)
	}
	*f = flexInt(v)
	return nil
}
