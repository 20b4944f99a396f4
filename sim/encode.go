package sim

import (
	"encoding/json"
	"sort"
	"strconv"
	"time"
	"unicode/utf8"
)

// Records are rendered by appending to a byte slice: key order is fixed (the order of
// the facts file's samples), nothing is reflected over, and a page of a thousand jobs
// costs one buffer. Every record is rendered the same way for the API and for the truth.

// comma adds the separator a new key or element needs after what b ends with.
func comma(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] != '{' && b[n-1] != '[' && b[n-1] != ':' {
		b = append(b, ',')
	}
	return b
}

func key(b []byte, k string) []byte {
	b = comma(b)
	b = append(b, '"')
	b = append(b, k...)
	return append(b, '"', ':')
}

func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, s[start:i]...)
				b = append(b, `\ufffd`...)
				i++
				start = i
				continue
			}
			i += size
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&0xf])
		}
		i++
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func kstr(b []byte, k, v string) []byte       { return appendString(key(b, k), v) }
func kint(b []byte, k string, v int64) []byte { return strconv.AppendInt(key(b, k), v, 10) }
func kbool(b []byte, k string, v bool) []byte { return strconv.AppendBool(key(b, k), v) }
func knull(b []byte, k string) []byte         { return append(key(b, k), "null"...) }

// kid writes an id, or null for 0.
func kid(b []byte, k string, v int64) []byte {
	if v == 0 {
		return knull(b, k)
	}
	return kint(b, k, v)
}

func kraw(b []byte, k string, v json.RawMessage) []byte {
	if len(v) == 0 {
		return knull(b, k)
	}
	return append(key(b, k), v...)
}

func kday(b []byte, k string, d int32) []byte {
	if d == 0 {
		return knull(b, k)
	}
	return appendString(key(b, k), dayString(d))
}

// appendHistory writes the who-and-when fields. createTime is left out when the caller
// writes it elsewhere (a stream has it among its own fields, as in the real sample).
func (st *State) appendHistory(b []byte, h history, viewer, createTime bool) []byte {
	b = kint(b, "createUserId", st.users[h.createUser].id)
	if viewer {
		b = knull(b, "createUser")
	} else {
		b = kstr(b, "createUser", st.users[h.createUser].name)
	}
	if createTime {
		b = kid(b, "createTime", h.createTime)
	}
	b = kint(b, "updateUserId", st.users[h.updateUser].id)
	if viewer {
		b = knull(b, "updateUser")
	} else {
		b = kstr(b, "updateUser", st.users[h.updateUser].name)
	}
	return kid(b, "updateTime", h.updateTime)
}

func (st *State) appendWorkspace(b []byte, ws *workspace, viewer bool) []byte {
	b = append(comma(b), '{')
	b = kint(b, "id", ws.id)
	b = kstr(b, "name", ws.name)
	b = kint(b, "accountId", ws.accountID)
	b = kint(b, "verticalId", ws.verticalID)
	b = kint(b, "colorSchemeId", ws.colorSchemeID)
	b = kint(b, "currencyId", ws.currencyID)
	b = kint(b, "accountCurrencyId", ws.accountCurrencyID)
	b = kint(b, "cultureId", ws.cultureID)
	b = kint(b, "timezoneId", ws.timezoneID)
	b = kint(b, "dashboardThemeId", ws.dashboardThemeID)
	b = append(key(b, "subWorkspaces"), '[')
	for _, id := range ws.subWorkspaces {
		b = strconv.AppendInt(comma(b), id, 10)
	}
	b = append(b, ']')
	b = append(key(b, "visibleBuckets"), '[', ']')
	for i, name := range workspaceFlagNames {
		b = kbool(b, name, ws.flags[i])
	}
	b = st.appendHistory(b, ws.hist, viewer, true)
	return append(b, '}')
}

// appendLastRunStatus renders a stream's lastRunStatus in the configured type.
func (st *State) appendLastRunStatus(b []byte, s *stream) []byte {
	if s.lastStatus == 0 {
		return knull(b, "lastRunStatus")
	}
	if st.opts.LastRunStatus == "string" {
		return kstr(b, "lastRunStatus", statusNames[s.lastStatus])
	}
	return kbool(b, "lastRunStatus", s.lastStatus == stSuccess)
}

func (st *State) appendStream(b []byte, s *stream, viewer bool) []byte {
	b = append(comma(b), '{')
	b = kint(b, "id", s.id)
	b = kstr(b, "name", s.name)
	b = kint(b, "workspaceId", s.ws.id)
	b = kint(b, "dataSourceId", s.source.id)
	b = kstr(b, "dataSourceName", s.source.name)
	b = kstr(b, "sourceDisplayName", s.source.displayName)
	if viewer {
		b = knull(b, "dataSourceAuthenticationId")
	} else {
		b = kid(b, "dataSourceAuthenticationId", s.authID)
	}
	b = kbool(b, "enabled", s.enabled)
	b = kbool(b, "hasData", s.hasData)
	b = kid(b, "createTime", s.hist.createTime)
	b = kid(b, "lastUpdate", s.lastUpdate)
	b = st.appendLastRunStatus(b, s)
	b = kint(b, "lastRowsRetrieved", s.lastRows)
	b = kint(b, "processedRows", s.processedRows)
	b = kday(b, "lastDataDate", s.lastDataDate)
	b = kint(b, "processStatsCounts", 0)
	b = kraw(b, "dataLoadMode", s.dataLoadMode)
	if s.retrievalHour < 0 {
		b = knull(b, "retrievalPeriodHour")
	} else {
		b = kint(b, "retrievalPeriodHour", int64(s.retrievalHour))
	}
	b = kraw(b, "retrievalPeriodType", s.retrievalPeriodType)
	b = kid(b, "templateId", s.templateID)
	b = kid(b, "parentInstanceId", s.parentInstanceID)
	b = kbool(b, "runOnlyAsPartOfWorkflow", s.runOnlyAsPartOfWorkflow)
	b = kid(b, "channelId", s.channelID)
	b = kid(b, "originalId", s.originalID)
	b = kid(b, "originalDataStreamId", s.originalDataStreamID)
	b = kid(b, "dataPreviewPageId", s.dataPreviewPageID)
	for i, v := range s.customAttrs {
		b = kstr(b, "customAttribute"+strconv.Itoa(i+1), v)
	}
	if viewer || s.config == nil {
		b = knull(b, "config")
	} else {
		b = appendObject(key(b, "config"), s.config)
	}
	b = st.appendHistory(b, s.hist, viewer, false)
	return append(b, '}')
}

// appendObject renders a map with sorted keys, like encoding/json.
func appendObject(b []byte, m map[string]json.RawMessage) []byte {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	b = append(b, '{')
	for i, k := range ks {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, k), ':')
		b = append(b, m[k]...)
	}
	return append(b, '}')
}

func (st *State) appendJob(b []byte, j *job) []byte {
	s := st.streams[j.stream]
	b = append(comma(b), '{')
	b = kint(b, "id", j.id)
	b = kint(b, "dataStreamId", s.id)
	b = kstr(b, "status", statusNames[j.status])
	if j.status == stFailure {
		b = kstr(b, "statusReason", failReasons[j.reason])
	} else {
		b = knull(b, "statusReason")
	}
	b = kday(b, "dataStartDate", j.dataStart)
	b = kday(b, "dataEndDate", j.dataEnd)
	b = kid(b, "startExecutionTime", j.start)
	b = kid(b, "endExecutionTime", j.end)
	b = kint(b, "userId", st.users[j.user].id)
	b = appendString(key(b, "processLog"), st.processLog(j))
	return append(b, '}')
}

// processLog renders a job's log. The last bracketed timestamp is when the job last
// changed ("yyyy-MM-dd HH:mm:ssZ"), which is what the one client that parses it reads.
func (st *State) processLog(j *job) string {
	if j.start == 0 {
		return ""
	}
	s := st.streams[j.stream]
	ts := func(ms int64) string { return "[" + time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05") + "Z] " }
	var b []byte
	b = append(b, ts(j.start)...)
	b = append(b, "Job started\n"...)
	b = append(b, ts(j.start)...)
	b = append(b, "Retrieving data for "...)
	b = append(b, dayString(j.dataStart)...)
	b = append(b, " to "...)
	b = append(b, dayString(j.dataEnd)...)
	b = append(b, '\n')
	switch j.status {
	case stSuccess:
		b = append(b, ts(j.end)...)
		b = append(b, "Retrieved "...)
		b = strconv.AppendInt(b, st.jobRows(s, j), 10)
		b = append(b, " rows\n"...)
		b = append(b, ts(j.end)...)
		b = append(b, "Job finished successfully\n"...)
	case stFailure:
		b = append(b, ts(j.end)...)
		b = append(b, "Job failed: "...)
		b = append(b, failReasons[j.reason]...)
		b = append(b, '\n')
	}
	return string(b)
}

func (st *State) appendField(b []byte, f *field, ws *workspace, viewer bool) []byte {
	b = append(b, '{')
	b = kint(b, "id", f.id)
	b = kstr(b, "systemName", f.systemName)
	b = kstr(b, "displayName", f.displayName)
	b = kstr(b, "type", f.kind)
	b = kstr(b, "dataType", f.dataType)
	b = kbool(b, "isCustom", f.custom)
	b = kint(b, "workspaceId", ws.id)
	b = st.appendHistory(b, f.hist, viewer, true)
	return append(b, '}')
}

// appendFieldMap renders dimensions or measurements as the API does: an object keyed
// by system name, in the workspace's order.
func (st *State) appendFieldMap(b []byte, fs []field, ws *workspace, viewer bool) []byte {
	b = append(b, '{')
	for i := range fs {
		b = append(appendString(comma(b), fs[i].systemName), ':')
		b = st.appendField(b, &fs[i], ws, viewer)
	}
	return append(b, '}')
}

func (st *State) appendHarmonized(b []byte, ws *workspace, viewer bool) []byte {
	b = append(b, '[')
	for _, h := range ws.harmonized {
		b = append(comma(b), '{')
		b = kint(b, "id", h.id)
		b = kint(b, "workspaceId", ws.id)
		b = kstr(b, "name", h.name)
		b = kstr(b, "description", h.description)
		b = append(key(b, "values"), '[')
		for _, v := range h.values {
			b = appendString(comma(b), v)
		}
		b = append(b, ']')
		b = st.appendHistory(b, h.hist, viewer, true)
		b = append(b, '}')
	}
	return append(b, ']')
}

func (st *State) appendPattern(b []byte, p *pattern, ws *workspace, viewer bool) []byte {
	b = append(comma(b), '{')
	b = kint(b, "id", p.id)
	b = kint(b, "workspaceId", ws.id)
	b = kint(b, "harmonizedDimensionId", p.harmonizedDimID)
	b = kstr(b, "name", p.name)
	b = kstr(b, "sourceDimension", p.sourceDimension)
	b = kstr(b, "expression", p.expression)
	b = kstr(b, "value", p.value)
	b = st.appendHistory(b, p.hist, viewer, true)
	return append(b, '}')
}

func (st *State) appendPatterns(b []byte, ws *workspace, viewer bool) []byte {
	b = append(b, '[')
	for i := range ws.patterns {
		b = st.appendPattern(b, &ws.patterns[i], ws, viewer)
	}
	return append(b, ']')
}

func (st *State) appendCalc(b []byte, c *calcMeasurement, ws *workspace, viewer bool) []byte {
	b = append(comma(b), '{')
	b = kint(b, "id", c.id)
	b = kint(b, "workspaceId", ws.id)
	b = kid(b, "originalId", c.originalID)
	b = kstr(b, "name", c.name)
	b = kstr(b, "systemName", c.systemName)
	b = kstr(b, "formula", c.formula)
	b = st.appendHistory(b, c.hist, viewer, true)
	return append(b, '}')
}

func (st *State) appendCalcs(b []byte, ws *workspace, viewer bool) []byte {
	b = append(b, '[')
	for i := range ws.calcs {
		b = st.appendCalc(b, &ws.calcs[i], ws, viewer)
	}
	return append(b, ']')
}

// appendDashboards renders the hierarchy: dashboards → pages → widgets, plus the flat
// widgets list the one client that reads it uses.
func (st *State) appendDashboards(b []byte, ws *workspace, viewer bool) []byte {
	b = append(b, '{')
	b = kint(b, "workspaceId", ws.id)
	b = append(key(b, "dashboards"), '[')
	for _, d := range ws.dashboards {
		b = append(comma(b), '{')
		b = kint(b, "id", d.id)
		b = kstr(b, "name", d.name)
		b = append(key(b, "pages"), '[')
		for _, p := range d.pages {
			b = append(comma(b), '{')
			b = kint(b, "id", p.id)
			b = kstr(b, "name", p.name)
			b = kint(b, "dashboardId", d.id)
			b = append(key(b, "widgetIds"), '[')
			for _, w := range p.widgets {
				b = strconv.AppendInt(comma(b), w.id, 10)
			}
			b = append(b, ']', '}')
		}
		b = append(b, ']')
		b = st.appendHistory(b, d.hist, viewer, true)
		b = append(b, '}')
	}
	b = append(b, ']')
	b = append(key(b, "widgets"), '[')
	for _, d := range ws.dashboards {
		for _, p := range d.pages {
			for _, w := range p.widgets {
				b = append(comma(b), '{')
				b = kint(b, "id", w.id)
				b = kint(b, "pageId", p.id)
				b = kint(b, "dashboardId", d.id)
				b = kstr(b, "name", w.name)
				b = kstr(b, "type", w.typ)
				b = append(b, '}')
			}
		}
	}
	return append(b, ']', '}')
}

func appendConnector(b []byte, c *connector) []byte {
	b = append(b, '{')
	b = kint(b, "id", c.id)
	b = kstr(b, "name", c.name)
	b = kstr(b, "displayName", c.displayName)
	b = kstr(b, "category", c.category)
	if c.totalConnect {
		b = kstr(b, "type", "TOTAL_CONNECT")
	} else {
		b = kstr(b, "type", "API")
	}
	b = kid(b, "templateId", c.templateID)
	return append(b, '}')
}

// mappingOf returns the stream's mapping object: the one in its config, or an empty
// mapping when the config has none.
func (s *stream) mappingOf() []byte {
	if m, ok := s.config["mapping"]; ok && len(m) > 0 && m[0] == '{' {
		return m
	}
	b := kint([]byte{'{'}, "dataStreamId", s.id)
	return append(append(key(b, "fields"), '[', ']'), '}')
}
