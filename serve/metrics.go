package serve

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics holds the counters the daemon accumulates: API calls, runs, rows, skips. Gauges
// read from elsewhere at scrape time (quota, schedule times, freshness) are collected by
// the HTTP handler. A nil *Metrics ignores every observation. Safe for concurrent use.
type Metrics struct {
	reg         *prometheus.Registry
	apiCalls    *prometheus.CounterVec
	api429      prometheus.Counter
	apiLatency  prometheus.Histogram
	runs        *prometheus.CounterVec
	runDuration *prometheus.HistogramVec
	rows        *prometheus.CounterVec
	skips       *prometheus.CounterVec
	queues      *prometheus.CounterVec
}

// NewMetrics returns a Metrics with its own registry (never the global one, so tests and
// several daemons in one process do not collide). The registry also carries the Go runtime
// and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		apiCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drextract_api_calls_total",
			Help: "API call attempts by endpoint (method and path template) and HTTP status (0 = no response).",
		}, []string{"endpoint", "status"}),
		api429: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "drextract_api_429_total",
			Help: "API call attempts answered 429 Too Many Requests.",
		}),
		apiLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "drextract_api_call_duration_seconds",
			Help:    "Latency of API call attempts.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drextract_runs_total",
			Help: "Finished runs by schedule, kind and status (ok, partial, quota_exhausted, failed, canceled).",
		}, []string{"schedule", "kind", "status"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "drextract_run_duration_seconds",
			Help:    "Duration of finished runs by schedule and kind.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200},
		}, []string{"schedule", "kind"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drextract_rows_loaded_total",
			Help: "Rows written to the store by table.",
		}, []string{"table"}),
		skips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drextract_schedule_skipped_total",
			Help: "Fire times not run, by schedule and reason (busy, already_queued, backoff, quota_exhausted).",
		}, []string{"schedule", "reason"}),
		queues: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drextract_schedule_queued_total",
			Help: "Fire times queued behind another run, by schedule.",
		}, []string{"schedule"}),
	}
	m.reg.MustRegister(m.apiCalls, m.api429, m.apiLatency, m.runs, m.runDuration, m.rows, m.skips, m.queues,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ObserveAPICall counts one API call attempt. endpoint is "METHOD /path/{template}" —
// never a path with ids or a query string, which would explode the label space. status
// is the HTTP status, 0 when no response arrived.
func (m *Metrics) ObserveAPICall(endpoint string, status int, latency time.Duration) {
	if m == nil {
		return
	}
	m.apiCalls.WithLabelValues(endpoint, strconv.Itoa(status)).Inc()
	if status == 429 {
		m.api429.Inc()
	}
	if latency > 0 {
		m.apiLatency.Observe(latency.Seconds())
	}
}

func (m *Metrics) run(schedule, kind, status string, d time.Duration, rows map[string]int) {
	if m == nil {
		return
	}
	m.runs.WithLabelValues(schedule, kind, status).Inc()
	m.runDuration.WithLabelValues(schedule, kind).Observe(d.Seconds())
	for table, n := range rows {
		if n > 0 {
			m.rows.WithLabelValues(table).Add(float64(n))
		}
	}
}

func (m *Metrics) skipped(schedule, reason string) {
	if m == nil {
		return
	}
	m.skips.WithLabelValues(schedule, reason).Inc()
}

func (m *Metrics) queued(schedule string) {
	if m == nil {
		return
	}
	m.queues.WithLabelValues(schedule).Inc()
}
