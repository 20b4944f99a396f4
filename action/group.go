package action

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/drextract/drextract/datorama"
)

// Grouping: how planned items become API calls. Reruns go one call per stream, ranges
// one batch call per shared chunk, everything else one call per stream; the pending cap
// and the batch limit only ever cut calls smaller.

// jobsForRange is how many jobs processing start..end creates when sent in chunks of
// chunkDays: Datorama splits each request into jobs of at most ten days.
func jobsForRange(start, end datorama.Date, chunkDays int) int {
	n := 0
	for _, ch := range chunksOf(start, start, end, chunkDays) {
		n += ceilDiv(days(ch[0], ch[1]), apiChunkDays)
	}
	return n
}

func days(a, b datorama.Date) int { return int(b.Sub(a.Time).Hours()/24+0.5) + 1 }

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// chunksOf cuts start..end into pieces on a grid of n days anchored at anchor, so that
// streams with different ranges still share the pieces they have in common.
func chunksOf(anchor, start, end datorama.Date, n int) [][2]datorama.Date {
	var out [][2]datorama.Date
	off := days(anchor, start) - 1 // days from the anchor to start
	cellStart := anchor.AddDays(off - off%n)
	for d := start; !d.After(end.Time); {
		cellEnd := cellStart.AddDays(n - 1)
		to := cellEnd
		if to.After(end.Time) {
			to = end
		}
		out = append(out, [2]datorama.Date{d, to})
		cellStart = cellEnd.AddDays(1)
		d = cellStart
	}
	return out
}

// group turns the planned items into calls, in a stable order.
func (e *Engine) group(p *Plan) {
	var calls []*Call
	planned := make([]*Item, 0, len(p.Items))
	for _, it := range p.Items {
		if it.Status == StatusPlanned {
			planned = append(planned, it)
		}
	}
	switch p.Op {
	case OpRerun:
		calls = groupRerun(p, planned)
	case OpProcess:
		calls = e.groupProcess(p, planned)
	default:
		for _, it := range planned {
			c := &Call{Op: p.Op, WorkspaceID: it.WorkspaceID, StreamIDs: []int64{it.Row.StreamID}, ExpectedJobs: it.ExpectedJobs}
			switch p.Op {
			case OpCreateStream, OpCreatePattern, OpCreateCalc:
				c.StreamIDs, c.Body = nil, withWorkspace(it.Row.Body, it.WorkspaceID)
			case OpRename:
				c.Body, _ = json.Marshal(map[string]string{"name": it.Row.Name})
			case OpEnable, OpDisable:
				c.Body, _ = json.Marshal(map[string]bool{"enabled": p.Op == OpEnable})
			case OpPatch, OpPut, OpMapping:
				c.Body = it.Row.Patch
			case OpDownload:
				c.JobIDs = []int64{it.Row.JobID}
				s := p.streams[it.Row.StreamID]
				c.TotalConnect = s != nil && s.totalConnect()
				c.OutPath = downloadPath(p.Options, it.Row, c.TotalConnect, len(planned))
			}
			calls = append(calls, attach(c, it))
		}
	}
	for i, c := range calls {
		c.No = i + 1
		c.status = StatusPlanned
		c.KnownMaxJobIDs = map[int64]int64{}
		for _, it := range c.Items {
			if it.Row.StreamID != 0 {
				c.KnownMaxJobIDs[it.Row.StreamID] = it.KnownMaxJobID
			}
		}
		p.APICalls += c.Op.callsPerUnit()
		if p.Options.QueueMax > 0 && c.ExpectedJobs > p.Options.QueueMax && len(c.StreamIDs) > 0 {
			p.Warnings = append(p.Warnings, fmt.Sprintf("call %d (%s of stream %d) should create about %d jobs, more than --queue-max %d; it is sent alone once nothing else of ours is pending", c.No, c.Op, c.StreamIDs[0], c.ExpectedJobs, p.Options.QueueMax))
		}
	}
	p.Calls = calls
}

// groupRerun sends one call per stream with all its jobs. When a workspace has more
// jobs to rerun than the pending cap allows at once, the calls are cut small and taken
// round-robin across its streams instead: Datorama runs one job per stream at a time, so
// jobs spread over many streams finish sooner and free the cap sooner than a queue of
// them on one stream.
func groupRerun(p *Plan, planned []*Item) []*Call {
	type stream struct {
		id    int64
		ws    int64
		items []*Item
	}
	var order []*stream
	byID := map[int64]*stream{}
	perWS := map[int64]int{}     // jobs to rerun per workspace
	streamsWS := map[int64]int{} // streams per workspace
	for _, it := range planned {
		s := byID[it.Row.StreamID]
		if s == nil {
			s = &stream{id: it.Row.StreamID, ws: it.WorkspaceID}
			byID[s.id] = s
			order = append(order, s)
			streamsWS[s.ws]++
		}
		s.items = append(s.items, it)
		perWS[it.WorkspaceID]++
	}
	cut := func(s *stream) int {
		q := p.Options.QueueMax
		if q <= 0 || perWS[s.ws] <= q {
			return 0 // one call per stream
		}
		return max(1, q/streamsWS[s.ws])
	}
	parts := make([][][]*Item, len(order))
	rounds := 0
	for i, s := range order {
		sort.Slice(s.items, func(a, b int) bool { return s.items[a].Row.JobID < s.items[b].Row.JobID })
		parts[i] = splitN(s.items, cut(s))
		rounds = max(rounds, len(parts[i]))
	}
	var calls []*Call
	for r := 0; r < rounds; r++ { // round-robin; without a cut there is one round
		for i, s := range order {
			if r >= len(parts[i]) {
				continue
			}
			part := parts[i][r]
			c := &Call{Op: OpRerun, WorkspaceID: s.ws, StreamIDs: []int64{s.id}}
			for _, it := range part {
				c.JobIDs = append(c.JobIDs, it.Row.JobID)
				c.ExpectedJobs++
			}
			calls = append(calls, attach(c, part...))
		}
	}
	return calls
}

// groupProcess cuts every item's range on one grid and sends one call per (workspace,
// chunk) for all the streams that need that chunk: 300 streams × 31 days in 10-day
// chunks is 4 calls, not 1,200. Calls are split further only by the batch limit and
// the pending cap.
func (e *Engine) groupProcess(p *Plan, planned []*Item) []*Call {
	if len(planned) == 0 {
		return nil
	}
	anchor := planned[0].Row.StartDate
	for _, it := range planned {
		if it.Row.StartDate.Before(anchor.Time) {
			anchor = it.Row.StartDate
		}
	}
	type key struct {
		ws         int64
		start, end string
	}
	groups := map[key][]*Item{}
	for _, it := range planned {
		for _, ch := range chunksOf(anchor, it.Row.StartDate, it.Row.EndDate, p.Options.ChunkDays) {
			k := key{it.WorkspaceID, ch[0].String(), ch[1].String()}
			groups[k] = append(groups[k], it)
		}
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.start != b.start {
			return a.start < b.start
		}
		if a.end != b.end {
			return a.end < b.end
		}
		return a.ws < b.ws
	})
	for _, it := range planned {
		it.ExpectedJobs = 0 // recounted on the shared grid below
	}
	var calls []*Call
	for _, k := range keys {
		its := groups[k]
		sort.Slice(its, func(i, j int) bool { return its[i].Row.StreamID < its[j].Row.StreamID })
		start, _ := datorama.ParseDate(k.start)
		end, _ := datorama.ParseDate(k.end)
		per := ceilDiv(days(start, end), apiChunkDays)
		size := maxBatchStreams
		if q := p.Options.QueueMax; q > 0 && q/per < size {
			size = max(1, q/per)
		}
		for _, part := range splitN(its, size) {
			c := &Call{Op: OpProcess, WorkspaceID: k.ws, Start: start, End: end, ExpectedJobs: per * len(part)}
			for _, it := range part {
				c.StreamIDs = append(c.StreamIDs, it.Row.StreamID)
				it.ExpectedJobs += per
			}
			calls = append(calls, attach(c, part...))
		}
	}
	return calls
}

func attach(c *Call, items ...*Item) *Call {
	c.Items = append(c.Items, items...)
	for _, it := range items {
		it.calls = append(it.calls, c)
	}
	return c
}

// splitN cuts s into pieces of at most n (n <= 0: one piece).
func splitN[T any](s []T, n int) [][]T {
	if n <= 0 || len(s) <= n {
		return [][]T{s}
	}
	var out [][]T
	for len(s) > 0 {
		k := min(n, len(s))
		out = append(out, s[:k:k])
		s = s[k:]
	}
	return out
}

func downloadPath(o Options, r Row, totalConnect bool, n int) string {
	if o.OutFile != "" && n == 1 {
		return o.OutFile
	}
	ext := ".zip"
	if totalConnect {
		ext = ".csv"
	}
	return filepath.Join(o.OutDir, fmt.Sprintf("stream-%d_job-%d%s", r.StreamID, r.JobID, ext))
}
