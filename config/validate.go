package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	drsql "github.com/drextract/drextract/sql"
)

// ValidateOptions says what validation may consult outside the file.
type ValidateOptions struct {
	// KnownSelections reports whether a selection exists. Nil means: the built-ins
	// embedded from sql/selections plus SelectionsDir/NAME.sql.
	KnownSelections func(name string) bool
	// CheckTokens also reads every token source (as Tokens does): an unset or empty
	// variable, a missing, unreadable or empty file is ErrMissingToken, and a file others
	// may read is a Warning. `drextract config check` sets it; other commands read the
	// tokens only when they need them.
	CheckTokens bool
	// LookupEnv reads the environment; nil means os.LookupEnv.
	LookupEnv func(key string) (string, bool)
}

func (o ValidateOptions) lookupEnv() func(string) (string, bool) {
	if o.LookupEnv != nil {
		return o.LookupEnv
	}
	return os.LookupEnv
}

var (
	schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	tableRE  = regexp.MustCompile(`^report_[a-z0-9_]+$`)
	envRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Validate checks every value and returns an Errors with one entry per mistake, in line
// order, or nil. It parses the cron expressions (so Next is cheap afterwards) and replaces
// c.Warnings. Load calls it; call it again after changing a loaded Config.
func (c *Config) Validate(opts ValidateOptions) error {
	v := &validator{c: c, opts: opts}
	c.Warnings = nil
	v.version()
	v.api()
	v.store()
	v.sqlTimeout()
	v.budget()
	v.reports()
	v.schedules()
	v.notify()
	if opts.CheckTokens {
		_, warns, errs := c.readWebhooks(opts.lookupEnv())
		c.Warnings = append(c.Warnings, warns...)
		for _, e := range errs {
			if !v.reported(e.Key) {
				v.errs = append(v.errs, e)
			}
		}
	}
	v.publish()
	if opts.CheckTokens && c.Postgres() != nil && !v.reported("publish.postgres.dsn") {
		_, warns, err := c.readPostgresDSN(opts.lookupEnv())
		c.Warnings = append(c.Warnings, warns...)
		var e *Error
		if errors.As(err, &e) {
			v.errs = append(v.errs, e)
		}
	}
	if opts.CheckTokens {
		_, warns, errs := c.readTokens(opts.lookupEnv())
		c.Warnings = append(c.Warnings, warns...)
		for _, e := range errs {
			if !v.reported(e.Key) {
				v.errs = append(v.errs, e)
			}
		}
	}
	return v.errs.err()
}

type validator struct {
	c    *Config
	opts ValidateOptions
	errs Errors
}

// reported tells whether a mistake was already reported for key or a key inside it, so
// reading the tokens does not repeat what checking their sources found.
func (v *validator) reported(key string) bool {
	for _, e := range v.errs {
		if e.Key == key || strings.HasPrefix(e.Key, key+".") || strings.HasPrefix(key, e.Key+".") {
			return true
		}
	}
	return false
}

// line finds the line of a key path, or of its nearest ancestor written in the file.
func (c *Config) line(p string) int {
	for {
		if n, ok := c.lines[p]; ok {
			return n
		}
		if p == "" {
			return 0
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			p = ""
		} else {
			p = p[:i]
		}
	}
}

func (v *validator) add(kind error, key, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.c.Path, Line: v.c.line(key), Key: key, Kind: kind, Msg: fmt.Sprintf(format, args...)})
}

func (v *validator) version() {
	switch {
	case v.c.Version == CurrentVersion:
	case !v.c.has("version"):
		v.errs = append(v.errs, &Error{File: v.c.Path, Line: 1, Key: "version", Kind: ErrBadVersion,
			Msg: fmt.Sprintf("missing; start the file with \"version: %d\"", CurrentVersion)})
	default:
		v.add(ErrBadVersion, "version", "%d is not supported; this drextract reads version %d", v.c.Version, CurrentVersion)
	}
}

func (v *validator) api() {
	a := v.c.API
	if a.Region != "" {
		if _, ok := Regions[a.Region]; !ok {
			v.add(ErrBadValue, "api.region", "unknown region %s; want us1, us2, eu or eu2", quoteKey(a.Region))
		}
	}
	if a.BaseURL != "" {
		u, err := url.Parse(a.BaseURL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			v.add(ErrBadValue, "api.base_url", "%s is not an http(s) URL such as %s", quoteKey(a.BaseURL), DefaultBaseURL)
		case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			v.add(ErrBadValue, "api.base_url", "%s must be a plain URL, without user, query or fragment", quoteKey(u.Scheme+"://"+u.Host+u.Path))
		case strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), "/v1"):
			v.add(ErrBadValue, "api.base_url", "leave /v1 out of the base URL; the client adds it")
		}
	}
	if v.c.has("api.tokens") && len(a.Tokens) == 0 {
		v.add(ErrMissingToken, "api.tokens", "empty list; name at least one source ({env: NAME} or {file: PATH}), or drop the key to use %s", EnvToken)
	}
	seen := map[string]string{}
	for i, s := range a.Tokens {
		key := fmt.Sprintf("api.tokens[%d]", i)
		switch {
		case s.Env != "" && s.File != "":
			v.add(ErrBadTokenSource, key, "give either env or file, not both")
			continue
		case s.Env == "" && s.File == "":
			v.add(ErrBadTokenSource, key, "want {env: NAME} or {file: PATH}")
			continue
		case s.Env != "" && !envRE.MatchString(s.Env):
			// Not echoed: a value that is not a variable name may be a pasted token.
			v.add(ErrBadTokenSource, key+".env", "not a valid environment variable name (value not shown, in case it is a token); put the token in a variable and name the variable here")
			continue
		}
		if prev, dup := seen[s.String()]; dup {
			v.add(ErrDuplicateName, key, "token source %s is already listed at %s", s.String(), prev)
		}
		seen[s.String()] = key
	}
}

func (v *validator) publish() {
	if v.c.Publish == nil {
		if v.c.has("publish") {
			v.add(ErrMissingKey, "publish", "empty; give postgres: {dsn: {env: NAME}}, or leave the section out")
		}
		return
	}
	pg := v.c.Publish.Postgres
	if pg == nil {
		v.add(ErrMissingKey, "publish.postgres", "missing; give postgres: {dsn: {env: NAME}}, or leave the publish section out")
		return
	}
	const key = "publish.postgres.dsn"
	switch s := pg.DSN; {
	case !v.c.has(key):
		v.add(ErrMissingKey, key, "missing; where the connection string is read from: {env: NAME} or {file: PATH}")
	case s.Env != "" && s.File != "":
		v.add(ErrBadTokenSource, key, "give either env or file, not both")
	case s.Env == "" && s.File == "":
		v.add(ErrBadTokenSource, key, "want {env: NAME} or {file: PATH}; the DSN itself never goes in this file")
	case s.Env != "" && !envRE.MatchString(s.Env):
		// Not echoed: a value that is not a variable name may be a pasted DSN.
		v.add(ErrBadTokenSource, key+".env", "not a valid environment variable name (value not shown, in case it is a DSN); put the DSN in a variable and name the variable here")
	}
	if !schemaRE.MatchString(pg.Schema) || strings.HasPrefix(pg.Schema, "pg_") || pg.Schema == "information_schema" {
		v.add(ErrBadValue, "publish.postgres.schema", "%s is not a schema drextract publishes to; want lower-case letters, digits and _ (at most 63), not pg_* or information_schema", quoteKey(pg.Schema))
	}
}

func (v *validator) store() {
	s := v.c.Store
	paths := map[string]string{}
	for _, p := range []struct{ key, path string }{
		{"store.duckdb", s.DuckDBPath()},
		{"store.serving", s.ServingPath()},
		{"store.parquet", s.ParquetDir()},
	} {
		if prev, dup := paths[p.path]; dup {
			v.add(ErrBadValue, p.key, "same path as %s (%s)", prev, p.path)
		}
		paths[p.path] = p.key
	}
	if !slices.Contains(Shares, s.Share) {
		v.add(ErrBadValue, "store.share", "unknown share %s; want owner, group or all", quoteKey(s.Share))
	}
	if fi, err := os.Stat(v.c.SelectionsDir); err == nil && !fi.IsDir() {
		v.add(ErrBadValue, "selections_dir", "%s is not a directory", v.c.SelectionsDir)
	}
}

func (v *validator) sqlTimeout() {
	d, err := time.ParseDuration(v.c.SQLTimeout)
	switch {
	case err != nil:
		v.add(ErrBadValue, "sql_timeout", "%q is not a duration; want e.g. 60s or 2m", v.c.SQLTimeout)
	case d <= 0 || d > MaxSQLTimeout:
		v.add(ErrBadValue, "sql_timeout", "%s is out of range; want more than 0 and at most 24h", v.c.SQLTimeout)
	}
}

func (v *validator) budget() {
	b := v.c.Budget
	if !(b.Reserve >= 0 && b.Reserve < 1) {
		v.add(ErrBadValue, "budget.reserve", "%v is not a share of the daily quota; want 0 <= reserve < 1, e.g. 0.10", b.Reserve)
	}
	for _, l := range []struct {
		key string
		n   int
	}{{"budget.platform_limit", b.PlatformLimit}, {"budget.query_limit", b.QueryLimit}, {"budget.daily_quota", b.DailyQuota}} {
		if l.n <= 0 {
			v.add(ErrBadValue, l.key, "want a positive number of calls, got %d", l.n)
		}
	}
}

func (v *validator) reports() {
	names := map[string]string{}
	tables := map[string]string{}
	for i := range v.c.Reports {
		r := &v.c.Reports[i]
		p := fmt.Sprintf("reports[%d]", i)
		v.name(p, r.Name, names, "report")
		if r.Workspace <= 0 {
			if v.c.has(p + ".workspace") {
				v.add(ErrBadValue, p+".workspace", "want a positive workspace id, got %d", r.Workspace)
			} else {
				v.add(ErrMissingKey, p+".workspace", "missing; the id of the workspace to query")
			}
		}
		v.dateRange(p+".date_range", r.DateRange)
		if r.Timezone != "" {
			if _, err := time.LoadLocation(r.Timezone); err != nil || r.Timezone == "Local" {
				v.add(ErrInvalidTimezone, p+".timezone", "unknown time zone %s; want UTC or a zone name such as Europe/Paris", quoteKey(r.Timezone))
			}
		}
		v.fieldList(p+".dimensions", r.Dimensions, "dimension", "Date")
		v.fieldList(p+".measurements", r.Measurements, "measurement", "Data Stream Total Rows")
		if r.Sort != nil {
			if strings.TrimSpace(r.Sort.By) == "" {
				v.add(ErrMissingKey, p+".sort.by", "missing; the dimension or measurement to sort by")
			}
			switch o := strings.ToUpper(r.Sort.Order); o {
			case "ASC", "DESC":
				r.Sort.Order = o
			default:
				v.add(ErrBadValue, p+".sort.order", "%s; want ASC or DESC", quoteKey(r.Sort.Order))
			}
		}
		if r.Top < 0 {
			v.add(ErrBadValue, p+".top", "want a positive number of rows, got %d", r.Top)
		}
		switch {
		case r.Table == "":
			v.add(ErrMissingKey, p+".table", "missing; the target table, e.g. report_%s", tableSuggestion(r.Name))
		case !tableRE.MatchString(r.Table) || len(r.Table) > 63:
			v.add(ErrBadTableName, p+".table", "%s must start with report_ and hold only a-z, 0-9 and _ (at most 63 characters)", quoteKey(r.Table))
		case ReservedReportTables[r.Table]:
			v.add(ErrBadTableName, p+".table", "%s holds drextract's report bookkeeping; choose another name, e.g. report_%s", r.Table, tableSuggestion(r.Name))
		default:
			if prev, dup := tables[r.Table]; dup {
				v.add(ErrDuplicateName, p+".table", "table %s is also written by %s", r.Table, prev)
			}
			tables[r.Table] = fmt.Sprintf("%s (line %d)", quoteKey(r.Name), v.c.line(p))
		}
		switch r.Mode {
		case "", ModeReplace, ModeAppend: // "" (built in code) means replace
		default:
			v.add(ErrBadValue, p+".mode", "%s; want replace or append", quoteKey(r.Mode))
		}
	}
}

func (v *validator) fieldList(key string, list []string, what, example string) {
	if len(list) == 0 {
		v.add(ErrMissingKey, key, "want at least one %s, e.g. [%s]", what, example)
		return
	}
	for j, s := range list {
		if strings.TrimSpace(s) == "" {
			v.add(ErrBadValue, fmt.Sprintf("%s[%d]", key, j), "empty %s name", what)
		}
	}
}

func (v *validator) dateRange(key string, d DateRange) {
	forms := 0
	if v.c.has(key + ".last_days") {
		forms++
	}
	if v.c.has(key+".from") || v.c.has(key+".to") {
		forms++
	}
	if v.c.has(key + ".preset") {
		forms++
	}
	const want = "want {last_days: N}, {from: YYYY-MM-DD, to: YYYY-MM-DD} or {preset: THIS_MONTH}"
	switch {
	case forms == 0:
		v.add(ErrBadDateRange, key, "missing; %s", want)
		return
	case forms > 1:
		v.add(ErrBadDateRange, key, "give exactly one form; %s", want)
		return
	}
	switch {
	case v.c.has(key + ".last_days"):
		if d.LastDays < 1 || d.LastDays > 3660 {
			v.add(ErrBadDateRange, key+".last_days", "want 1 to 3660 days, got %d", d.LastDays)
		}
	case v.c.has(key + ".preset"):
		if !slices.Contains(DatePresets, d.Preset) {
			v.add(ErrBadDateRange, key+".preset", "unknown preset %s; want one of %s", quoteKey(d.Preset), strings.Join(DatePresets, ", "))
		}
	default:
		from, err1 := time.Parse(time.DateOnly, d.From)
		to, err2 := time.Parse(time.DateOnly, d.To)
		switch {
		case d.From == "":
			v.add(ErrBadDateRange, key+".from", "missing; a fixed range needs both from and to (YYYY-MM-DD)")
		case d.To == "":
			v.add(ErrBadDateRange, key+".to", "missing; a fixed range needs both from and to (YYYY-MM-DD)")
		case err1 != nil:
			v.add(ErrBadDateRange, key+".from", "%s is not a date YYYY-MM-DD", quoteKey(d.From))
		case err2 != nil:
			v.add(ErrBadDateRange, key+".to", "%s is not a date YYYY-MM-DD", quoteKey(d.To))
		case to.Before(from):
			v.add(ErrBadDateRange, key+".to", "%s is before from %s", d.To, d.From)
		}
	}
}

// name checks a schedule or report name: present, usable on a command line, unique.
func (v *validator) name(p, name string, seen map[string]string, what string) {
	switch {
	case name == "":
		v.add(ErrMissingKey, p+".name", "missing; every %s needs a name", what)
	case !nameRE.MatchString(name):
		v.add(ErrBadValue, p+".name", "%s: use letters, digits, '-', '_' and '.', starting with a letter or digit (at most 64)", quoteKey(name))
	default:
		if prev, dup := seen[name]; dup {
			v.add(ErrDuplicateName, p+".name", "%s %s is already defined at line %s", what, quoteKey(name), prev)
		}
		seen[name] = fmt.Sprint(v.c.line(p + ".name"))
	}
}

func (v *validator) schedules() {
	names := map[string]string{}
	known := v.opts.KnownSelections
	var builtins *selectionSet
	if known == nil {
		builtins = defaultSelections(v.c.SelectionsDir)
		known = builtins.has
	}
	for i, s := range v.c.Schedules {
		p := fmt.Sprintf("schedules[%d]", i)
		if s == nil {
			v.add(ErrMissingKey, p, "empty schedule; want name, cron and one of extract, action, export, report")
			continue
		}
		v.name(p, s.Name, names, "schedule")
		if s.Cron == "" && s.After == "" {
			v.add(ErrMissingKey, p+".cron", "missing; give cron (e.g. \"5 * * * *\" or \"TZ=Europe/Paris 0 7 * * *\"), after (the schedule whose runs this one follows), or both")
		} else if s.Cron == "" {
			if v.c.has(p + ".cron") {
				v.add(ErrInvalidCron, p+".cron", "empty cron expression; leave the key out to run only after %s", quoteKey(s.After))
			}
		} else if spec, _, err := parseCron(s.Cron); err != nil {
			ce := err.(*cronError)
			v.add(ce.kind, p+".cron", "%s", ce.msg)
		} else {
			s.spec = spec
		}
		switch s.Concurrency {
		case "", ConcurrencyQueue, ConcurrencySkip: // "" (built in code) means queue
		default:
			v.add(ErrBadValue, p+".concurrency", "%s; want queue or skip", quoteKey(s.Concurrency))
		}
		if s.MaxCalls < 0 {
			v.add(ErrBadValue, p+".max_calls", "want a positive call cap (or none), got %d", s.MaxCalls)
		}
		v.when(p, s)
		v.runKind(p, s)
		switch {
		case s.Extract != nil:
			v.extract(p+".extract", s.Extract)
		case s.Action != nil:
			v.action(p+".action", s.Action, known, builtins)
		case s.Report != nil:
			if s.Report.Name == "" {
				v.add(ErrMissingKey, p+".report.name", "missing; the name of a definition under reports")
			} else if _, ok := v.c.Report(s.Report.Name); !ok {
				v.add(ErrUnknownReport, p+".report.name", "no report named %s under reports", quoteKey(s.Report.Name))
			}
		}
	}
	v.chains()
}

// when checks a schedule's when: one of its values, and only with after.
func (v *validator) when(p string, s *Schedule) {
	switch {
	case !v.c.has(p + ".when"):
	case s.After == "":
		v.add(ErrBadValue, p+".when", "when applies to a chained schedule; give after: SCHEDULE too, or leave when out")
	case s.When != WhenOK && s.When != WhenAlways:
		v.add(ErrBadValue, p+".when", "%s; want ok (after a run that ended ok, the default) or always (after every run)", quoteKey(s.When))
	}
}

// chains checks the after: links: each names another schedule, and following them never
// comes back to where it started (each schedule follows at most one, so a chain either
// reaches a schedule with a cron or loops). One error per cycle, at the after of its first
// schedule in the file.
func (v *validator) chains() {
	byName := map[string]int{}
	for i, s := range v.c.Schedules {
		if s != nil && s.Name != "" {
			if _, dup := byName[s.Name]; !dup {
				byName[s.Name] = i
			}
		}
	}
	reported := map[int]bool{}
	for i, s := range v.c.Schedules {
		if s == nil || s.After == "" {
			continue
		}
		p := fmt.Sprintf("schedules[%d].after", i)
		if _, ok := byName[s.After]; !ok {
			v.add(ErrUnknownSchedule, p, "no schedule named %s to run after", quoteKey(s.After))
			continue
		}
		// Follow the leaders from i; a cycle through i comes back to i.
		path := []string{s.Name}
		seen := map[int]bool{i: true}
		for j := i; ; {
			next, ok := byName[v.c.Schedules[j].After]
			if v.c.Schedules[j].After == "" || !ok {
				break
			}
			path = append(path, v.c.Schedules[next].Name)
			if next == i {
				if !reported[i] {
					for k := range seen {
						reported[k] = true
					}
					v.add(ErrScheduleCycle, p, "schedules run after each other in a cycle: %s; start the chain with a schedule that has a cron and no after",
						strings.Join(reverse(path), " → "))
				}
				break
			}
			if seen[next] {
				break // a cycle further up the chain, reported from one of its members
			}
			seen[next] = true
			j = next
		}
	}
}

// reverse returns the chain in the order the runs happen (leader first).
func reverse(path []string) []string {
	out := slices.Clone(path)
	slices.Reverse(out)
	return out
}

func (v *validator) runKind(p string, s *Schedule) {
	var kinds []string
	for _, k := range []struct {
		name string
		set  bool
	}{{"extract", s.Extract != nil}, {"action", s.Action != nil}, {"export", s.Export != nil}, {"report", s.Report != nil}} {
		if k.set {
			kinds = append(kinds, k.name)
		}
	}
	switch len(kinds) {
	case 0:
		v.add(ErrRunKind, p, "schedule %s runs nothing; give one of extract, action, export, report", quoteKey(s.Name))
	case 1:
	default:
		// Point at the second kind: the first is presumably the intended one.
		v.add(ErrRunKind, p+"."+kinds[1], "schedule %s gives both %s and %s; give exactly one (make a second schedule)", quoteKey(s.Name), kinds[0], kinds[1])
	}
}

func (v *validator) extract(p string, e *Extract) {
	if e.Workers < 0 || e.Workers > MaxWorkers {
		v.add(ErrBadValue, p+".workers", "%d workers; want 1 to %d (leave the key out for 8)", e.Workers, MaxWorkers)
	}
	if v.c.has(p+".entities") && len(e.Entities) == 0 {
		v.add(ErrBadValue, p+".entities", "empty list; leave the key out to crawl every entity")
	}
	seen := map[string]bool{}
	for j, name := range e.Entities {
		key := fmt.Sprintf("%s.entities[%d]", p, j)
		switch {
		case !slices.Contains(Entities, name):
			v.add(ErrUnknownEntity, key, "unknown entity %s; want some of %s", quoteKey(name), strings.Join(Entities, ", "))
		case seen[name]:
			v.add(ErrDuplicateName, key, "entity %s is listed twice", name)
		}
		seen[name] = true
	}
}

func (v *validator) action(p string, a *Action, known func(string) bool, builtins *selectionSet) {
	switch {
	case a.Selection == "":
		v.add(ErrMissingKey, p+".selection", "missing; the name of a built-in selection or of a NAME.sql in selections_dir")
	case !known(a.Selection):
		msg := fmt.Sprintf("unknown selection %s", quoteKey(a.Selection))
		if builtins != nil {
			msg += fmt.Sprintf(" (built-in: %s; and no %s.sql in %s)", strings.Join(builtins.builtin, ", "), a.Selection, v.c.SelectionsDir)
		}
		v.add(ErrUnknownSelection, p+".selection", "%s", msg)
	}
	if a.MaxCalls < 0 {
		v.add(ErrBadValue, p+".max_calls", "want a positive call cap, got %d", a.MaxCalls)
	}
	if a.MaxRows < 0 {
		v.add(ErrBadValue, p+".max_rows", "want a positive row cap, got %d", a.MaxRows)
	}
	for k := range a.Params {
		if strings.TrimSpace(k) == "" {
			v.add(ErrBadValue, p+".params", "empty parameter name")
		}
	}
}

// selectionSet is the default KnownSelections: built-ins and the user's folder.
type selectionSet struct {
	builtin []string
	dir     string
}

func defaultSelections(dir string) *selectionSet {
	s := &selectionSet{dir: dir}
	entries, _ := fs.ReadDir(drsql.Selections, "selections")
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".sql"); ok && !e.IsDir() {
			s.builtin = append(s.builtin, name)
		}
	}
	sort.Strings(s.builtin)
	return s
}

func (s *selectionSet) has(name string) bool {
	if slices.Contains(s.builtin, name) {
		return true
	}
	// A name with a separator would look outside the folder.
	if name != path.Base(name) || name != filepath.Base(name) || strings.HasPrefix(name, ".") {
		return false
	}
	fi, err := os.Stat(filepath.Join(s.dir, name+".sql"))
	return err == nil && fi.Mode().IsRegular()
}

// tableSuggestion turns a report name into a valid table-name suffix for a hint.
func tableSuggestion(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "rows"
	}
	return b.String()
}
