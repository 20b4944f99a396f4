package datorama

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/drextract/drextract/clock"
)

// Defaults of the request machinery.
const (
	// DefaultTimeout bounds one attempt: connect, send, and read the answer. For
	// downloads it bounds the time between two reads of the body instead.
	DefaultTimeout = 60 * time.Second
	// DefaultQueryTimeout bounds one attempt of a Query API call. The Query API stops a
	// query at 60 s and answers 200 with the error; waiting longer than that gets the
	// answer, where giving up at 60 s would send the same doomed query again.
	DefaultQueryTimeout = 90 * time.Second
	// DefaultRetries is how many times a transient failure is retried.
	DefaultRetries = 4
	// DefaultUserAgent is sent when WithUserAgent is not given.
	DefaultUserAgent = "drextract (+https://github.com/drextract/drextract)"

	// maxRateLimited is how many 429 answers in a row one call accepts before it returns
	// a *RateLimitError.
	maxRateLimited = 10
	// The bounds on a 2xx body. An answer larger than any real answer to its request can
	// be is refused with a *BodyTooLargeError (never read as a truncated answer): a
	// 240 MB stats page once pushed a crawl's memory to 1.4 GB. Decoding keeps the body
	// once and the strings of its records (a job's processLog) once more, so a body
	// just under a bound costs about twice the bound in memory.
	//
	// jobRecordCeiling: one job record of a stats page. The simulator's records are about
	// 450 bytes and the real sample's smaller; 64 KiB leaves room for a processLog of
	// some 800 lines. A page's bound is pageSize × this, at least minPageBody and at
	// most maxPlatformBody: 6.25 MiB for a page of 100, 50 MiB for 800.
	jobRecordCeiling = 64 << 10
	// statusRecordCeiling: one entry of the bulk status answer ({id, runStatus,
	// status}, about 60 bytes): 4 KiB × the ids asked, at least minPageBody.
	statusRecordCeiling = 4 << 10
	// minPageBody is the floor of a bound derived from a request.
	minPageBody = 1 << 20
	// maxPlatformBody bounds every other platform answer, which no request parameter
	// sizes: the stream list of a workspace is not paged and may hold thousands of
	// streams (facts file §6); 64 MiB holds 40,000 streams of 1.6 KB, far past any
	// account the sources show, and the other workspace lists and single records are
	// smaller still.
	maxPlatformBody = 64 << 20
	// maxQueryBody bounds a Query API answer, which may legitimately be large: a query
	// can return about 600,000 rows (facts file §10). It is the one bound above
	// maxPlatformBody.
	maxQueryBody = 256 << 20
	// maxErrorBody bounds how much of a non-2xx body is read for the error message.
	maxErrorBody = 64 << 10
)

// Client talks to one Datorama environment with one default token. Create it with New.
// Its service fields group the endpoints the way the API does, so call sites read
// c.Streams.List(ctx, wsID).
type Client struct {
	base       *url.URL
	token      string
	hc         *http.Client
	userAgent  string
	sandbox    bool
	gate       Gate // nil: unlimited; the client then waits out 429s itself
	observer   Observer
	clk        clock.Clock
	api        *clock.Remote // the API's clock, learned from every answer's Date header
	badDate    atomic.Bool   // an unreadable Date header was logged
	log        *slog.Logger
	maxRetries int
	timeout    time.Duration
	qtimeout   time.Duration // of a Query API attempt

	Workspaces *WorkspacesService
	Streams    *StreamsService
	Jobs       *JobsService
	Mappings   *MappingsService
	Metadata   *MetadataService
	Connectors *ConnectorsService
	Dashboards *DashboardsService
	Query      *QueryService
	// The Reporting API (facts file row 25) will be a Reports *ReportsService field,
	// wired in New like the others.
}

// service is what every service type is: a handle on the client.
type service struct{ c *Client }

type (
	// WorkspacesService reads workspaces.
	WorkspacesService service
	// StreamsService reads and changes data streams.
	StreamsService service
	// JobsService reads jobs (stats), starts processing and reruns, and downloads raw data.
	JobsService service
	// MappingsService reads and replaces stream mappings.
	MappingsService service
	// MetadataService reads workspace dimensions, measurements, harmonization and
	// calculated measurements.
	MetadataService service
	// ConnectorsService reads connectors (data sources).
	ConnectorsService service
	// DashboardsService reads the dashboards hierarchy.
	DashboardsService service
	// QueryService runs Query API queries.
	QueryService service
)

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client. Its Timeout should be zero: the client bounds
// each attempt itself (WithTimeout). Its redirect policy is used as is; the default
// client follows redirects only within the base URL's host (see sameHostRedirects).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// WithSandbox sends "sandbox-mode: true" on every request, so calls run in the
// account's sandbox.
func WithSandbox(on bool) Option { return func(c *Client) { c.sandbox = on } }

// WithGate makes every attempt pass g. Without a gate the client is unlimited and waits
// out 429 answers itself.
func WithGate(g Gate) Option { return func(c *Client) { c.gate = g } }

// WithObserver reports every attempt to o.
func WithObserver(o Observer) Option { return func(c *Client) { c.observer = o } }

// WithClock sets the clock used for backoff and 429 waits (and for CallRecord times).
func WithClock(clk clock.Clock) Option { return func(c *Client) { c.clk = clk } }

// WithAPIClock makes the client feed api with the Date header of every answer (2xx, 4xx
// and 429 alike), so that api estimates the API's clock (see clock.Remote): give the same
// Remote to the rate budget (ratelimit.Config.Clock) and to whatever compares the API's
// timestamps with "now". api's host clock should be the client's (WithClock). Without
// this option the client keeps an estimate of its own (APIClock).
func WithAPIClock(api *clock.Remote) Option { return func(c *Client) { c.api = api } }

// WithLogger sets the logger; the client adds component=datorama.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// WithRetries sets how many times a transient failure is retried (0: never).
func WithRetries(max int) Option { return func(c *Client) { c.maxRetries = max } }

// WithTimeout bounds each attempt of every call (default DefaultTimeout, and
// DefaultQueryTimeout for the Query API). It is measured in real time, not on the
// client's clock: it guards against a stuck network, which a virtual clock cannot see.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// New returns a client for the environment at baseURL, such as
// https://api.datorama.com or http://127.0.0.1:1234/base (without /v1; a trailing /v1 is
// dropped). token is the default token; a Gate's Permit may supply another per attempt,
// so token may be empty only when a gate is set.
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil {
		return nil, fmt.Errorf("datorama base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("datorama base URL %q: want http(s)://host[/path]", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("datorama base URL %q: must not carry a query, fragment or user info", u.Redacted())
	}
	u.Path = strings.TrimSuffix(strings.TrimRight(u.Path, "/"), "/v1")
	u.RawPath = ""
	c := &Client{
		base:       u,
		token:      token,
		userAgent:  DefaultUserAgent,
		clk:        clock.Real{},
		maxRetries: DefaultRetries,
	}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = &http.Client{CheckRedirect: sameHostRedirects}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.api == nil {
		c.api = clock.NewRemote(c.clk, c.log)
	}
	c.log = c.log.With("component", "datorama")
	if c.maxRetries < 0 {
		c.maxRetries = 0
	}
	if c.timeout <= 0 {
		c.timeout, c.qtimeout = DefaultTimeout, DefaultQueryTimeout
	} else {
		c.qtimeout = c.timeout
	}
	if c.token == "" && c.gate == nil {
		return nil, errors.New("datorama client: no token (and no gate to supply one)")
	}
	c.Workspaces = (*WorkspacesService)(&service{c})
	c.Streams = (*StreamsService)(&service{c})
	c.Jobs = (*JobsService)(&service{c})
	c.Mappings = (*MappingsService)(&service{c})
	c.Metadata = (*MetadataService)(&service{c})
	c.Connectors = (*ConnectorsService)(&service{c})
	c.Dashboards = (*DashboardsService)(&service{c})
	c.Query = (*QueryService)(&service{c})
	return c, nil
}

// errRedirectElsewhere refuses a redirect to another host or scheme. net/http would
// follow it without the Authorization header, and the 401 that follows would look like
// a bad token; the facts file says some hosts redirect to their regional host, so the
// error names the host to configure instead.
var errRedirectElsewhere = errors.New("redirected to another host")

// errTooManyRedirects ends a chain of redirects that does not settle; resending cannot help.
var errTooManyRedirects = errors.New("stopped after 10 redirects")

func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errTooManyRedirects
	}
	if req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
		return fmt.Errorf("%w %s://%s: use it as the base URL (the token is not sent there)", errRedirectElsewhere, req.URL.Scheme, req.URL.Host)
	}
	return nil
}

// APIClock returns the client's estimate of the API's clock, fed by every answer's Date
// header: the Remote given with WithAPIClock, else one over the client's clock.
func (c *Client) APIClock() *clock.Remote { return c.api }

// BaseURL returns the base URL requests are made against, without /v1.
func (c *Client) BaseURL() string { return c.base.String() }

// route is one request's path: the template the audit and the gate see, the path with
// the ids filled in, and the workspace the path names (0 when it names none).
type route struct {
	tmpl string
	path string
	ws   int64
}

// newRoute fills the {placeholders} of tmpl with ids, in order. A {wsId} placeholder
// also sets the route's workspace. A count mismatch is a programming error.
func newRoute(tmpl string, ids ...int64) route {
	r := route{tmpl: tmpl}
	var b strings.Builder
	rest := tmpl
	for {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 || len(ids) == 0 {
			panic("datorama: route " + tmpl + ": placeholders and ids do not match")
		}
		name := rest[open+1 : open+end]
		b.WriteString(rest[:open])
		b.WriteString(strconv.FormatInt(ids[0], 10))
		if name == "wsId" {
			r.ws = ids[0]
		}
		ids = ids[1:]
		rest = rest[open+end+1:]
	}
	if len(ids) != 0 {
		panic("datorama: route " + tmpl + ": more ids than placeholders")
	}
	b.WriteString(rest)
	r.path = b.String()
	return r
}

// url returns the absolute URL of path under the base.
func (c *Client) url(path string, q url.Values) string {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = q.Encode()
	return u.String()
}

// workspaceOf is the workspace a call concerns: the path's, else the context's.
func workspaceOf(ctx context.Context, r route) int64 {
	if r.ws != 0 {
		return r.ws
	}
	return WorkspaceFrom(ctx)
}
