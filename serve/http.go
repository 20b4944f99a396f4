package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/drextract/drextract/fingerprint"
)

// DefaultListen is the status endpoint's default address: loopback only.
const DefaultListen = "127.0.0.1:9464"

// BudgetStatus is one token's budget as the rate limiter sees it, named by fingerprint
// only. The CLI converts the rate limiter's own status into this, so serve does not
// depend on it.
type BudgetStatus struct {
	Fingerprint    string `json:"fingerprint"`
	PlatformMinute Window `json:"platform_minute"`
	QueryMinute    Window `json:"query_minute"`
	Daily          Window `json:"daily"`
	// ReserveHeld is how many calls of the daily quota scheduled runs may not use.
	ReserveHeld int `json:"reserve_held"`
	InFlight    int `json:"in_flight"`
}

// Window is one rate window: a minute bucket or the daily quota.
type Window struct {
	Known     bool       `json:"known"` // false until a response or the shared state said something
	Limit     int        `json:"limit"`
	Remaining int        `json:"remaining"`
	Reset     *time.Time `json:"reset,omitempty"`
}

// TableFreshness says how fresh one store table is.
type TableFreshness struct {
	Table string `json:"table"`
	Rows  int64  `json:"rows"`
	// LastSeen is max(last_seen) of the table: when a crawl last saw one of its rows.
	LastSeen *time.Time `json:"last_seen"`
	// LastRunID is the run that last wrote the table.
	LastRunID int64 `json:"last_run_id,omitempty"`
}

// HTTPOptions configure the status handler. Every func is optional and called on each
// request that needs it; they must be cheap and safe for concurrent use.
type HTTPOptions struct {
	Scheduler *Scheduler
	Metrics   *Metrics
	Budget    func() []BudgetStatus
	Freshness func(ctx context.Context) ([]TableFreshness, error)
	Version   string
	Logger    *slog.Logger
}

// StatusDoc is the JSON document GET /status answers.
type StatusDoc struct {
	Version string `json:"version"`
	Snapshot
	Budget    []BudgetStatus   `json:"budget"`
	Freshness []TableFreshness `json:"freshness"`
	// FreshnessError is set when the freshness could not be read; the rest still answers.
	FreshnessError string `json:"freshness_error,omitempty"`
}

// NewHandler returns the read-only status endpoint: GET /healthz, GET /status, GET
// /metrics. Any other method is refused with 405 and any other path with 404: the
// endpoint has no write operations.
func NewHandler(o HTTPOptions) http.Handler {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	h := &handler{o: o, log: o.Logger.With("component", "serve")}
	gatherers := prometheus.Gatherers{}
	if o.Metrics != nil {
		gatherers = append(gatherers, o.Metrics.reg)
	}
	dyn := prometheus.NewRegistry()
	dyn.MustRegister(&stateCollector{h: h})
	gatherers = append(gatherers, dyn)
	h.metrics = promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", h.healthz)
	mux.HandleFunc("/status", h.status)
	mux.Handle("/metrics", h.metrics)
	return readOnly(mux)
}

// readOnly refuses every method but GET before routing.
func readOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed: this endpoint is read-only", http.StatusMethodNotAllowed)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type handler struct {
	o       HTTPOptions
	log     *slog.Logger
	metrics http.Handler
}

func (h *handler) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

func (h *handler) status(w http.ResponseWriter, r *http.Request) {
	doc := StatusDoc{Version: h.o.Version, Budget: h.budget(), Freshness: []TableFreshness{}}
	if h.o.Scheduler != nil {
		doc.Snapshot = h.o.Scheduler.Snapshot()
	} else {
		doc.Snapshot = Snapshot{Queue: []string{}, Schedules: []ScheduleStatus{}}
	}
	if doc.Schedules == nil {
		doc.Schedules = []ScheduleStatus{}
	}
	fr, err := h.freshness(r.Context())
	if err != nil {
		doc.FreshnessError = err.Error()
	} else {
		doc.Freshness = fr
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		h.log.Debug("writing /status", "error", err)
	}
}

func (h *handler) budget() []BudgetStatus {
	out := []BudgetStatus{}
	if h.o.Budget == nil {
		return out
	}
	for _, b := range h.o.Budget() {
		b.Fingerprint = safeFingerprint(b.Fingerprint)
		out = append(out, b)
	}
	return out
}

func (h *handler) freshness(ctx context.Context) ([]TableFreshness, error) {
	if h.o.Freshness == nil {
		return []TableFreshness{}, nil
	}
	fr, err := h.o.Freshness(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading table freshness: %w", err)
	}
	if fr == nil {
		fr = []TableFreshness{}
	}
	return fr, nil
}

// safeFingerprint passes a well-formed fingerprint and masks anything else: if a caller
// ever handed a token here by mistake, the status page would still not show it.
func safeFingerprint(fp string) string { return fingerprint.Safe(fp) }

// stateCollector turns the scheduler snapshot, the budget and the freshness into gauges
// at scrape time.
type stateCollector struct{ h *handler }

var (
	descNext        = prometheus.NewDesc("drextract_schedule_next_run_timestamp_seconds", "When the schedule fires next (Unix time).", []string{"schedule"}, nil)
	descLast        = prometheus.NewDesc("drextract_schedule_last_run_timestamp_seconds", "When the schedule's last run finished (Unix time).", []string{"schedule", "status"}, nil)
	descLastOK      = prometheus.NewDesc("drextract_schedule_last_success_timestamp_seconds", "When the schedule last finished ok or partial (Unix time).", []string{"schedule"}, nil)
	descFailures    = prometheus.NewDesc("drextract_schedule_consecutive_failures", "Failed runs in a row.", []string{"schedule"}, nil)
	descRunning     = prometheus.NewDesc("drextract_schedule_running", "1 while the schedule's run is under way.", []string{"schedule"}, nil)
	descQuotaLeft   = prometheus.NewDesc("drextract_quota_remaining", "Calls left in the window, per token fingerprint.", []string{"fingerprint", "window"}, nil)
	descQuotaLimit  = prometheus.NewDesc("drextract_quota_limit", "Size of the window, per token fingerprint.", []string{"fingerprint", "window"}, nil)
	descQuotaReset  = prometheus.NewDesc("drextract_quota_reset_timestamp_seconds", "When the window reopens (Unix time).", []string{"fingerprint", "window"}, nil)
	descReserve     = prometheus.NewDesc("drextract_quota_reserve_held", "Daily calls held back from scheduled runs.", []string{"fingerprint"}, nil)
	descTableSeen   = prometheus.NewDesc("drextract_table_last_seen_timestamp_seconds", "max(last_seen) of the table (Unix time).", []string{"table"}, nil)
	descTableRows   = prometheus.NewDesc("drextract_table_rows", "Rows in the table.", []string{"table"}, nil)
	descBuild       = prometheus.NewDesc("drextract_build_info", "Always 1; the version as a label.", []string{"version"}, nil)
	descUp          = prometheus.NewDesc("drextract_scheduler_start_timestamp_seconds", "When the scheduler started (Unix time).", nil, nil)
	descFreshnessOK = prometheus.NewDesc("drextract_freshness_read_ok", "1 when the table freshness could be read.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNext, descLast, descLastOK, descFailures, descRunning,
		descQuotaLeft, descQuotaLimit, descQuotaReset, descReserve, descTableSeen, descTableRows,
		descBuild, descUp, descFreshnessOK} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	unix := func(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }
	version := c.h.o.Version
	if version == "" {
		version = "dev"
	}
	gauge(descBuild, 1, version)
	if s := c.h.o.Scheduler; s != nil {
		snap := s.Snapshot()
		if !snap.Started.IsZero() {
			gauge(descUp, unix(snap.Started))
		}
		for _, st := range snap.Schedules {
			if st.NextRun != nil {
				gauge(descNext, unix(*st.NextRun), st.Name)
			}
			if st.LastRun != nil {
				gauge(descLast, unix(st.LastRun.Finished), st.Name, st.LastRun.Status)
			}
			if st.LastSuccess != nil {
				gauge(descLastOK, unix(*st.LastSuccess), st.Name)
			}
			gauge(descFailures, float64(st.ConsecutiveFailures), st.Name)
			running := 0.0
			if st.Running {
				running = 1
			}
			gauge(descRunning, running, st.Name)
		}
	}
	for _, b := range c.h.budget() {
		for _, w := range []struct {
			name string
			w    Window
		}{{"platform_minute", b.PlatformMinute}, {"query_minute", b.QueryMinute}, {"daily", b.Daily}} {
			if !w.w.Known {
				continue
			}
			gauge(descQuotaLeft, float64(w.w.Remaining), b.Fingerprint, w.name)
			gauge(descQuotaLimit, float64(w.w.Limit), b.Fingerprint, w.name)
			if w.w.Reset != nil {
				gauge(descQuotaReset, unix(*w.w.Reset), b.Fingerprint, w.name)
			}
		}
		gauge(descReserve, float64(b.ReserveHeld), b.Fingerprint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fr, err := c.h.freshness(ctx)
	if err != nil {
		gauge(descFreshnessOK, 0)
		return
	}
	gauge(descFreshnessOK, 1)
	for _, f := range fr {
		gauge(descTableRows, float64(f.Rows), f.Table)
		if f.LastSeen != nil {
			gauge(descTableSeen, unix(*f.LastSeen), f.Table)
		}
	}
}

// ErrNotLoopback is returned by Listen for an address that is not on the loopback
// interface when allowAny is false.
var ErrNotLoopback = errors.New("not a loopback address")

// Listen opens the status endpoint's listener. Unless allowAny, the address must be on
// the loopback interface (127.0.0.0/8, ::1 or a name resolving only to those): the
// endpoint has no authentication, so exposing it is a decision the operator makes
// explicitly (--listen-any). An empty host (":9464") means every interface and is
// refused the same way.
func Listen(ctx context.Context, addr string, allowAny bool) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", addr, err)
	}
	if !allowAny {
		if err := checkLoopback(ctx, host); err != nil {
			return nil, fmt.Errorf("listen address %q: %w (pass --listen-any to expose the status endpoint beyond this machine)", addr, err)
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", addr, err)
	}
	return ln, nil
}

func checkLoopback(ctx context.Context, host string) error {
	if host == "" {
		return fmt.Errorf("%w: an empty host listens on every interface", ErrNotLoopback)
	}
	if ip := net.ParseIP(strings.Trim(host, "[]")); ip != nil {
		if !ip.IsLoopback() {
			return fmt.Errorf("%w: %s", ErrNotLoopback, ip)
		}
		return nil
	}
	ips, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("resolving %s: %w", host, err)
	}
	if len(ips) == 0 {
		return fmt.Errorf("%w: %s resolves to nothing", ErrNotLoopback, host)
	}
	for _, ip := range ips {
		if !ip.IP.IsLoopback() {
			return fmt.Errorf("%w: %s resolves to %s", ErrNotLoopback, host, ip.IP)
		}
	}
	return nil
}

// Serve answers HTTP on ln with h until ctx is done, then shuts the server down
// (in-flight requests get up to two seconds). It returns nil after a clean shutdown.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("status endpoint: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("status endpoint: %w", err)
	}
	return nil
}
