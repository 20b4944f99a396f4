package report

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
)

func TestResolve(t *testing.T) {
	// Wednesday 2026-03-04 23:30 UTC is already Thursday in Tokyo.
	now := time.Date(2026, 3, 4, 23, 30, 0, 0, time.UTC)
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	for _, tc := range []struct {
		name string
		dr   config.DateRange
		loc  *time.Location
		want string
	}{
		{"fixed", config.DateRange{From: "2021-06-01", To: "2021-06-30"}, nil, "2021-06-01..2021-06-30"},
		{"last 7 days", config.DateRange{LastDays: 7}, nil, "2026-02-25..2026-03-03"},
		{"last 7 days in Tokyo", config.DateRange{LastDays: 7}, tokyo, "2026-02-26..2026-03-04"},
		{"last day", config.DateRange{LastDays: 1}, nil, "2026-03-03..2026-03-03"},
		{"today", config.DateRange{Preset: "TODAY"}, nil, "2026-03-04..2026-03-04"},
		{"yesterday", config.DateRange{Preset: "YESTERDAY"}, nil, "2026-03-03..2026-03-03"},
		{"this week", config.DateRange{Preset: "THIS_WEEK"}, nil, "2026-03-02..2026-03-04"},
		{"last week", config.DateRange{Preset: "LAST_WEEK"}, nil, "2026-02-23..2026-03-01"},
		{"this month", config.DateRange{Preset: "THIS_MONTH"}, nil, "2026-03-01..2026-03-04"},
		{"last month", config.DateRange{Preset: "LAST_MONTH"}, nil, "2026-02-01..2026-02-28"},
		{"this year", config.DateRange{Preset: "THIS_YEAR"}, nil, "2026-01-01..2026-03-04"},
		{"last year", config.DateRange{Preset: "LAST_YEAR"}, nil, "2025-01-01..2025-12-31"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Resolve(tc.dr, now, tc.loc)
			if err != nil {
				t.Fatal(err)
			}
			if s.String() != tc.want {
				t.Errorf("got %s, want %s", s, tc.want)
			}
		})
	}
	if _, err := Resolve(config.DateRange{Preset: "NEXT_WEEK"}, now, nil); err == nil {
		t.Error("an unknown preset resolved")
	}
}

func TestBuildQueryFilters(t *testing.T) {
	span := Span{From: datorama.DateOf(time.Date(2021, 6, 1, 0, 0, 0, 0, time.UTC)), To: datorama.DateOf(time.Date(2021, 6, 30, 0, 0, 0, 0, time.UTC))}
	def := &config.Report{Workspace: 9, Dimensions: []string{"Data Stream"}, Measurements: []string{"Cost"}, Top: 5,
		Sort: &config.Sort{By: "Cost", Order: "asc"},
		Filters: []map[string]any{
			{"dimension": "Data Source", "operator": "IN", "vals": []any{"Facebook"}},
			{"dimension": "Data Stream", "operator": "CONTAINS", "val": "eu"},
			{"fieldName": "Cost", "operator": "GREATER", "val": 10.0},
			{"stringDimensionFiltersOperator": "OR"},
		}}
	q, err := buildQuery(def, span)
	if err != nil {
		t.Fatal(err)
	}
	ten := 10.0
	want := datorama.QueryRequest{
		WorkspaceID: 9, DateRange: "CUSTOM", StartDate: span.From, EndDate: span.To,
		Measurements: []datorama.Measure{{Name: "Cost"}}, Dimensions: []string{"Data Stream"},
		GroupDimensionFilters:          []datorama.GroupDimensionFilter{{Dimension: "Data Source", Operator: "IN", Vals: []string{"Facebook"}}},
		StringDimensionFilters:         []datorama.StringDimensionFilter{{Dimension: "Data Stream", Operator: "CONTAINS", Val: "eu"}},
		StringDimensionFiltersOperator: "OR",
		NumberMeasurementFilter:        []datorama.NumberMeasurementFilter{{FieldName: "Cost", Operator: "GREATER", Val: &ten}},
		SortBy:                         "Cost", SortOrder: "ASC", TopResults: 5,
	}
	if !reflect.DeepEqual(q, want) {
		t.Errorf("got  %+v\nwant %+v", q, want)
	}
	for _, bad := range []map[string]any{
		{"dimension": "X", "operator": "IN", "vals": []any{"a"}, "typo": 1},
		{"color": "red"},
		{},
	} {
		def.Filters = []map[string]any{bad}
		if _, err := buildQuery(def, span); err == nil || !strings.Contains(err.Error(), "filters[0]") {
			t.Errorf("filter %v: err %v, want an error naming filters[0]", bad, err)
		}
	}
}
