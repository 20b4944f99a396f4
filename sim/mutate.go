package sim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Edits of the account. The API handlers and the Go/HTTP controls share them, so a
// rename through Mutate and a PATCH of the name leave the same trace (updateTime, the
// updating user).

// setField applies the writable field k of m to dst: absent leaves dst alone (PATCH) or
// clears it (PUT, replace), JSON null clears it, anything else is decoded by dec. On a
// decoding error dst is unchanged.
func setField[T any](m map[string]json.RawMessage, replace bool, k string, dst *T, dec func(json.RawMessage) (T, error)) error {
	var zero T
	v, ok := m[k]
	switch {
	case !ok:
		if replace {
			*dst = zero
		}
	case string(bytes.TrimSpace(v)) == "null":
		*dst = zero
	default:
		x, err := dec(v)
		if err != nil {
			return err
		}
		*dst = x
	}
	return nil
}

// applyStreamFields sets the writable fields present in m. With replace (PUT) the
// writable fields absent from m are cleared. On error s is unchanged.
func (st *State) applyStreamFields(s *stream, m map[string]json.RawMessage, replace bool) error {
	ns := *s
	isNull := func(v json.RawMessage) bool { return string(bytes.TrimSpace(v)) == "null" }
	str := func(k string, dst *string) error {
		return setField(m, replace, k, dst, func(v json.RawMessage) (x string, err error) {
			if json.Unmarshal(v, &x) != nil {
				err = fmt.Errorf("%s: want a string", k)
			}
			return x, err
		})
	}
	boolean := func(k string, dst *bool) error {
		return setField(m, replace, k, dst, func(v json.RawMessage) (x bool, err error) {
			if json.Unmarshal(v, &x) != nil {
				err = fmt.Errorf("%s: want true or false", k)
			}
			return x, err
		})
	}
	id := func(k string, dst *int64) error {
		return setField(m, replace, k, dst, func(v json.RawMessage) (int64, error) {
			if string(bytes.TrimSpace(v)) == `"null"` {
				return 0, nil
			}
			var f flexInt
			if err := json.Unmarshal(v, &f); err != nil || f < 0 {
				return 0, fmt.Errorf("%s: want an id or null", k)
			}
			return int64(f), nil
		})
	}
	raw := func(k string, dst *json.RawMessage) error {
		return setField(m, replace, k, dst, func(v json.RawMessage) (json.RawMessage, error) {
			var buf bytes.Buffer
			if err := json.Compact(&buf, v); err != nil {
				return nil, fmt.Errorf("%s: %v", k, err)
			}
			return buf.Bytes(), nil
		})
	}
	errs := []error{
		str("name", &ns.name),
		boolean("enabled", &ns.enabled),
		id("dataSourceAuthenticationId", &ns.authID),
		id("templateId", &ns.templateID),
		id("parentInstanceId", &ns.parentInstanceID),
		boolean("runOnlyAsPartOfWorkflow", &ns.runOnlyAsPartOfWorkflow),
		raw("dataLoadMode", &ns.dataLoadMode),
		raw("retrievalPeriodType", &ns.retrievalPeriodType),
		id("channelId", &ns.channelID),
	}
	for i := range ns.customAttrs {
		errs = append(errs, str("customAttribute"+strconv.Itoa(i+1), &ns.customAttrs[i]))
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if v, ok := m["retrievalPeriodHour"]; ok && !isNull(v) {
		var h flexInt
		if err := json.Unmarshal(v, &h); err != nil || h < 0 || h > 23 {
			return fmt.Errorf("retrievalPeriodHour: want an hour from 0 to 23 or null")
		}
		ns.retrievalHour = int16(h)
	} else if ok || replace {
		ns.retrievalHour = -1
	}
	if v, ok := m["config"]; ok && !isNull(v) {
		var cfg map[string]json.RawMessage
		if err := json.Unmarshal(v, &cfg); err != nil || cfg == nil {
			return fmt.Errorf("config: want a JSON object")
		}
		for k, e := range cfg {
			var buf bytes.Buffer
			if err := json.Compact(&buf, e); err != nil {
				return fmt.Errorf("config.%s: %v", k, err)
			}
			cfg[k] = buf.Bytes()
		}
		if mp, ok := cfg["mapping"]; ok {
			var mm map[string]json.RawMessage
			if json.Unmarshal(mp, &mm) != nil || mm == nil {
				return fmt.Errorf("config.mapping: want a JSON object")
			}
			mm["dataStreamId"] = json.RawMessage(strconv.FormatInt(s.id, 10))
			cfg["mapping"] = appendObject(nil, mm)
		}
		ns.config = cfg
	} else if ok || replace {
		ns.config = nil
	}
	*s = ns
	return nil
}

// newStream adds a stream with fresh ids and a data model drawn from its id.
func (st *State) newStream(ws *workspace, src *connector, u int32) *stream {
	st.nextStreamID += 1 + int64(st.hash(uint64(st.nextStreamID), 0x5e7)%400)
	id := st.nextStreamID
	h := func(salt uint64) uint64 { return st.hash(uint64(id), salt) }
	s := &stream{
		id: id, ws: ws, source: src, enabled: true, templateID: src.templateID, running: -1,
		retrievalHour: int16(h(1) % 24), schedMin: int32(h(2) % 60), failP: 0.02,
		rowsBase: 50 + int64(h(3)%20000), imprPerRow: 5 + int32(h(4)%195),
		ctrMilli: 2 + int32(h(5)%38), cpmCents: 100 + int32(h(6)%1900),
		hist: st.hist(st.now, u),
	}
	st.streams = append(st.streams, s)
	si := int32(len(st.streams) - 1)
	st.streamByID[id] = si
	ws.streams = append(ws.streams, si)
	return s
}

// dropNewStream undoes newStream for a stream that failed validation.
func (st *State) dropNewStream(s *stream) {
	delete(st.streamByID, s.id)
	st.streams = st.streams[:len(st.streams)-1]
	s.ws.streams = s.ws.streams[:len(s.ws.streams)-1]
}

func (st *State) defaultConfig(s *stream) json.RawMessage {
	return appendObject(nil, map[string]json.RawMessage{"mapping": st.defaultMapping(s)})
}

// The methods below are the supported edits for Sim.Mutate. They act as user 1 (the
// owner of token 1) where an entity records who changed it.

// Now is the account's current time.
func (st *State) Now() time.Time { return time.UnixMilli(st.now).UTC() }

// WorkspaceIDs lists the workspaces, ascending.
func (st *State) WorkspaceIDs() []int64 {
	out := make([]int64, len(st.workspaces))
	for i, ws := range st.workspaces {
		out[i] = ws.id
	}
	return out
}

// StreamIDs lists the live streams of a workspace (0: of every workspace), ascending.
func (st *State) StreamIDs(wsID int64) []int64 {
	var out []int64
	for _, s := range st.streams {
		if !s.deleted && (wsID == 0 || s.ws.id == wsID) {
			out = append(out, s.id)
		}
	}
	slices.Sort(out)
	return out
}

// JobStatus returns a job's status ("SUCCESS", …), or false if there is no such job.
func (st *State) JobStatus(id int64) (string, bool) {
	ji := st.jobIndex(id)
	if ji < 0 {
		return "", false
	}
	return statusNames[st.jobs[ji].status], true
}

func (st *State) live(id int64) (*stream, error) {
	s := st.streamOf(id)
	if s == nil {
		return nil, fmt.Errorf("data stream %d: not found", id)
	}
	return s, nil
}

// RenameStream renames a stream; its updateTime moves to now.
func (st *State) RenameStream(id int64, name string) error {
	s, err := st.live(id)
	if err != nil {
		return err
	}
	s.name = name
	st.touch(&s.hist, 0)
	return nil
}

// SetStreamEnabled enables or disables a stream's scheduled runs.
func (st *State) SetStreamEnabled(id int64, enabled bool) error {
	s, err := st.live(id)
	if err != nil {
		return err
	}
	s.enabled = enabled
	st.touch(&s.hist, 0)
	return nil
}

// SetStreamConfig sets one key of a stream's config (value is JSON); its updateTime
// moves to now.
func (st *State) SetStreamConfig(id int64, key string, value json.RawMessage) error {
	s, err := st.live(id)
	if err != nil {
		return err
	}
	if !json.Valid(value) {
		return fmt.Errorf("config %s: value is not JSON", key)
	}
	if s.config == nil {
		s.config = map[string]json.RawMessage{}
	}
	s.config[key] = append(json.RawMessage(nil), value...)
	st.touch(&s.hist, 0)
	return nil
}

// DeleteStream deletes a stream, as DELETE /v1/data-streams/{id} does.
func (st *State) DeleteStream(id int64) error {
	s, err := st.live(id)
	if err != nil {
		return err
	}
	st.deleteStream(s)
	return nil
}

// SetStreamOutcome fixes how the stream's jobs end from now on: "fail", "succeed", or
// "random" (the stream's normal failure rate).
func (st *State) SetStreamOutcome(id int64, outcome string) error {
	s, err := st.live(id)
	if err != nil {
		return err
	}
	switch outcome {
	case "random", "":
		s.outcome = 0
	case "fail":
		s.outcome = 1
	case "succeed":
		s.outcome = 2
	default:
		return fmt.Errorf("outcome %q: want fail, succeed or random", outcome)
	}
	return nil
}

// AddStream creates a stream of the named data source in a workspace, as POST
// /v1/data-streams does, and returns its id.
func (st *State) AddStream(wsID int64, dataSourceName, name string) (int64, error) {
	ws := st.workspace(wsID)
	if ws == nil {
		return 0, fmt.Errorf("workspace %d: not found", wsID)
	}
	var src *connector
	for _, c := range st.connectors {
		if strings.EqualFold(c.name, dataSourceName) {
			src = c
		}
	}
	if src == nil {
		return 0, fmt.Errorf("data source %q: not found", dataSourceName)
	}
	s := st.newStream(ws, src, 0)
	s.name = name
	var cfg map[string]json.RawMessage
	_ = json.Unmarshal(st.defaultConfig(s), &cfg)
	s.config = cfg
	st.queueSchedule(st.streamByID[s.id], st.now)
	return s.id, nil
}

// Process queues jobs for [from, to] (calendar days, UTC) as POST …/process does and
// returns their ids.
func (st *State) Process(id int64, from, to time.Time) ([]int64, error) {
	s, err := st.live(id)
	if err != nil {
		return nil, err
	}
	f, t := int32(floorDiv(from.Unix(), 86400)), int32(floorDiv(to.Unix(), 86400))
	if t < f {
		return nil, fmt.Errorf("process %d: end before start", id)
	}
	var out []int64
	for _, ji := range st.createJobs(st.streamByID[s.id], f, t, originProcess, 0, true) {
		out = append(out, st.jobs[ji].id)
	}
	return out, nil
}

// RunNow starts a scheduled-style run of today's data on a live stream.
func (st *State) RunNow(id int64) error {
	s, err := st.live(id)
	if err != nil {
		return err
	}
	day := int32(floorDiv(st.now, dayMs))
	st.createJobs(st.streamByID[s.id], day, day, originScheduled, s.hist.createUser, false)
	return nil
}

// RenameWorkspace renames a workspace; its updateTime moves to now.
func (st *State) RenameWorkspace(id int64, name string) error {
	ws := st.workspace(id)
	if ws == nil {
		return fmt.Errorf("workspace %d: not found", id)
	}
	ws.name = name
	st.touch(&ws.hist, 0)
	return nil
}
