package serve

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/drextract/drextract/clock"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// secretToken must never appear on the status endpoint, even when a caller hands it over
// by mistake as a fingerprint.
const secretToken = "SECRET-d4t0r4m4-t0k3n-7f3a"

// newTestServer runs two schedules for a simulated 70 minutes, records a few API calls,
// and serves the status handler over real HTTP.
func newTestServer(t *testing.T, freshness func(context.Context) ([]TableFreshness, error)) *httptest.Server {
	t.Helper()
	scheds := loadSchedules(t, `
schedules:
  - name: jobs-half-hourly
    cron: "*/30 * * * *"
    extract: {entities: [jobs]}
  - name: export-bi
    cron: "0 6 * * *"
    export: {}
`)
	m := NewMetrics()
	var s *Scheduler
	synctest.Test(t, func(t *testing.T) {
		mc := clock.NewManual(t0)
		rr := &recordingRunner{t: t, clock: mc, dur: map[string]time.Duration{"jobs-half-hourly": 2 * time.Minute}}
		var err error
		s, err = New(Options{Schedules: scheds, Runner: rr, Clock: mc, Logger: discard(), Metrics: m})
		if err != nil {
			t.Fatal(err)
		}
		runFor(t, s, mc, rr, t0.Add(70*time.Minute))
	})

	m.ObserveAPICall("GET /v1/workspaces", 200, 80*time.Millisecond)
	m.ObserveAPICall("GET /v1/workspaces", 200, 90*time.Millisecond)
	m.ObserveAPICall("POST /v1/data-streams/api/{id}/stats", 429, 10*time.Millisecond)
	m.ObserveAPICall("POST /v1/data-streams/api/{id}/stats", 0, 0)

	reset := t0.Add(24 * time.Hour)
	budget := func() []BudgetStatus {
		return []BudgetStatus{
			{Fingerprint: "tok_0a1b2c3d", Daily: Window{Known: true, Limit: 20000, Remaining: 1234, Reset: &reset},
				PlatformMinute: Window{Known: true, Limit: 60, Remaining: 59}, ReserveHeld: 2000},
			{Fingerprint: secretToken, Daily: Window{Known: true, Limit: 20000, Remaining: 7}},
		}
	}
	if freshness == nil {
		seen := t0.Add(time.Hour)
		freshness = func(context.Context) ([]TableFreshness, error) {
			return []TableFreshness{{Table: "jobs", Rows: 4200, LastSeen: &seen, LastRunID: 9}, {Table: "streams", Rows: 30}}, nil
		}
	}
	srv := httptest.NewServer(NewHandler(HTTPOptions{Scheduler: s, Metrics: m, Budget: budget, Freshness: freshness, Version: "v0.test", Logger: discard()}))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestHealthz(t *testing.T) {
	srv := newTestServer(t, nil)
	code, _, body := get(t, srv.URL+"/healthz")
	if code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
}

func TestStatusJSON(t *testing.T) {
	srv := newTestServer(t, nil)
	code, hdr, body := get(t, srv.URL+"/status")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("/status = %d %s", code, hdr.Get("Content-Type"))
	}
	var doc struct {
		Version   string
		Now       time.Time
		Schedules []struct {
			Name    string
			Kind    string
			Cron    string
			NextRun *time.Time `json:"next_run"`
			LastRun *struct {
				Status   string
				Started  time.Time
				Finished time.Time
				Calls    int
				Rows     map[string]int
			} `json:"last_run"`
			LastSuccess *time.Time `json:"last_success"`
		}
		Budget []struct {
			Fingerprint    string
			Daily          Window
			PlatformMinute Window `json:"platform_minute"`
			ReserveHeld    int    `json:"reserve_held"`
		}
		Freshness []struct {
			Table    string
			Rows     int64
			LastSeen *time.Time `json:"last_seen"`
		}
	}
	dec := json.NewDecoder(strings.NewReader(body))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("decoding /status: %v\n%s", err, body)
	}
	if doc.Version != "v0.test" || len(doc.Schedules) != 2 {
		t.Fatalf("version %q, %d schedules\n%s", doc.Version, len(doc.Schedules), body)
	}
	jobs := doc.Schedules[1] // name order: export-bi, jobs-half-hourly
	if jobs.Name != "jobs-half-hourly" || jobs.Kind != "extract" || jobs.Cron != "*/30 * * * *" {
		t.Errorf("schedule = %+v", jobs)
	}
	if jobs.LastRun == nil || jobs.LastRun.Status != StatusOK || !jobs.LastRun.Started.Equal(t0.Add(time.Hour)) ||
		jobs.LastRun.Calls != 3 || jobs.LastRun.Rows["jobs"] != 10 || jobs.LastSuccess == nil {
		t.Errorf("last run = %+v", jobs.LastRun)
	}
	if jobs.NextRun == nil || !jobs.NextRun.After(t0.Add(time.Hour)) {
		t.Errorf("next run = %v", jobs.NextRun)
	}
	if export := doc.Schedules[0]; export.LastRun != nil || export.NextRun == nil || !export.NextRun.Equal(t0.Add(6*time.Hour)) {
		t.Errorf("export-bi = %+v", export)
	}
	if len(doc.Budget) != 2 || doc.Budget[0].Fingerprint != "tok_0a1b2c3d" || doc.Budget[0].Daily.Remaining != 1234 ||
		doc.Budget[0].ReserveHeld != 2000 || doc.Budget[1].Fingerprint != "tok_invalid" {
		t.Errorf("budget = %+v", doc.Budget)
	}
	if len(doc.Freshness) != 2 || doc.Freshness[0].Table != "jobs" || doc.Freshness[0].LastSeen == nil {
		t.Errorf("freshness = %+v", doc.Freshness)
	}
	if strings.Contains(body, secretToken) {
		t.Error("/status shows the token")
	}
}

func TestStatusFreshnessError(t *testing.T) {
	srv := newTestServer(t, func(context.Context) ([]TableFreshness, error) {
		return nil, errors.New("serving.duckdb not published yet")
	})
	code, _, body := get(t, srv.URL+"/status")
	var doc StatusDoc
	if err := json.Unmarshal([]byte(body), &doc); err != nil || code != 200 {
		t.Fatalf("/status = %d, %v", code, err)
	}
	if !strings.Contains(doc.FreshnessError, "not published yet") || len(doc.Schedules) != 2 {
		t.Errorf("freshness_error %q, %d schedules", doc.FreshnessError, len(doc.Schedules))
	}
	// /metrics still answers, flagging the failure.
	mfs := scrape(t, srv.URL)
	if v := sampleValue(mfs, "drextract_freshness_read_ok", nil); v != 0 {
		t.Errorf("drextract_freshness_read_ok = %v, want 0", v)
	}
}

func scrape(t *testing.T, base string) map[string]*dtoFamily {
	t.Helper()
	code, _, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	if strings.Contains(body, secretToken) {
		t.Error("/metrics shows the token")
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics is not valid Prometheus text: %v\n%s", err, body)
	}
	return mfs
}

func TestMetricsText(t *testing.T) {
	srv := newTestServer(t, nil)
	mfs := scrape(t, srv.URL)
	tests := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"drextract_api_calls_total", map[string]string{"endpoint": "GET /v1/workspaces", "status": "200"}, 2},
		{"drextract_api_calls_total", map[string]string{"endpoint": "POST /v1/data-streams/api/{id}/stats", "status": "429"}, 1},
		{"drextract_api_calls_total", map[string]string{"status": "0"}, 1},
		{"drextract_api_429_total", nil, 1},
		{"drextract_quota_remaining", map[string]string{"fingerprint": "tok_0a1b2c3d", "window": "daily"}, 1234},
		{"drextract_quota_remaining", map[string]string{"fingerprint": "tok_0a1b2c3d", "window": "platform_minute"}, 59},
		{"drextract_quota_remaining", map[string]string{"fingerprint": "tok_invalid", "window": "daily"}, 7},
		{"drextract_quota_limit", map[string]string{"fingerprint": "tok_0a1b2c3d", "window": "daily"}, 20000},
		{"drextract_quota_reserve_held", map[string]string{"fingerprint": "tok_0a1b2c3d"}, 2000},
		{"drextract_quota_reset_timestamp_seconds", map[string]string{"fingerprint": "tok_0a1b2c3d", "window": "daily"}, float64(t0.Add(24 * time.Hour).Unix())},
		// runs at 00:30 and 01:00, two minutes each, ten job rows each
		{"drextract_run_duration_seconds", map[string]string{"schedule": "jobs-half-hourly"}, 2}, // sample count
		{"drextract_runs_total", map[string]string{"schedule": "jobs-half-hourly", "status": "ok"}, 2},
		{"drextract_rows_loaded_total", map[string]string{"table": "jobs"}, 20},
		{"drextract_schedule_next_run_timestamp_seconds", map[string]string{"schedule": "export-bi"}, float64(t0.Add(6 * time.Hour).Unix())},
		{"drextract_schedule_last_success_timestamp_seconds", map[string]string{"schedule": "jobs-half-hourly"}, float64(t0.Add(62 * time.Minute).Unix())},
		{"drextract_table_last_seen_timestamp_seconds", map[string]string{"table": "jobs"}, float64(t0.Add(time.Hour).Unix())},
		{"drextract_table_rows", map[string]string{"table": "streams"}, 30},
		{"drextract_build_info", map[string]string{"version": "v0.test"}, 1},
	}
	for _, tt := range tests {
		if got := sampleValue(mfs, tt.name, tt.labels); got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	if mf := mfs["drextract_run_duration_seconds"]; mf == nil || mf.GetType().String() != "HISTOGRAM" {
		t.Errorf("drextract_run_duration_seconds is not a histogram: %v", mf)
	}
	// The 70 simulated minutes: the histogram sum is 2 × 120 s.
	if mf := mfs["drextract_run_duration_seconds"]; mf != nil {
		if s := mf.GetMetric()[0].GetHistogram().GetSampleSum(); s != 240 {
			t.Errorf("run duration sum = %v s, want 240", s)
		}
	}
}

func TestReadOnlyEndpoint(t *testing.T) {
	srv := newTestServer(t, nil)
	for _, path := range []string{"/healthz", "/status", "/metrics", "/", "/schedules/jobs-half-hourly/run"} {
		for _, method := range []string{"POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"} {
			req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(`{"run":"now"}`))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
				t.Errorf("%s %s = %d (Allow %q), want 405", method, path, resp.StatusCode, resp.Header.Get("Allow"))
			}
		}
	}
	for _, path := range []string{"/", "/debug/pprof/", "/status/x"} {
		if code, _, _ := get(t, srv.URL+path); code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, code)
		}
	}
}

func TestListenLoopbackOnly(t *testing.T) {
	tests := []struct {
		addr     string
		allowAny bool
		wantErr  string // "" means it must listen
	}{
		{"127.0.0.1:0", false, ""},
		{"localhost:0", false, ""},
		{"127.0.0.2:0", false, ""},
		{"0.0.0.0:0", false, "not a loopback address"},
		{":0", false, "every interface"},
		{"192.0.2.7:9464", false, "not a loopback address"},
		{"[2001:db8::1]:9464", false, "not a loopback address"},
		{"127.0.0.1", false, "missing port"},
		{"127.0.0.1:0", true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			ln, err := Listen(context.Background(), tt.addr, tt.allowAny)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Listen(%q): %v", tt.addr, err)
				}
				defer ln.Close()
				if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
					t.Errorf("listening on %s", ip)
				}
				return
			}
			if err == nil {
				ln.Close()
				t.Fatalf("Listen(%q) succeeded, want %q", tt.addr, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Listen(%q): %v, want %q", tt.addr, err, tt.wantErr)
			}
			if strings.Contains(tt.wantErr, "loopback") && !strings.Contains(err.Error(), "--listen-any") {
				t.Errorf("error %q does not say how to override", err)
			}
		})
	}
	host, _, _ := net.SplitHostPort(DefaultListen)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		t.Errorf("DefaultListen %q is not loopback", DefaultListen)
	}
}

// TestServeShutdown: Serve answers until its context ends, then returns nil promptly.
func TestServeShutdown(t *testing.T) {
	ln, err := Listen(context.Background(), "127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, NewHandler(HTTPOptions{Logger: discard()})) }()
	code, _, body := get(t, "http://"+ln.Addr().String()+"/status")
	if code != 200 || !json.Valid([]byte(body)) {
		t.Errorf("/status without a scheduler = %d %s", code, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(time.Minute): // bounds a hang only
		t.Fatal("Serve did not return")
	}
}
