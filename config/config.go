package config

import (
	"fmt"
	drsql "github.com/drextract/drextract/sql"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/robfig/cron/v3"
)

// CurrentVersion is the only schedules.yaml version this build reads.
const CurrentVersion = 1

// DefaultBaseURL is the documented API host (facts file §2, region us1).
const DefaultBaseURL = "https://api.datorama.com"

// Environment variables read when the file does not say otherwise.
const (
	EnvToken   = "DATORAMA_TOKEN"    // the default token source; DATORAMA_TOKEN_2, _3, … add more
	EnvBaseURL = "DATORAMA_BASE_URL" // the base URL when the file names neither base_url nor region
)

// Regions maps api.region to its API host (facts file §2).
var Regions = map[string]string{
	"us1": "https://api.datorama.com",
	"us2": "https://api-us2.datorama.com",
	"eu":  "https://api-eu.datorama.com",
	"eu2": "https://api-eu2.datorama.com",
}

// MaxWorkers bounds extract's workers: each holds a page in memory and in flight.
const MaxWorkers = 32

// Entities are the extract entities a schedule may name, in crawl order (the store's
// current-state tables).
var Entities = drsql.Entities

// DatePresets are the named report date ranges (date_range: {preset: …}). The report
// package resolves them to fixed dates with its clock; only THIS_MONTH is confirmed as an
// API preset (facts file §10), so none is sent to the API as-is.
var DatePresets = []string{
	"TODAY", "YESTERDAY", "THIS_WEEK", "LAST_WEEK", "THIS_MONTH", "LAST_MONTH", "THIS_YEAR", "LAST_YEAR",
}

// DefaultSQLTimeout is sql_timeout when the file gives none.
const DefaultSQLTimeout = "60s"

// MaxSQLTimeout is the longest sql_timeout accepted: a selection that needs more is
// better rewritten than allowed to hold the daemon.
const MaxSQLTimeout = 24 * time.Hour // keep the message of validator.sqlTimeout in step

// Concurrency policies: what a schedule does when it fires while another run writes.
const (
	ConcurrencyQueue = "queue" // wait for the running writer, then run (the default)
	ConcurrencySkip  = "skip"  // skip this firing
)

// When a chained schedule (after:) fires.
const (
	WhenOK     = "ok"     // only after a run of the leader that ended ok (the default)
	WhenAlways = "always" // after every run of the leader, whatever its outcome
)

// Report write modes.
const (
	ModeReplace = "replace" // replace the rows of the covered date range (the default)
	ModeAppend  = "append"  // append a snapshot
)

// Config is a whole schedules.yaml. After Load (or Default) every default is filled in:
// API.BaseURL, the Store paths, the Budget and each schedule's Concurrency are never empty.
// The yaml tags are the schema: the strict decoder accepts exactly these keys.
type Config struct {
	Version       int    `yaml:"version"`
	API           API    `yaml:"api"`
	Store         Store  `yaml:"store"`
	Budget        Budget `yaml:"budget"`
	SelectionsDir string `yaml:"selections_dir"` // user selections, NAME.sql; may not exist
	// SQLTimeout bounds each statement a person wrote (selections, under serve too), as
	// a Go duration ("60s", "2m"); default DefaultSQLTimeout. Use SQLTimeoutDuration.
	SQLTimeout string      `yaml:"sql_timeout"`
	Reports    []Report    `yaml:"reports"`
	Schedules  []*Schedule `yaml:"schedules"`
	// Notify says where failures are reported; nil when the file has no notify section.
	Notify *Notify `yaml:"notify"`
	// Publish names where the store is published after each run besides serving.duckdb;
	// nil when the file has no publish section.
	Publish *Publish `yaml:"publish"`

	// Path is the file the configuration came from; "" for Default.
	Path string `yaml:"-"`
	// Origins says where the settings with a precedence came from (Resolve).
	Origins map[string]Origin `yaml:"-"`
	// Warnings are what Load or Validate found worth fixing but not fatal (a token file
	// readable by others). The caller logs them.
	Warnings []Warning `yaml:"-"`

	lines      map[string]int // key path → line, from the YAML syntax tree
	defaultAPI bool           // api.tokens was absent: tokens come from DATORAMA_TOKEN[_N]
}

// API says where the API is and where the tokens are read from.
type API struct {
	// BaseURL is the API root without /v1. In the file base_url wins over region; with
	// neither, DATORAMA_BASE_URL or DefaultBaseURL.
	BaseURL string `yaml:"base_url"`
	Region  string `yaml:"region"` // us1, us2, eu, eu2
	Sandbox bool   `yaml:"sandbox"`
	// Tokens lists where tokens are read from, never a token. Absent: DATORAMA_TOKEN and
	// then DATORAMA_TOKEN_2, _3, … while they are set.
	Tokens []TokenSource `yaml:"tokens"`
}

// SecretSource names one place a secret (an API token, a PostgreSQL DSN, …) is read
// from: exactly one of Env and File. The file never holds anything but the secret.
type SecretSource struct {
	Env  string `yaml:"env"`
	File string `yaml:"file"` // after Load, resolved against the file's directory
}

// TokenSource is the SecretSource of an API token.
type TokenSource = SecretSource

// String is "env:NAME" or "file:PATH", the Source of the Secret it yields.
func (s SecretSource) String() string {
	if s.Env != "" {
		return "env:" + s.Env
	}
	return "file:" + s.File
}

// Publish says where the store is published after each run that writes it, besides the
// serving copy.
type Publish struct {
	Postgres *PostgresTarget `yaml:"postgres"`
}

// DefaultPostgresSchema is publish.postgres.schema when the file names none.
const DefaultPostgresSchema = "datorama"

// PostgresTarget is a PostgreSQL database the store is published into.
type PostgresTarget struct {
	// DSN says where the connection string is read from ({env: NAME} or {file: PATH}),
	// never the string itself: it holds a password.
	DSN SecretSource `yaml:"dsn"`
	// Schema is the schema published into; DefaultPostgresSchema when absent. Two stores
	// publish into two schemas.
	Schema string `yaml:"schema"`
}

// Postgres returns the PostgreSQL target, or nil when the file names none.
func (c *Config) Postgres() *PostgresTarget {
	if c.Publish == nil {
		return nil
	}
	return c.Publish.Postgres
}

// Store names the files of the DuckDB store. Serving and Parquet are relative to DataDir
// unless absolute; DuckDB, the live store, is relative to DataDir's private folder
// LiveDir unless absolute. Use the Path methods, which also follow a --data-dir override
// assigned to DataDir.
type Store struct {
	DataDir string `yaml:"data_dir"`
	DuckDB  string `yaml:"duckdb"`
	Serving string `yaml:"serving"`
	Parquet string `yaml:"parquet"`
	// Share says who may read the serving copy and the Parquet export: owner, group
	// (the default) or all. The live store is private whatever it says.
	Share string `yaml:"share"`
}

// LiveDir is the private folder of the data directory that holds the live store (the
// store package's layout; drextract moves a store an older version left in the data
// directory into it).
const LiveDir = "live"

// Shares are the values of store.share.
var Shares = []string{"owner", "group", "all"}

// DuckDBPath is the live store's DuckDB file: DataDir/live/DuckDB unless DuckDB is
// absolute.
func (s Store) DuckDBPath() string {
	if filepath.IsAbs(s.DuckDB) {
		return s.DuckDB
	}
	return filepath.Join(s.DataDir, LiveDir, s.DuckDB)
}

// ServingPath is the read-only copy published for BI tools.
func (s Store) ServingPath() string { return s.under(s.Serving) }

// ParquetDir is the Parquet export folder.
func (s Store) ParquetDir() string { return s.under(s.Parquet) }

func (s Store) under(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(s.DataDir, p)
}

// Budget is how much of the API scheduled work may use.
type Budget struct {
	// Reserve is the share of the daily quota scheduled crawls may not use, in [0, 1);
	// interactive commands may. Default 0.10.
	Reserve float64 `yaml:"reserve"`
	// The limits are used until response headers say otherwise. Defaults 60, 200, 20000.
	PlatformLimit int `yaml:"platform_limit"`
	QueryLimit    int `yaml:"query_limit"`
	DailyQuota    int `yaml:"daily_quota"`
}

// Report is one Query API report definition (issue 8).
type Report struct {
	Name      string    `yaml:"name"`
	Workspace int64     `yaml:"workspace"`
	DateRange DateRange `yaml:"date_range"`
	// Timezone is "UTC" or an IANA zone name; "" means the workspace's own zone.
	Timezone     string   `yaml:"timezone"`
	Dimensions   []string `yaml:"dimensions"`
	Measurements []string `yaml:"measurements"`
	// Filters are Query API filter objects, passed through unchecked.
	Filters []map[string]any `yaml:"filters"`
	Sort    *Sort            `yaml:"sort"`
	Top     int              `yaml:"top"`   // 0: no top-N
	Table   string           `yaml:"table"` // report_[a-z0-9_]+, not one of ReservedReportTables
	Mode    string           `yaml:"mode"`  // ModeReplace (default) or ModeAppend
}

// Sort orders a report's rows.
type Sort struct {
	By    string `yaml:"by"`
	Order string `yaml:"order"` // ASC or DESC (default DESC)
}

// DateRange is exactly one of: LastDays; From and To (inclusive, yyyy-mm-dd); Preset (one
// of DatePresets).
type DateRange struct {
	LastDays int    `yaml:"last_days"`
	From     string `yaml:"from"`
	To       string `yaml:"to"`
	Preset   string `yaml:"preset"`
}

// Fixed returns the dates of a from/to range, as midnight UTC; ok is false for relative
// ranges. Validation guarantees they parse and from <= to.
func (d DateRange) Fixed() (from, to time.Time, ok bool) {
	if d.From == "" {
		return time.Time{}, time.Time{}, false
	}
	f, err1 := time.Parse(time.DateOnly, d.From)
	t, err2 := time.Parse(time.DateOnly, d.To)
	if err1 != nil || err2 != nil {
		return time.Time{}, time.Time{}, false
	}
	return f, t, true
}

// Schedule is one entry of schedules: when it fires and exactly one thing it runs.
type Schedule struct {
	Name string `yaml:"name"`
	// Cron is 5 fields (or @hourly, @daily, …) with an optional "TZ=Zone " or
	// "CRON_TZ=Zone " prefix. Without one, times are read in the zone of the time given to
	// Next (the machine's local zone with the real clock).
	Cron string `yaml:"cron"`
	// After names another schedule: this one fires when that one's run ends (with the
	// outcome When asks for), instead of or besides Cron.
	After string `yaml:"after"`
	// When is WhenOK (default, with After) or WhenAlways.
	When        string `yaml:"when"`
	Concurrency string `yaml:"concurrency"` // ConcurrencyQueue (default) or ConcurrencySkip
	MaxCalls    int    `yaml:"max_calls"`   // per-run API call cap; 0: none

	Extract *Extract   `yaml:"extract"`
	Action  *Action    `yaml:"action"`
	Export  *Export    `yaml:"export"`
	Report  *ReportRef `yaml:"report"`

	spec cron.Schedule // parsed once by Load/Validate
}

// Next returns the first fire time strictly after after, or the zero time if the
// schedule never fires again (or has no cron expression, or an invalid one). It is safe for
// concurrent use. A Schedule built in code rather than loaded parses Cron on each call.
func (s *Schedule) Next(after time.Time) time.Time {
	spec := s.spec
	if spec == nil {
		if s.Cron == "" {
			return time.Time{}
		}
		var err error
		if spec, _, err = parseCron(s.Cron); err != nil {
			return time.Time{}
		}
	}
	return spec.Next(after)
}

// Kind names what the schedule runs: "extract", "action", "export", "report", or "" when
// it names none (which validation refuses).
func (s *Schedule) Kind() string {
	switch {
	case s.Extract != nil:
		return "extract"
	case s.Action != nil:
		return "action"
	case s.Export != nil:
		return "export"
	case s.Report != nil:
		return "report"
	}
	return ""
}

// Extract runs a crawl.
type Extract struct {
	// Entities to crawl, from Entities; absent means all of them.
	Entities []string `yaml:"entities"`
	Full     bool     `yaml:"full"` // refetch everything instead of an incremental crawl
	// Workers is how many streams are read at once (default 8, run.DefaultWorkers): the
	// budget paces them under the API's limits; a kill loses at most one page per worker.
	Workers int `yaml:"workers"`
}

// entitiesOrAll returns Entities, or every entity when none are named.
func (e *Extract) entitiesOrAll() []string {
	if len(e.Entities) == 0 {
		return slices.Clone(Entities)
	}
	return e.Entities
}

// Action runs a selection and sends its action, with guard rails.
type Action struct {
	Selection string            `yaml:"selection"` // a built-in or selections_dir/NAME.sql
	Params    map[string]string `yaml:"params"`
	Yes       bool              `yaml:"yes"`       // false: plan only (a dry run), send nothing
	MaxCalls  int               `yaml:"max_calls"` // 0: the action package's default
	MaxRows   int               `yaml:"max_rows"`  // 0: the selection's own max_rows
}

// Export writes the Parquet folder and publishes the serving copy. It has no options yet.
type Export struct{}

// ReportRef runs the report definition of that name from reports.
type ReportRef struct {
	Name string `yaml:"name"`
}

// Report returns the report definition called name.
func (c *Config) Report(name string) (*Report, bool) {
	for i := range c.Reports {
		if c.Reports[i].Name == name {
			return &c.Reports[i], true
		}
	}
	return nil, false
}

// Schedule returns the schedule called name.
func (c *Config) Schedule(name string) (*Schedule, bool) {
	for _, s := range c.Schedules {
		if s != nil && s.Name == name {
			return s, true
		}
	}
	return nil, false
}

// Default is the configuration used when there is no schedules.yaml: tokens from
// DATORAMA_TOKEN (and DATORAMA_TOKEN_2, … if set), the base URL from DATORAMA_BASE_URL or
// DefaultBaseURL, the store under ./data, no schedules and no reports.
func Default() *Config {
	c := &Config{Version: CurrentVersion, defaultAPI: true, lines: map[string]int{}}
	c.applyDefaults(".", os.LookupEnv)
	return c
}

// applyDefaults fills in what the file left out and resolves relative paths against dir.
// It runs after strict decoding, before validation.
func (c *Config) applyDefaults(dir string, lookupEnv func(string) (string, bool)) {
	if c.API.BaseURL == "" {
		if u, ok := Regions[c.API.Region]; ok {
			c.API.BaseURL = u
		} else if v, ok := lookupEnv(EnvBaseURL); ok && v != "" {
			c.API.BaseURL = v
		} else if c.API.Region == "" {
			c.API.BaseURL = DefaultBaseURL
		}
	}
	c.defaultAPI = !c.has("api.tokens")
	for i := range c.API.Tokens {
		if f := c.API.Tokens[i].File; f != "" {
			c.API.Tokens[i].File = resolve(dir, f)
		}
	}
	setDefault(&c.Store.DataDir, "./data")
	setDefault(&c.Store.DuckDB, "datorama.duckdb")
	setDefault(&c.Store.Serving, "serving.duckdb")
	setDefault(&c.Store.Parquet, "parquet")
	setDefault(&c.Store.Share, "group")
	c.Store.DataDir = resolve(dir, c.Store.DataDir)
	setDefault(&c.SelectionsDir, "./selections")
	c.SelectionsDir = resolve(dir, c.SelectionsDir)
	setDefault(&c.SQLTimeout, DefaultSQLTimeout)

	if !c.has("budget.reserve") {
		c.Budget.Reserve = 0.10
	}
	if !c.has("budget.platform_limit") {
		c.Budget.PlatformLimit = 60
	}
	if !c.has("budget.query_limit") {
		c.Budget.QueryLimit = 200
	}
	if !c.has("budget.daily_quota") {
		c.Budget.DailyQuota = 20000
	}
	c.notifyDefaults(dir)
	if c.Publish != nil && c.Publish.Postgres != nil {
		pg := c.Publish.Postgres
		setDefault(&pg.Schema, DefaultPostgresSchema)
		if pg.DSN.File != "" {
			pg.DSN.File = resolve(dir, pg.DSN.File)
		}
	}
	for i := range c.Reports {
		setDefault(&c.Reports[i].Mode, ModeReplace)
		if s := c.Reports[i].Sort; s != nil {
			setDefault(&s.Order, "DESC")
		}
	}
	for i, s := range c.Schedules {
		if s == nil {
			continue
		}
		setDefault(&s.Concurrency, ConcurrencyQueue)
		if s.After != "" {
			setDefault(&s.When, WhenOK)
		}
		// A kind written with no value ("export:") is still that kind.
		p := fmt.Sprintf("schedules[%d].", i)
		if s.Extract == nil && c.has(p+"extract") {
			s.Extract = &Extract{}
		}
		if s.Action == nil && c.has(p+"action") {
			s.Action = &Action{}
		}
		if s.Export == nil && c.has(p+"export") {
			s.Export = &Export{}
		}
		if s.Report == nil && c.has(p+"report") {
			s.Report = &ReportRef{}
		}
	}
}

// SQLTimeoutDuration is sql_timeout as a duration. Validation guarantees it parses; a
// Config built in code with an invalid value gets DefaultSQLTimeout.
func (c *Config) SQLTimeoutDuration() time.Duration {
	if d, err := time.ParseDuration(c.SQLTimeout); err == nil && d > 0 && d <= MaxSQLTimeout {
		return d
	}
	d, _ := time.ParseDuration(DefaultSQLTimeout)
	return d
}

func (c *Config) has(path string) bool {
	_, ok := c.lines[path]
	return ok
}

func setDefault(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func resolve(dir, p string) string {
	if filepath.IsAbs(p) || dir == "" {
		return filepath.Clean(p)
	}
	return filepath.Join(dir, p)
}

// ReservedReportTables are report_ names that hold the reports' bookkeeping, never a
// report's rows.
var ReservedReportTables = map[string]bool{"report_runs": true, "report_columns": true}
