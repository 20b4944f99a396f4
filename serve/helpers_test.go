package serve

import (
	"testing"

	"github.com/drextract/drextract/config"
	dto "github.com/prometheus/client_model/go"
)

type dtoFamily = dto.MetricFamily

func scheduleList(cfg *config.Config) []*config.Schedule {
	return cfg.Schedules
}

// counterValue reads one metric from m's registry; see sampleValue.
func counterValue(t *testing.T, m *Metrics, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	return sampleValue(byName, name, want)
}

// sampleValue sums the samples of one metric family whose labels include want: counter
// and gauge values, histogram sample counts. -1 when the family is absent.
func sampleValue(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	mf, ok := mfs[name]
	if !ok {
		return -1
	}
	var sum float64
	for _, mt := range mf.GetMetric() {
		if !labelsMatch(mt.GetLabel(), want) {
			continue
		}
		switch {
		case mt.Counter != nil:
			sum += mt.GetCounter().GetValue()
		case mt.Gauge != nil:
			sum += mt.GetGauge().GetValue()
		case mt.Histogram != nil:
			sum += float64(mt.GetHistogram().GetSampleCount())
		case mt.Untyped != nil:
			sum += mt.GetUntyped().GetValue()
		}
	}
	return sum
}

func labelsMatch(got []*dto.LabelPair, want map[string]string) bool {
	n := 0
	for _, lp := range got {
		if v, ok := want[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}
