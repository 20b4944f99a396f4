package report

import (
	"fmt"
	"time"

	"github.com/drextract/drextract/config"
	"github.com/drextract/drextract/datorama"
)

// Span is an inclusive range of calendar days.
type Span struct {
	From, To datorama.Date
}

func (s Span) String() string { return s.From.String() + ".." + s.To.String() }

// Resolve turns a definition's date range into fixed days, as seen at now in loc. Every
// range is sent to the API as CUSTOM start and end dates, so what was asked is exactly
// what is recorded. Relative ranges count whole days:
//
//	last_days N   the N days ending yesterday (today is still loading)
//	TODAY, YESTERDAY
//	THIS_WEEK     Monday to today;   LAST_WEEK   the Monday to Sunday before
//	THIS_MONTH    the 1st to today;  LAST_MONTH  the whole month before
//	THIS_YEAR     1 January to today; LAST_YEAR  the whole year before
func Resolve(d config.DateRange, now time.Time, loc *time.Location) (Span, error) {
	if f, t, ok := d.Fixed(); ok {
		return Span{datorama.DateOf(f), datorama.DateOf(t)}, nil
	}
	if loc == nil {
		loc = time.UTC
	}
	y, m, dd := now.In(loc).Date()
	today := time.Date(y, m, dd, 0, 0, 0, 0, time.UTC)
	span := func(a, b time.Time) (Span, error) { return Span{datorama.DateOf(a), datorama.DateOf(b)}, nil }
	if d.LastDays > 0 {
		return span(today.AddDate(0, 0, -d.LastDays), today.AddDate(0, 0, -1))
	}
	monday := today.AddDate(0, 0, -((int(today.Weekday()) + 6) % 7))
	first := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	switch d.Preset {
	case "TODAY":
		return span(today, today)
	case "YESTERDAY":
		return span(today.AddDate(0, 0, -1), today.AddDate(0, 0, -1))
	case "THIS_WEEK":
		return span(monday, today)
	case "LAST_WEEK":
		return span(monday.AddDate(0, 0, -7), monday.AddDate(0, 0, -1))
	case "THIS_MONTH":
		return span(first, today)
	case "LAST_MONTH":
		return span(first.AddDate(0, -1, 0), first.AddDate(0, 0, -1))
	case "THIS_YEAR":
		return span(time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC), today)
	case "LAST_YEAR":
		return span(time.Date(y-1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(y-1, 12, 31, 0, 0, 0, 0, time.UTC))
	}
	return Span{}, fmt.Errorf("date range: give last_days, from and to, or a preset (one of %v)", config.DatePresets)
}
