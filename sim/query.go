package sim

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The Query API, answered from the account's own data model (daily.go): for the days a
// SUCCESS job has loaded, each stream has rows, impressions, clicks and cost. The
// dimensions and measurements below are the ones it knows; any other name is a parse
// error (422) that names it.
//
// Conventions of this model ([I]/[U] in the facts file, documented here):
//   - Dates are UTC calendar days; "Date"/"Day" values are "yyyy-MM-dd".
//   - String filters compare case-insensitively, except NOT_EQUALS_CASE_SENSITIVE;
//     group filters (IN / NOT IN) compare exactly.
//   - Without sortBy rows are ordered by their dimension values; sortOrder defaults to
//     DESC; ties are broken by dimension values, ascending.
//   - A runtime failure (more than QueryMaxRows rows, or the queryerror fault) is HTTP
//     200 with queryResponseData null and a non-empty errors array.
//   - A batch counts as one call against the query bucket.

type qdim int

const (
	qdStream qdim = iota
	qdWorkspace
	qdSource
	qdDate
)

type qmeas int

const (
	qmRows qmeas = iota
	qmImpressions
	qmClicks
	qmCost
)

type qfield struct {
	display, system string
	isDim           bool
	dim             qdim
	meas            qmeas
}

var queryFields = []qfield{
	{display: "Data Stream", system: "BRAND_DATA_SOURCE_INSTANCE", isDim: true, dim: qdStream},
	{display: "Workspace", system: "WORKSPACE", isDim: true, dim: qdWorkspace},
	{display: "Data Source", system: "DATA_SOURCE", isDim: true, dim: qdSource},
	{display: "Date", system: "DATE", isDim: true, dim: qdDate},
	{display: "Day", system: "DAY", isDim: true, dim: qdDate},
	{display: "Data Stream Total Rows", system: "DATA_STREAM_TOTAL_ROWS", meas: qmRows},
	{display: "Impressions", system: "DELIVERY_IMPRESSIONS", meas: qmImpressions},
	{display: "Clicks", system: "DELIVERY_CLICKS", meas: qmClicks},
	{display: "Cost", system: "MEDIA_COST", meas: qmCost},
}

// lookupField finds a Query API field by display or system name.
func lookupField(name string) (*qfield, bool) {
	for i := range queryFields {
		if queryFields[i].display == name || queryFields[i].system == name {
			return &queryFields[i], true
		}
	}
	for i := range queryFields {
		if strings.EqualFold(queryFields[i].display, name) || strings.EqualFold(queryFields[i].system, name) {
			return &queryFields[i], true
		}
	}
	return nil, false
}

// DateRange resolves a Query API dateRange name for the given day (UTC) into an
// inclusive range of days. LAST_N_DAYS ends yesterday unless includeToday.
func DateRange(name string, today time.Time, includeToday bool) (from, to time.Time, err error) {
	y, m, d := today.UTC().Date()
	t := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	lastN := func(n int) (time.Time, time.Time) {
		if includeToday {
			return t.AddDate(0, 0, -(n - 1)), t
		}
		return t.AddDate(0, 0, -n), t.AddDate(0, 0, -1)
	}
	monday := t.AddDate(0, 0, -((int(t.Weekday()) + 6) % 7))
	switch strings.ToUpper(name) {
	case "TODAY":
		return t, t, nil
	case "YESTERDAY":
		return t.AddDate(0, 0, -1), t.AddDate(0, 0, -1), nil
	case "LAST_7_DAYS":
		from, to = lastN(7)
	case "LAST_14_DAYS":
		from, to = lastN(14)
	case "LAST_30_DAYS":
		from, to = lastN(30)
	case "LAST_90_DAYS":
		from, to = lastN(90)
	case "THIS_WEEK":
		return monday, t, nil
	case "LAST_WEEK":
		return monday.AddDate(0, 0, -7), monday.AddDate(0, 0, -1), nil
	case "THIS_MONTH":
		return time.Date(y, m, 1, 0, 0, 0, 0, time.UTC), t, nil
	case "LAST_MONTH":
		first := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		return first.AddDate(0, -1, 0), first.AddDate(0, 0, -1), nil
	case "THIS_YEAR":
		return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC), t, nil
	case "LAST_YEAR":
		return time.Date(y-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(y-1, 12, 31, 0, 0, 0, 0, time.UTC), nil
	default:
		return time.Time{}, time.Time{}, fmt.Errorf("unknown dateRange %q", name)
	}
	return from, to, nil
}

type queryRequest struct {
	WorkspaceID             json.RawMessage   `json:"workspaceId"`
	DateRange               string            `json:"dateRange"`
	StartDate               string            `json:"startDate"`
	EndDate                 string            `json:"endDate"`
	Measurements            []json.RawMessage `json:"measurements"`
	Dimensions              []string          `json:"dimensions"`
	GroupDimensionFilters   []groupFilter     `json:"groupDimensionFilters"`
	StringDimensionFilters  []stringFilter    `json:"stringDimensionFilters"`
	StringFiltersOperator   string            `json:"stringDimensionFiltersOperator"`
	NumberMeasurementFilter []numberFilter    `json:"numberMeasurementFilter"`
	SortBy                  string            `json:"sortBy"`
	SortOrder               string            `json:"sortOrder"`
	TopResults              json.RawMessage   `json:"topResults"`
}

type groupFilter struct {
	Dimension string   `json:"dimension"`
	Operator  string   `json:"operator"`
	Vals      []string `json:"vals"`
}

type stringFilter struct {
	Dimension string `json:"dimension"`
	Operator  string `json:"operator"`
	Val       string `json:"val"`
}

type numberFilter struct {
	FieldName string      `json:"fieldName"`
	Operator  string      `json:"operator"`
	Val       json.Number `json:"val"`
}

// queryError is a failure with its HTTP status: 422 for parse errors, 403/404 for the
// workspace.
type queryError struct {
	status int
	msg    string
}

func (e *queryError) Error() string { return e.msg }

func unprocessable(format string, args ...any) error {
	return &queryError{http.StatusUnprocessableEntity, fmt.Sprintf(format, args...)}
}

// compiledQuery is a parsed, validated query.
type compiledQuery struct {
	ws       *workspace
	from, to int32
	dims     []*qfield
	meas     []*qfield
	group    []compiledGroup
	strs     []compiledString
	strOr    bool
	nums     []compiledNumber
	sortBy   *qfield
	sortDesc bool
	top      int
}

type compiledGroup struct {
	dim  qdim
	in   bool
	vals map[string]bool
}

type compiledString struct {
	dim qdim
	op  string
	val string
}

type compiledNumber struct {
	meas qmeas
	op   string
	val  float64
}

var stringOps = map[string]bool{
	"EQUALS": true, "NOT_EQUALS": true, "NOT_EQUALS_CASE_SENSITIVE": true, "CONTAINS": true,
	"NOT_CONTAINS": true, "STARTS_WITH": true, "ENDS_WITH": true, "IS_EMPTY": true, "IS_NOT_EMPTY": true,
}

var numberOps = map[string]bool{
	"EQUALS": true, "NOT_EQUALS": true, "GREATER": true, "GREATER_EQUALS": true, "LESS": true,
	"LESS_EQUALS": true, "IS_NULL": true, "IS_NOT_NULL": true, "IS_NAN": true, "IS_NOT_NAN": true,
}

// compileQuery checks a Query API request the way the API does (422 for what it cannot
// parse, 404/403 for a workspace) and compiles it.
func (c *call) compileQuery(raw json.RawMessage) (*compiledQuery, error) {
	var req queryRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, unprocessable("Invalid value for field %q: %v", te.Field, err)
		}
		return nil, unprocessable("Invalid query: %v", err)
	}
	q := &compiledQuery{}
	for _, step := range []func(*queryRequest, *compiledQuery) error{c.compileScope, compileFields, compileFilters, compileOrder} {
		if err := step(&req, q); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// compileScope reads the workspace and the date range.
func (c *call) compileScope(req *queryRequest, q *compiledQuery) error {
	var wsID flexInt
	if len(req.WorkspaceID) == 0 || json.Unmarshal(req.WorkspaceID, &wsID) != nil || wsID <= 0 {
		return unprocessable("Field \"workspaceId\" is required and must be a workspace id")
	}
	ws := c.st.workspace(int64(wsID))
	switch {
	case ws == nil:
		return &queryError{http.StatusNotFound, fmt.Sprintf("Workspace %d not found", int64(wsID))}
	case !c.tok.visible[ws.id]:
		return &queryError{http.StatusForbidden, fmt.Sprintf("You do not have permission to access workspace %d", ws.id)}
	}
	q.ws = ws
	switch strings.ToUpper(req.DateRange) {
	case "":
		return unprocessable("Field \"dateRange\" is required")
	case "CUSTOM":
		f, ok1 := parseDay(req.StartDate)
		t, ok2 := parseDay(req.EndDate)
		if !ok1 || !ok2 || t < f {
			return unprocessable("dateRange CUSTOM needs \"startDate\" and \"endDate\" as yyyy-MM-dd, start not after end")
		}
		q.from, q.to = f, t
	default:
		f, t, err := DateRange(req.DateRange, time.UnixMilli(c.st.now), c.s.opts.LastNDaysIncludesToday)
		if err != nil {
			return unprocessable("Invalid value for field \"dateRange\": %q", req.DateRange)
		}
		q.from, q.to = int32(f.Unix()/86400), int32(t.Unix()/86400)
	}
	return nil
}

// compileFields reads the measurements and dimensions.
func compileFields(req *queryRequest, q *compiledQuery) error {
	if len(req.Measurements) == 0 {
		return unprocessable("Field \"measurements\" must name at least one measurement")
	}
	for _, m := range req.Measurements {
		var name string
		var obj struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(m, &obj) == nil && obj.Name != "" {
			name = obj.Name
		} else if json.Unmarshal(m, &name) != nil || name == "" {
			return unprocessable("Field \"measurements\": each entry needs a \"name\"")
		}
		f, ok := lookupField(name)
		if !ok || f.isDim {
			return unprocessable("Unknown measurement %q", name)
		}
		q.meas = append(q.meas, f)
	}
	for _, name := range req.Dimensions {
		f, ok := lookupField(name)
		if !ok || !f.isDim {
			return unprocessable("Unknown dimension %q", name)
		}
		q.dims = append(q.dims, f)
	}
	return nil
}

// compileFilters reads the group, string and number filters.
func compileFilters(req *queryRequest, q *compiledQuery) error {
	for _, g := range req.GroupDimensionFilters {
		f, ok := lookupField(g.Dimension)
		if !ok || !f.isDim {
			return unprocessable("groupDimensionFilters: unknown dimension %q", g.Dimension)
		}
		cg := compiledGroup{dim: f.dim, vals: map[string]bool{}}
		switch strings.ToUpper(strings.ReplaceAll(g.Operator, "_", " ")) {
		case "IN":
			cg.in = true
		case "NOT IN":
		default:
			return unprocessable("groupDimensionFilters: unknown operator %q (want IN or NOT IN)", g.Operator)
		}
		for _, v := range g.Vals {
			cg.vals[v] = true
		}
		q.group = append(q.group, cg)
	}
	for _, sf := range req.StringDimensionFilters {
		f, ok := lookupField(sf.Dimension)
		if !ok || !f.isDim {
			return unprocessable("stringDimensionFilters: unknown dimension %q", sf.Dimension)
		}
		op := strings.ToUpper(sf.Operator)
		if !stringOps[op] {
			return unprocessable("stringDimensionFilters: unknown operator %q", sf.Operator)
		}
		q.strs = append(q.strs, compiledString{dim: f.dim, op: op, val: sf.Val})
	}
	switch strings.ToUpper(req.StringFiltersOperator) {
	case "", "AND":
	case "OR":
		q.strOr = true
	default:
		return unprocessable("Invalid value for field \"stringDimensionFiltersOperator\": %q", req.StringFiltersOperator)
	}
	for _, nf := range req.NumberMeasurementFilter {
		f, ok := lookupField(nf.FieldName)
		if !ok || f.isDim {
			return unprocessable("numberMeasurementFilter: unknown measurement %q", nf.FieldName)
		}
		op := strings.ToUpper(nf.Operator)
		if !numberOps[op] {
			return unprocessable("numberMeasurementFilter: unknown operator %q", nf.Operator)
		}
		v := 0.0
		if nf.Val != "" {
			var err error
			if v, err = nf.Val.Float64(); err != nil {
				return unprocessable("numberMeasurementFilter: val %q is not a number", nf.Val)
			}
		}
		q.nums = append(q.nums, compiledNumber{meas: f.meas, op: op, val: v})
	}
	return nil
}

// compileOrder reads the sort and the top-N.
func compileOrder(req *queryRequest, q *compiledQuery) error {
	if req.SortBy != "" {
		f, ok := lookupField(req.SortBy)
		if !ok {
			return unprocessable("Unknown field in \"sortBy\": %q", req.SortBy)
		}
		inQuery := false
		for _, x := range append(append([]*qfield(nil), q.dims...), q.meas...) {
			inQuery = inQuery || x == f || (x.isDim && f.isDim && x.dim == f.dim) || (!x.isDim && !f.isDim && x.meas == f.meas)
		}
		if !inQuery {
			return unprocessable("Field in \"sortBy\" must be one of the query's dimensions or measurements: %q", req.SortBy)
		}
		q.sortBy = f
	}
	switch strings.ToUpper(req.SortOrder) {
	case "", "DESC":
		q.sortDesc = true
	case "ASC":
	default:
		return unprocessable("Invalid value for field \"sortOrder\": %q", req.SortOrder)
	}
	if t := bytes.TrimSpace(req.TopResults); len(t) > 0 && string(t) != "null" && string(t) != `""` {
		var n flexInt
		if json.Unmarshal(t, &n) != nil || n < 0 {
			return unprocessable("Invalid value for field \"topResults\": %s", t)
		}
		q.top = int(n)
	}
	return nil
}

type queryRow struct {
	dims []string
	vals [4]int64 // by qmeas; cost in cents
}

func (st *State) dimValue(d qdim, s *stream, day int32) string {
	switch d {
	case qdStream:
		return s.name
	case qdWorkspace:
		return s.ws.name
	case qdSource:
		return s.source.name
	default:
		return dayString(day)
	}
}

func matchString(f compiledString, v string) bool {
	lv, lf := strings.ToLower(v), strings.ToLower(f.val)
	switch f.op {
	case "EQUALS":
		return lv == lf
	case "NOT_EQUALS":
		return lv != lf
	case "NOT_EQUALS_CASE_SENSITIVE":
		return v != f.val
	case "CONTAINS":
		return strings.Contains(lv, lf)
	case "NOT_CONTAINS":
		return !strings.Contains(lv, lf)
	case "STARTS_WITH":
		return strings.HasPrefix(lv, lf)
	case "ENDS_WITH":
		return strings.HasSuffix(lv, lf)
	case "IS_EMPTY":
		return v == ""
	default: // IS_NOT_EMPTY
		return v != ""
	}
}

func matchNumber(f compiledNumber, v float64) bool {
	switch f.op {
	case "EQUALS":
		return v == f.val
	case "NOT_EQUALS":
		return v != f.val
	case "GREATER":
		return v > f.val
	case "GREATER_EQUALS":
		return v >= f.val
	case "LESS":
		return v < f.val
	case "LESS_EQUALS":
		return v <= f.val
	case "IS_NULL", "IS_NAN":
		return false
	default:
		return true
	}
}

func measValue(r *queryRow, m qmeas) float64 {
	if m == qmCost {
		return float64(r.vals[m]) / 100
	}
	return float64(r.vals[m])
}

// run evaluates the query and returns its rows, sorted and cut to topResults.
func (st *State) runQuery(q *compiledQuery) []*queryRow {
	groups := map[string]*queryRow{}
	var order []*queryRow
	keyBuf := make([]byte, 0, 128)
	dimVals := make([]string, len(q.dims))
	for _, si := range q.ws.streams {
		s := st.streams[si]
		if s.deleted {
			continue
		}
		cov := st.coveredDays(s, q.from, q.to)
		for i, ok := range cov {
			if !ok {
				continue
			}
			day := q.from + int32(i)
			if !st.rowMatches(q, s, day) {
				continue
			}
			keyBuf = keyBuf[:0]
			for k, f := range q.dims {
				dimVals[k] = st.dimValue(f.dim, s, day)
				keyBuf = append(append(keyBuf, dimVals[k]...), 0)
			}
			g := groups[string(keyBuf)]
			if g == nil {
				g = &queryRow{dims: append([]string(nil), dimVals...)}
				groups[string(keyBuf)] = g
				order = append(order, g)
			}
			v := st.daily(s, day)
			g.vals[qmRows] += v.rows
			g.vals[qmImpressions] += v.impressions
			g.vals[qmClicks] += v.clicks
			g.vals[qmCost] += v.costCents
		}
	}
	rows := order[:0]
	for _, r := range order {
		keep := true
		for _, nf := range q.nums {
			keep = keep && matchNumber(nf, measValue(r, nf.meas))
		}
		if keep {
			rows = append(rows, r)
		}
	}
	byDims := func(a, b *queryRow) int {
		for k := range a.dims {
			if c := strings.Compare(a.dims[k], b.dims[k]); c != 0 {
				return c
			}
		}
		return 0
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if q.sortBy != nil {
			var c int
			if q.sortBy.isDim {
				for k, f := range q.dims {
					if f.dim == q.sortBy.dim {
						c = strings.Compare(a.dims[k], b.dims[k])
						break
					}
				}
			} else {
				c = cmp.Compare(a.vals[q.sortBy.meas], b.vals[q.sortBy.meas])
			}
			if q.sortDesc {
				c = -c
			}
			if c != 0 {
				return c < 0
			}
		}
		return byDims(a, b) < 0
	})
	if q.top > 0 && len(rows) > q.top {
		rows = rows[:q.top]
	}
	return rows
}

func (st *State) rowMatches(q *compiledQuery, s *stream, day int32) bool {
	for _, g := range q.group {
		if g.vals[st.dimValue(g.dim, s, day)] != g.in {
			return false
		}
	}
	if len(q.strs) == 0 {
		return true
	}
	for _, f := range q.strs {
		ok := matchString(f, st.dimValue(f.dim, s, day))
		if q.strOr && ok {
			return true
		}
		if !q.strOr && !ok {
			return false
		}
	}
	return !q.strOr
}

// appendQueryResult renders one query's answer object.
func (c *call) appendQueryResult(b []byte, q *compiledQuery, rows []*queryRow, runtimeErr string) []byte {
	b = append(comma(b), '{')
	if runtimeErr != "" {
		b = knull(b, "queryResponseData")
		b = append(key(b, "errors"), '[')
		b = appendString(b, runtimeErr)
		return append(b, ']', '}')
	}
	system := c.r.URL.Query().Get("useSystemNames") == "true"
	b = append(key(b, "queryResponseData"), '{')
	b = append(key(b, "headers"), '[')
	for _, f := range append(append([]*qfield(nil), q.dims...), q.meas...) {
		name := f.display
		if system {
			name = f.system
		}
		b = appendString(comma(b), name)
	}
	b = append(b, ']')
	b = append(key(b, "rows"), '[')
	for _, r := range rows {
		b = append(comma(b), '[')
		for _, v := range r.dims {
			b = appendString(comma(b), v)
		}
		for _, m := range q.meas {
			b = comma(b)
			if m.meas == qmCost {
				b = strconv.AppendFloat(b, float64(r.vals[qmCost])/100, 'f', -1, 64)
			} else {
				b = strconv.AppendInt(b, r.vals[m.meas], 10)
			}
		}
		b = append(b, ']')
	}
	b = append(b, ']', '}')
	return append(append(key(b, "errors"), '[', ']'), '}')
}

// answerQuery compiles and runs one query; a parse error comes back as an error.
func (c *call) answerQuery(raw json.RawMessage, b []byte, allowFault bool) ([]byte, error) {
	q, err := c.compileQuery(raw)
	if err != nil {
		return nil, err
	}
	if allowFault && c.fault == FaultQueryError {
		c.hit = true
		return c.appendQueryResult(b, q, nil, "Query execution timed out after 60 seconds"), nil
	}
	rows := c.st.runQuery(q)
	if len(rows) > c.s.opts.QueryMaxRows {
		c.s.calls.note("query_runtime_error")
		return c.appendQueryResult(b, q, nil, fmt.Sprintf("Query result exceeds the maximum of %d rows", c.s.opts.QueryMaxRows)), nil
	}
	return c.appendQueryResult(b, q, rows, ""), nil
}

func (c *call) queryFailed(err error, prefix string) {
	var qe *queryError
	if errors.As(err, &qe) {
		c.errorf(qe.status, "%s%s", prefix, qe.msg)
		return
	}
	c.errorf(http.StatusUnprocessableEntity, "%s%v", prefix, err)
}

func runQuery(c *call) {
	if len(bytes.TrimSpace(c.body)) == 0 {
		c.errorf(http.StatusUnprocessableEntity, "A query body is required")
		return
	}
	b, err := c.answerQuery(c.body, nil, true)
	if err != nil {
		c.queryFailed(err, "")
		return
	}
	c.json(http.StatusOK, b)
}

// runQueryBatch answers a JSON array of queries with an array of answers, in order. A
// parse error in any query fails the whole batch (422 naming the query's index).
func runQueryBatch(c *call) {
	if !c.s.opts.queryBatch() {
		c.errorf(http.StatusNotFound, "No such endpoint: %s %s", c.r.Method, c.r.URL.Path)
		return
	}
	var qs []json.RawMessage
	if err := json.Unmarshal(c.body, &qs); err != nil {
		c.errorf(http.StatusUnprocessableEntity, "The body must be a JSON array of queries: %v", err)
		return
	}
	if len(qs) == 0 {
		c.errorf(http.StatusUnprocessableEntity, "The batch must hold at least one query")
		return
	}
	b := []byte{'['}
	for i, q := range qs {
		var err error
		b, err = c.answerQuery(q, b, i == 0)
		if err != nil {
			c.queryFailed(err, fmt.Sprintf("query %d: ", i))
			return
		}
	}
	c.json(http.StatusOK, append(b, ']'))
}
