package sim

import "time"

// The data model behind job row counts and the Query API. Every stream has, for every
// calendar day, a deterministic number of rows and of impressions, clicks and cost
// (in cents). A job that succeeds "loads" the days of its date range: its rows are the
// sum of the days' rows, and those days become visible to the Query API. Days never
// covered by a SUCCESS job have no data.

// dayValues is one stream's data for one day.
type dayValues struct {
	rows, impressions, clicks, costCents int64
}

func (st *State) daily(s *stream, day int32) dayValues {
	h := st.hash3(uint64(s.id), uint64(uint32(day)), saltRows)
	// 0.6–1.4 of the base, lower at weekends.
	f := 0.6 + 0.8*unit(h)
	if wd := time.Unix(int64(day)*86400, 0).UTC().Weekday(); wd == time.Saturday || wd == time.Sunday {
		f *= 0.7
	}
	rows := int64(float64(s.rowsBase)*f) + 1
	impr := rows * int64(s.imprPerRow)
	clicks := impr * int64(s.ctrMilli) / 1000
	cost := impr * int64(s.cpmCents) / 1000
	return dayValues{rows: rows, impressions: impr, clicks: clicks, costCents: cost}
}

// jobRows is the number of rows a successful job retrieved: the sum over its days.
func (st *State) jobRows(s *stream, j *job) int64 {
	var n int64
	for d := j.dataStart; d <= j.dataEnd; d++ {
		n += st.daily(s, d).rows
	}
	return n
}

// coveredDays marks, for days [from, to], those a SUCCESS job of s has loaded.
func (st *State) coveredDays(s *stream, from, to int32) []bool {
	if to < from {
		return nil
	}
	cov := make([]bool, to-from+1)
	for _, ji := range s.jobs {
		j := &st.jobs[ji]
		if j.status != stSuccess || j.dataEnd < from || j.dataStart > to {
			continue
		}
		for d := max(j.dataStart, from); d <= min(j.dataEnd, to); d++ {
			cov[d-from] = true
		}
	}
	return cov
}

// DailyRow is one stream's data for one day that a successful job has loaded: the
// ground truth behind the Query API.
type DailyRow struct {
	DataStreamID int64  `json:"dataStreamId"`
	WorkspaceID  int64  `json:"workspaceId"`
	Date         string `json:"date"` // yyyy-MM-dd
	Rows         int64  `json:"rows"`
	Impressions  int64  `json:"impressions"`
	Clicks       int64  `json:"clicks"`
	CostCents    int64  `json:"costCents"` // the Query API's "Cost" is CostCents/100
}

func dayString(d int32) string { return time.Unix(int64(d)*86400, 0).UTC().Format("2006-01-02") }

// parseDay parses yyyy-MM-dd into days since the epoch.
func parseDay(s string) (int32, bool) {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return 0, false
	}
	return int32(t.Unix() / 86400), true
}
