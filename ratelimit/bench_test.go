package ratelimit

import (
	"testing"
)

// The acceptance scenarios of issue 3 at full size, against the simulator over HTTP on
// a virtual clock. Each reports calls per simulated minute, the 429 answers our calls
// got and the utilisation of the limit (calls per minute over the tokens' combined
// limit). Run with: go test -run '^$' -bench . -benchtime 1x ./ratelimit/

func report(b *testing.B, r result) {
	b.Helper()
	b.ReportMetric(r.perMinute, "calls/simmin")
	b.ReportMetric(float64(r.throttled), "429s")
	b.ReportMetric(100*r.util, "util%")
	b.Log(r)
}

// BenchmarkSequential5000: 5,000 sequential platform calls on one token.
func BenchmarkSequential5000(b *testing.B) {
	var r result
	for range b.N {
		r = scenarioSequential(b, 5000)
	}
	report(b, r)
}

// BenchmarkExternal20PerMinute: the same while a program outside the budget spends 20
// calls a minute on the same token; "other/simmin" is that program's pace.
func BenchmarkExternal20PerMinute(b *testing.B) {
	var r result
	var other int
	for range b.N {
		r, other = scenarioExternal(b, 5000, 20)
	}
	report(b, r)
	b.ReportMetric(float64(other)/r.elapsed.Minutes(), "other/simmin")
}

// BenchmarkPool: 5,000 calls by 9 workers over every workspace, through a pool of one
// token and of three tokens of overlapping visibility; "x-one-token" is the speed-up.
func BenchmarkPool(b *testing.B) {
	var one, three result
	for range b.N {
		one = scenarioPool(b, 1, 1700, 9)
		three = scenarioPool(b, 3, 5000, 9)
	}
	report(b, three)
	b.ReportMetric(three.perMinute/one.perMinute, "x-one-token")
	b.ReportMetric(float64(three.denied), "denied")
}

// BenchmarkSharedState: two budgets of one token on one state directory, as two
// processes would, 2,500 calls each.
func BenchmarkSharedState(b *testing.B) {
	var r result
	for range b.N {
		r = scenarioShared(b, b.TempDir(), 2500)
	}
	report(b, r)
}
