package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"
)

// The kinds of configuration mistake. Every *Error wraps exactly one of them, so callers
// and tests ask errors.Is(err, config.ErrInvalidCron) rather than matching text.
var (
	ErrSyntax           = errors.New("YAML syntax error")
	ErrUnknownKey       = errors.New("unknown key")
	ErrDuplicateKey     = errors.New("key written twice")
	ErrBadType          = errors.New("wrong type")
	ErrMissingKey       = errors.New("missing key")
	ErrBadValue         = errors.New("bad value")
	ErrBadVersion       = errors.New("unsupported version")
	ErrInvalidCron      = errors.New("invalid cron expression")
	ErrInvalidTimezone  = errors.New("unknown time zone")
	ErrUnknownEntity    = errors.New("unknown extract entity")
	ErrUnknownSelection = errors.New("unknown selection")
	ErrUnknownReport    = errors.New("unknown report")
	ErrDuplicateName    = errors.New("duplicate name")
	ErrRunKind          = errors.New("not exactly one run kind")
	ErrBadDateRange     = errors.New("bad date range")
	ErrBadTableName     = errors.New("bad table name")
	ErrBadTokenSource   = errors.New("bad token source")
	ErrMissingToken     = errors.New("missing token")
	ErrUnknownEvent     = errors.New("unknown notify event")
	ErrUnknownSchedule  = errors.New("unknown schedule")
	ErrScheduleCycle    = errors.New("schedules chained in a cycle")
)

// Error is one mistake in a configuration file. It prints as one line,
// "FILE:LINE: KEY: MESSAGE", where KEY is the dotted path of the offending key
// (schedules[2].cron). Messages never contain a token or newlines.
type Error struct {
	File string // the path given to Load; "" for a configuration built in code
	Line int    // 1-based; 0 when unknown
	Key  string // e.g. "schedules[0].cron"; "" for file-level mistakes
	Msg  string
	Kind error // one of the Err* sentinels
}

func (e *Error) Error() string { return formatLine(e.File, e.Line, e.Key, e.Msg) }

// Unwrap returns the sentinel, so errors.Is(err, ErrInvalidCron) works.
func (e *Error) Unwrap() error { return e.Kind }

// Errors is every mistake found in one file, in line order. Load and Validate return it
// (as an error) when it is not empty; it prints one *Error per line.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes every *Error to errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// AsErrors returns the list of configuration mistakes err carries, or nil if err is not
// (and does not wrap) an Errors or *Error.
func AsErrors(err error) Errors {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var e *Error
	if errors.As(err, &e) {
		return Errors{e}
	}
	return nil
}

func (es Errors) sorted() Errors {
	sort.SliceStable(es, func(i, j int) bool { return es[i].Line < es[j].Line })
	return es
}

// err returns es as an error, or nil when it is empty (never a typed nil).
func (es Errors) err() error {
	if len(es) == 0 {
		return nil
	}
	return es.sorted()
}

// Warning is something that works but should be fixed, such as a token file other users
// can read. Load and Tokens return warnings; the caller logs them.
type Warning struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (w Warning) String() string { return formatLine(w.File, w.Line, w.Key, w.Msg) }

func formatLine(file string, line int, key, msg string) string {
	var b strings.Builder
	if file != "" {
		b.WriteString(file)
		if line > 0 {
			fmt.Fprintf(&b, ":%d", line)
		}
		b.WriteString(": ")
	}
	if key != "" {
		b.WriteString(oneLine(key)) // keys come from the file and may hold anything
		b.WriteString(": ")
	}
	b.WriteString(oneLine(msg))
	return b.String()
}

// oneLine keeps a message on one line whatever a library or the file put in it: control
// characters and Unicode line separators become spaces.
func oneLine(s string) string {
	odd := func(r rune) bool { return unicode.IsControl(r) || r == '\u2028' || r == '\u2029' }
	if !strings.ContainsFunc(s, odd) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if odd(r) {
			return ' '
		}
		return r
	}, s)
}

// quoteKey renders a user-supplied key or value for a message: quoted, one line, bounded.
func quoteKey(s string) string {
	const max = 40
	r := []rune(s)
	if len(r) > max {
		s = string(r[:max]) + "…"
	}
	return fmt.Sprintf("%q", s)
}
