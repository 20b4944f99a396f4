package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
)

// buildQuery turns a definition and its resolved span into a Query API request.
func buildQuery(def *config.Report, span Span) (datorama.QueryRequest, error) {
	q := datorama.QueryRequest{
		WorkspaceID: def.Workspace,
		DateRange:   "CUSTOM",
		StartDate:   span.From,
		EndDate:     span.To,
		Dimensions:  append([]string(nil), def.Dimensions...),
		TopResults:  def.Top,
	}
	for _, m := range def.Measurements {
		q.Measurements = append(q.Measurements, datorama.Measure{Name: m})
	}
	if def.Sort != nil {
		q.SortBy = def.Sort.By
		q.SortOrder = strings.ToUpper(def.Sort.Order)
		if q.SortOrder == "" {
			q.SortOrder = "DESC"
		}
	}
	for i, f := range def.Filters {
		if err := addFilter(&q, f); err != nil {
			return q, fmt.Errorf("filters[%d]: %w", i, err)
		}
	}
	return q, nil
}

// addFilter files one filter object under the request field its shape belongs to: a
// measurement filter has fieldName; a group filter has vals (operator IN or NOT IN); any
// other dimension filter is a string filter. An object holding one of the request's
// filter properties itself ({"stringDimensionFiltersOperator": "OR"}, {"groupDimension
// Filters": [...]}) is merged as it stands. Unknown keys are errors, not silently dropped.
func addFilter(q *datorama.QueryRequest, f map[string]any) error {
	raw, err := json.Marshal(f)
	if err != nil {
		return err
	}
	strict := func(v any) error {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		return dec.Decode(v)
	}
	_, hasField := f["fieldName"]
	_, hasVals := f["vals"]
	_, hasDim := f["dimension"]
	switch {
	case hasField:
		var nf datorama.NumberMeasurementFilter
		if err := strict(&nf); err != nil {
			return fmt.Errorf("measurement filter: %w", err)
		}
		q.NumberMeasurementFilter = append(q.NumberMeasurementFilter, nf)
	case hasDim && hasVals:
		var gf datorama.GroupDimensionFilter
		if err := strict(&gf); err != nil {
			return fmt.Errorf("group filter: %w", err)
		}
		q.GroupDimensionFilters = append(q.GroupDimensionFilters, gf)
	case hasDim:
		var sf datorama.StringDimensionFilter
		if err := strict(&sf); err != nil {
			return fmt.Errorf("string filter: %w", err)
		}
		q.StringDimensionFilters = append(q.StringDimensionFilters, sf)
	default:
		var part struct {
			Group  []datorama.GroupDimensionFilter    `json:"groupDimensionFilters"`
			String []datorama.StringDimensionFilter   `json:"stringDimensionFilters"`
			Number []datorama.NumberMeasurementFilter `json:"numberMeasurementFilter"`
			StrOp  string                             `json:"stringDimensionFiltersOperator"`
			NumOp  string                             `json:"numberDimensionFiltersOperator"`
		}
		if err := strict(&part); err != nil || len(f) == 0 {
			return fmt.Errorf("want a filter object with dimension, fieldName or a query filter property, got %s", raw)
		}
		q.GroupDimensionFilters = append(q.GroupDimensionFilters, part.Group...)
		q.StringDimensionFilters = append(q.StringDimensionFilters, part.String...)
		q.NumberMeasurementFilter = append(q.NumberMeasurementFilter, part.Number...)
		if part.StrOp != "" {
			q.StringDimensionFiltersOperator = part.StrOp
		}
		if part.NumOp != "" {
			q.NumberDimensionFiltersOperator = part.NumOp
		}
	}
	return nil
}
