package sim

// The event engine. Everything that happens by itself — a job leaving PENDING, a job
// finishing, a stream's daily run — is an event in one time-ordered queue, applied when
// the account is caught up to the clock. Events of equal time apply in the order they
// were queued, so the account's state is a pure function of the seed, the clock and the
// requests made.
//
// Outcomes and durations come from hashing (seed, job id, attempt), not from a
// sequential generator, so a job's fate does not depend on how often, or when, the
// account is caught up.

const (
	evSchedule uint8 = iota // idx = stream; the daily run
	evStart                 // idx = job; the queue head starts
	evFinish                // idx = job; the running job ends
	evAction                // idx = State.actions; a user action of the generated history
)

type event struct {
	at      int64
	seq     uint64
	idx     int32
	kind    uint8
	attempt uint8
}

// eventQueue is a binary min-heap on (at, seq), written out rather than via
// container/heap because it runs for every job several times.
type eventQueue struct {
	h   []event
	seq uint64
}

func (q *eventQueue) less(a, b int) bool {
	if q.h[a].at != q.h[b].at {
		return q.h[a].at < q.h[b].at
	}
	return q.h[a].seq < q.h[b].seq
}

func (q *eventQueue) push(e event) {
	q.seq++
	e.seq = q.seq
	q.h = append(q.h, e)
	i := len(q.h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q.h[i], q.h[p] = q.h[p], q.h[i]
		i = p
	}
}

func (q *eventQueue) pop() event {
	top := q.h[0]
	n := len(q.h) - 1
	q.h[0] = q.h[n]
	q.h = q.h[:n]
	i := 0
	for {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && q.less(l, m) {
			m = l
		}
		if r < n && q.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		q.h[i], q.h[m] = q.h[m], q.h[i]
		i = m
	}
	return top
}

// advanceTo applies every event due at or before t, then sets the account's time to t.
// It never moves time backwards.
func (st *State) advanceTo(t int64) {
	for len(st.events.h) > 0 && st.events.h[0].at <= t {
		e := st.events.pop()
		if e.at > st.now {
			st.now = e.at
		}
		switch e.kind {
		case evSchedule:
			st.fireSchedule(e.idx)
		case evStart:
			st.startJob(e.idx, e.attempt)
		case evFinish:
			st.finishJob(e.idx, e.attempt)
		case evAction:
			st.fireAction(e.idx)
		}
	}
	if t > st.now {
		st.now = t
	}
}

// splitmix64 finaliser: a good 64-bit mix for hashing small tuples.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (st *State) hash(a, b uint64) uint64 { return mix(mix(st.seed^a) ^ b) }

func (st *State) hash3(a, b, c uint64) uint64 { return mix(mix(mix(st.seed^a)^b) ^ c) }

// unit maps a hash to [0,1).
func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

// span maps a hash to [lo, hi].
func span(h uint64, lo, hi int64) int64 { return lo + int64(h%uint64(hi-lo+1)) }

const (
	saltQueue uint64 = iota + 1
	saltRun
	saltStuck
	saltOutcome
	saltReason
	saltNext
	saltRows
	saltGap
)

// scheduleAt returns the time of the stream's daily run on day d.
func (s *stream) scheduleAt(d int32) int64 {
	m := int64(s.schedMin)
	if s.retrievalHour >= 0 {
		m = int64(s.retrievalHour)*60 + m%60
	}
	return int64(d)*dayMs + m*60000
}

// queueSchedule puts the stream's next daily run at or after t into the event queue.
func (st *State) queueSchedule(si int32, after int64) {
	s := st.streams[si]
	d := int32(floorDiv(after, dayMs))
	at := s.scheduleAt(d)
	if at < after {
		at = s.scheduleAt(d + 1)
	}
	st.events.push(event{at: at, kind: evSchedule, idx: si})
}

func (st *State) fireSchedule(si int32) {
	s := st.streams[si]
	if s.deleted {
		return
	}
	if s.enabled && !s.runOnlyAsPartOfWorkflow {
		day := int32(floorDiv(st.now, dayMs))
		st.createJobs(si, day, day, originScheduled, s.hist.createUser, false)
	}
	st.queueSchedule(si, st.now+1)
}

// createJobs queues jobs for the stream over [from, to], split into chunks of at most
// chunk days with consecutive ids (chunk 0 means one job). It returns their indices.
func (st *State) createJobs(si int32, from, to int32, origin uint8, u int32, chunked bool) []int32 {
	st.nextJobID += span(st.hash(uint64(st.nextJobID), saltGap), 1, 40)
	var out []int32
	for d := from; d <= to; {
		end := to
		if chunked && end-d >= 10 {
			end = d + 9
		}
		st.nextJobID++
		st.jobs = append(st.jobs, job{
			id: st.nextJobID, created: st.now, stream: si, dataStart: d, dataEnd: end,
			user: u, status: stPending, origin: origin,
		})
		ji := int32(len(st.jobs) - 1)
		s := st.streams[si]
		s.jobs = append(s.jobs, ji)
		st.enqueue(si, ji)
		out = append(out, ji)
		d = end + 1
	}
	return out
}

// enqueue puts a PENDING job at the back of its stream's run queue.
func (st *State) enqueue(si, ji int32) {
	s := st.streams[si]
	s.queue = append(s.queue, ji)
	st.kick(si, false)
}

// kick makes sure the queue head will start, if nothing runs on the stream: after
// 20s–5min of queueing, or 5–60s when it follows a job that just ended (next=true).
func (st *State) kick(si int32, next bool) {
	s := st.streams[si]
	if s.running >= 0 || s.startQueued || len(s.queue) == 0 {
		return
	}
	head := s.queue[0]
	j := &st.jobs[head]
	var wait int64
	if next {
		wait = span(st.hash3(uint64(j.id), uint64(j.attempt), saltNext), 5, 60) * 1000
	} else {
		wait = span(st.hash3(uint64(j.id), uint64(j.attempt), saltQueue), 20, 300) * 1000
	}
	s.startQueued = true
	st.events.push(event{at: st.now + wait, kind: evStart, idx: head, attempt: j.attempt})
}

func (st *State) startJob(ji int32, attempt uint8) {
	j := &st.jobs[ji]
	s := st.streams[j.stream]
	s.startQueued = false
	if s.deleted {
		return
	}
	if j.attempt != attempt || j.status != stPending || len(s.queue) == 0 || s.queue[0] != ji {
		// The job was reset or removed since; start whatever heads the queue now.
		st.kick(j.stream, true)
		return
	}
	s.queue = s.queue[1:]
	j.status = stInProgress
	j.start = st.now
	s.running = ji
	st.events.push(event{at: st.now + st.runTime(j), kind: evFinish, idx: ji, attempt: j.attempt})
}

// runTime is how long a job stays IN_PROGRESS: 1–25 minutes, or 3–30 hours for the 1%
// that get stuck.
func (st *State) runTime(j *job) int64 {
	h := st.hash3(uint64(j.id), uint64(j.attempt), saltRun)
	if unit(st.hash3(uint64(j.id), uint64(j.attempt), saltStuck)) < 0.01 {
		return span(h, 3*3600, 30*3600) * 1000
	}
	return span(h, 60, 25*60) * 1000
}

// failBroken is the failure chance of a stream after it broke (say, its credentials
// expired): almost every run fails until someone fixes it.
const failBroken = 0.97

func (st *State) finishJob(ji int32, attempt uint8) {
	j := &st.jobs[ji]
	s := st.streams[j.stream]
	if s.deleted || j.attempt != attempt || j.status != stInProgress {
		return
	}
	j.end = st.now
	fail := false
	switch s.outcome {
	case 1:
		fail = true
	case 2:
	default:
		p := float64(s.failP)
		if s.brokenFrom != 0 && int32(floorDiv(st.now, dayMs)) >= s.brokenFrom {
			p = failBroken
		}
		fail = unit(st.hash3(uint64(j.id), uint64(j.attempt), saltOutcome)) < p
	}
	if fail {
		j.status = stFailure
		j.reason = uint8(st.hash3(uint64(j.id), uint64(j.attempt), saltReason) % uint64(len(failReasons)))
		if s.brokenFrom != 0 {
			j.reason = 0
		}
		if s.source.totalConnect && j.reason == 1 {
			j.reason = 4
		}
	} else {
		j.status = stSuccess
	}
	s.running = -1
	st.recordLastRun(s, j)
	st.kick(j.stream, true)
}

// recordLastRun updates the stream's last-run fields from a job that just finished.
func (st *State) recordLastRun(s *stream, j *job) {
	s.lastStatus = j.status
	s.lastUpdate = j.end
	if j.status == stSuccess {
		rows := st.jobRows(s, j)
		s.lastRows = rows
		s.processedRows += rows
		if j.dataEnd > s.lastDataDate {
			s.lastDataDate = j.dataEnd
		}
		if rows > 0 {
			s.hasData = true
		}
	} else {
		s.lastRows = 0
	}
}

// rerun makes the listed jobs run again: as new jobs (RerunNewIDs, the default) with
// consecutive ids, or by resetting final jobs to PENDING in place. A job that is still
// PENDING or IN_PROGRESS is not reset; it is answered as it is.
func (st *State) rerun(si int32, jis []int32, u int32) []int32 {
	if st.opts.rerunNewIDs() {
		st.nextJobID += span(st.hash(uint64(st.nextJobID), saltGap), 1, 40)
		out := make([]int32, 0, len(jis))
		for _, old := range jis {
			o := st.jobs[old]
			st.nextJobID++
			st.jobs = append(st.jobs, job{
				id: st.nextJobID, created: st.now, stream: si, dataStart: o.dataStart,
				dataEnd: o.dataEnd, user: u, status: stPending, origin: originRerun,
			})
			ji := int32(len(st.jobs) - 1)
			st.streams[si].jobs = append(st.streams[si].jobs, ji)
			st.enqueue(si, ji)
			out = append(out, ji)
		}
		return out
	}
	for _, ji := range jis {
		j := &st.jobs[ji]
		if !j.final() {
			continue
		}
		j.status = stPending
		j.start, j.end, j.reason = 0, 0, 0
		j.created = st.now
		j.attempt++
		j.user = u
		j.origin = originRerun
		st.enqueue(si, ji)
	}
	return jis
}

// deleteStream removes a stream: it answers 404 from now on, its queued jobs never run,
// and its jobs leave the truth with it.
func (st *State) deleteStream(s *stream) {
	s.deleted = true
	s.queue = nil
	s.running = -1
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

var failReasons = []string{
	"Authentication failed: the access token has expired",
	"The data provider rejected the request: rate limit exceeded",
	"Timeout while retrieving data from the data provider",
	"Mapping error: column 'campaign_id' not found in the source data",
	"No file matched the pattern for this date",
	"Internal error while processing data",
}
