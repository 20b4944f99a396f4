package datorama

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// QueryRequest is one Query API query, with the JSON names of facts file §10.
// WorkspaceID and TopResults go on the wire as strings, as in every known example.
type QueryRequest struct {
	WorkspaceID                    int64                     `json:"workspaceId,string"`
	DateRange                      string                    `json:"dateRange,omitempty"` // CUSTOM, THIS_MONTH, …
	StartDate                      Date                      `json:"startDate,omitzero"`  // with DateRange CUSTOM
	EndDate                        Date                      `json:"endDate,omitzero"`
	Measurements                   []Measure                 `json:"measurements"`
	Dimensions                     []string                  `json:"dimensions"`
	GroupDimensionFilters          []GroupDimensionFilter    `json:"groupDimensionFilters,omitempty"`
	StringDimensionFilters         []StringDimensionFilter   `json:"stringDimensionFilters,omitempty"`
	StringDimensionFiltersOperator string                    `json:"stringDimensionFiltersOperator,omitempty"` // AND, OR
	NumberDimensionFiltersOperator string                    `json:"numberDimensionFiltersOperator,omitempty"`
	NumberMeasurementFilter        []NumberMeasurementFilter `json:"numberMeasurementFilter,omitempty"`
	SortBy                         string                    `json:"sortBy,omitempty"`
	SortOrder                      string                    `json:"sortOrder,omitempty"` // ASC, DESC
	TopResults                     int                       `json:"topResults,omitempty,string"`
	GroupOthers                    bool                      `json:"groupOthers"`
	TopPerDimension                bool                      `json:"topPerDimension"`
}

// UnmarshalJSON accepts workspaceId and topResults as numbers or strings, so a query
// written by hand in either form loads.
func (q *QueryRequest) UnmarshalJSON(b []byte) error {
	type plain QueryRequest
	aux := struct {
		*plain
		WorkspaceID FlexInt64 `json:"workspaceId"`
		TopResults  FlexInt64 `json:"topResults"`
	}{plain: (*plain)(q)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return fmt.Errorf("decoding query: %w", err)
	}
	q.WorkspaceID, q.TopResults = int64(aux.WorkspaceID), int(aux.TopResults)
	return nil
}

// Measure names one measurement of a query.
type Measure struct {
	Name string `json:"name"`
}

// GroupDimensionFilter keeps (IN) or drops (NOT IN) rows by dimension values.
type GroupDimensionFilter struct {
	Dimension string   `json:"dimension"`
	Operator  string   `json:"operator"`
	Vals      []string `json:"vals"`
}

// StringDimensionFilter compares a dimension with one value (EQUALS, CONTAINS, …).
type StringDimensionFilter struct {
	Dimension string `json:"dimension"`
	Operator  string `json:"operator"`
	Val       string `json:"val,omitempty"`
}

// NumberMeasurementFilter compares a measurement with a number (GREATER, IS_NULL, …).
type NumberMeasurementFilter struct {
	FieldName string   `json:"fieldName"`
	Operator  string   `json:"operator"`
	Val       *float64 `json:"val,omitempty"`
}

// QueryResult is one query's answer. Row values are kept as sent (strings, numbers or
// null) for the caller to type.
type QueryResult struct {
	Headers []string
	Rows    [][]json.RawMessage
	// Errors is the answer's "errors" property as sent; nil when absent. Non-empty means
	// the query failed at run time (Failed).
	Errors json.RawMessage
	Raw    json.RawMessage
}

// Failed reports whether the answer carries a non-empty "errors" property.
func (r *QueryResult) Failed() bool { return nonEmptyJSON(r.Errors) }

func (r *QueryResult) UnmarshalJSON(b []byte) error {
	if firstByte(b) != '{' {
		return fmt.Errorf("decoding query result: want a JSON object, got %s", truncate(bytes.TrimSpace(b), 20))
	}
	var aux struct {
		Data *struct {
			Headers []string            `json:"headers"`
			Rows    [][]json.RawMessage `json:"rows"`
		} `json:"queryResponseData"`
		Errors json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return fmt.Errorf("decoding query result: %w", err)
	}
	*r = QueryResult{Raw: append(json.RawMessage(nil), b...), Errors: aux.Errors}
	if aux.Data == nil {
		if r.Failed() {
			return nil
		}
		return errors.New("decoding query result: no queryResponseData and no errors")
	}
	r.Headers, r.Rows = aux.Data.Headers, aux.Data.Rows
	for i, row := range r.Rows {
		if row == nil {
			return fmt.Errorf("decoding query result: row %d is null", i)
		}
	}
	return nil
}

// nonEmptyJSON reports whether raw holds something other than nothing, null, "", [] or {}.
func nonEmptyJSON(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 {
		return false
	}
	switch string(t) {
	case "null", `""`:
		return false
	}
	if (t[0] == '[' || t[0] == '{') && len(bytes.TrimSpace(t[1:len(t)-1])) == 0 {
		return false
	}
	return true
}

func queryError(i int, r *QueryResult) *QueryError {
	return &QueryError{Index: i, Errors: r.Errors, Message: clean(messageOf(r.Errors), 300)}
}

// Run runs one query. System names (DELIVERY_CLICKS) replace display names (Clicks) in
// the answer when useSystemNames is set. A parse error (422) is an *APIError naming the
// field; a run-time failure (200 with errors) returns the answer together with a
// *QueryError. Queries are reads, so failures are retried like any read.
//
// Datorama API: POST /v1/query
func (s *QueryService) Run(ctx context.Context, q QueryRequest, useSystemNames bool) (*QueryResult, error) {
	body, err := marshalBody(q)
	if err != nil {
		return nil, err
	}
	var qv url.Values
	if useSystemNames {
		qv = url.Values{"useSystemNames": {"true"}}
	}
	var out *QueryResult
	cl := &call{kind: Query, method: http.MethodPost, route: newRoute("/v1/query"), query: qv, body: body, ws: q.WorkspaceID, idempotent: true}
	err = s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeValue[QueryResult](b, "query result")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("querying workspace %d: %w", q.WorkspaceID, err)
	}
	if out.Failed() {
		return out, fmt.Errorf("querying workspace %d: %w", q.WorkspaceID, queryError(0, out))
	}
	return out, nil
}

// Batch runs several queries in one request and returns one result per query, in
// order. When some queries failed at run time the results still come back, with an
// error joining one *QueryError per failed query (Index says which).
//
// Datorama API: POST /v1/query-batch
func (s *QueryService) Batch(ctx context.Context, qs []QueryRequest) ([]QueryResult, error) {
	if len(qs) == 0 {
		return nil, errors.New("query batch: no queries")
	}
	body, err := marshalBody(qs)
	if err != nil {
		return nil, err
	}
	var out []QueryResult
	cl := &call{kind: Query, method: http.MethodPost, route: newRoute("/v1/query-batch"), body: body, ws: qs[0].WorkspaceID, idempotent: true}
	err = s.c.doJSON(ctx, cl, func(b []byte) (err error) {
		out, err = decodeValues[QueryResult](b, "query batch results")
		if err == nil && len(out) != len(qs) {
			err = fmt.Errorf("query batch: %d results for %d queries", len(out), len(qs))
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("query batch of %d: %w", len(qs), err)
	}
	var errs []error
	for i := range out {
		if out[i].Failed() {
			errs = append(errs, queryError(i, &out[i]))
		}
	}
	return out, errors.Join(errs...)
}
