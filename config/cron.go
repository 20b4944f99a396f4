package config

import (
	"fmt"
	"strings"
	"time"
	_ "time/tzdata" // TZ= prefixes and report time zones must resolve on hosts without zoneinfo

	"github.com/robfig/cron/v3"
)

// cronParser is the standard 5-field parser plus descriptors (@hourly, @daily, …).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// cronError says which part of a cron expression is wrong: the time zone or the rest.
type cronError struct {
	kind error // ErrInvalidCron or ErrInvalidTimezone
	msg  string
}

func (e *cronError) Error() string { return e.msg }
func (e *cronError) Unwrap() error { return e.kind }

// parseCron parses "[TZ=Zone |CRON_TZ=Zone ]SPEC". It handles the prefix itself because
// robfig/cron slices out of range on "TZ=Zone" with no spec after it, and so that a bad
// zone gets its own error kind. loc is nil when there is no prefix.
func parseCron(expr string) (sched cron.Schedule, loc *time.Location, err error) {
	defer func() {
		// The parser is third-party code fed user input; a panic there must not take
		// down the daemon that is reloading its configuration.
		if r := recover(); r != nil {
			sched, loc, err = nil, nil, &cronError{ErrInvalidCron, fmt.Sprintf("cannot parse %s", quoteKey(expr))}
		}
	}()
	spec := strings.TrimSpace(expr)
	if spec == "" {
		return nil, nil, &cronError{ErrInvalidCron, "empty cron expression"}
	}
	if zone, rest, ok := cutTZ(spec); ok {
		if zone == "" {
			return nil, nil, &cronError{ErrInvalidTimezone, "empty time zone in TZ= prefix"}
		}
		l, err := time.LoadLocation(zone)
		if err != nil || strings.EqualFold(zone, "local") {
			return nil, nil, &cronError{ErrInvalidTimezone, fmt.Sprintf("unknown time zone %s in TZ= prefix", quoteKey(zone))}
		}
		loc, spec = l, strings.TrimSpace(rest)
		if spec == "" {
			return nil, nil, &cronError{ErrInvalidCron, "nothing after the TZ= prefix; want 5 fields such as \"0 7 * * *\""}
		}
	}
	if strings.HasPrefix(spec, "@every") {
		return nil, nil, &cronError{ErrInvalidCron, "@every is not supported; use 5 fields such as \"*/15 * * * *\""}
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		return nil, nil, &cronError{ErrInvalidCron, "more than one TZ= prefix"}
	}
	if n := len(strings.Fields(spec)); !strings.HasPrefix(spec, "@") && n != 5 {
		return nil, nil, &cronError{ErrInvalidCron, fmt.Sprintf("%s has %d fields, want 5 (minute hour day-of-month month day-of-week)", quoteKey(spec), n)}
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, nil, &cronError{ErrInvalidCron, fmt.Sprintf("%s: %v", quoteKey(spec), err)}
	}
	if ss, ok := s.(*cron.SpecSchedule); ok {
		ss.Location = time.Local // in the zone of the time given to Next
		if loc != nil {
			ss.Location = loc
		}
	}
	// A spec such as "0 0 30 2 *" parses but never fires; robfig's Next looks five
	// years ahead, so a fixed reference time decides this the same way on every run.
	if s.Next(time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, nil, &cronError{ErrInvalidCron, fmt.Sprintf("%s never fires", quoteKey(spec))}
	}
	return s, loc, nil
}

// cutTZ splits "TZ=Zone rest" or "CRON_TZ=Zone rest".
func cutTZ(spec string) (zone, rest string, ok bool) {
	for _, p := range []string{"TZ=", "CRON_TZ="} {
		if after, found := strings.CutPrefix(spec, p); found {
			zone, rest, _ = strings.Cut(after, " ")
			return strings.TrimSpace(zone), rest, true
		}
	}
	return "", "", false
}
