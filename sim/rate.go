package sim

import (
	"net/http"
	"strconv"
)

// Rate limits as the facts file gives them (§4): per token, a fixed one-minute window
// aligned to the minute for platform calls and another for query calls, and a daily
// quota over the UTC day shared by both. A call is admitted when its minute bucket and
// the daily quota both have room; it then counts against both. A refused call (429)
// counts against nothing.

const minuteMs = int64(60000)

// Bucket kinds.
const (
	kindPlatform = iota
	kindQuery
)

type bucket struct {
	window int64 // start of the window the count belongs to (epoch ms)
	used   int
}

// roll returns the count of the window that contains now.
func (b *bucket) roll(start int64) {
	if b.window != start {
		b.window = start
		b.used = 0
	}
}

type tokenRate struct {
	minute [2]bucket
	day    bucket
}

type limits struct {
	minute [2]int
	daily  int
}

// take admits a call of kind at now, or reports which limit refused it.
func (tr *tokenRate) take(l limits, kind int, now int64) (ok bool) {
	tr.minute[kind].roll(floorDiv(now, minuteMs) * minuteMs)
	tr.day.roll(floorDiv(now, dayMs) * dayMs)
	if tr.day.used >= l.daily || tr.minute[kind].used >= l.minute[kind] {
		return false
	}
	tr.minute[kind].used++
	tr.day.used++
	return true
}

// refund gives back a call that take admitted, when the answer must not count.
func (tr *tokenRate) refund(kind int) {
	if tr.minute[kind].used > 0 {
		tr.minute[kind].used--
	}
	if tr.day.used > 0 {
		tr.day.used--
	}
}

// exhaust fills the minute bucket of kind: the storm429 fault.
func (tr *tokenRate) exhaust(l limits, kind int, now int64) {
	tr.minute[kind].roll(floorDiv(now, minuteMs) * minuteMs)
	tr.minute[kind].used = l.minute[kind]
}

// setHeaders writes the nine rate headers, and on a 429 the two the docs name for it.
// tr may be nil (no token): the headers then show fresh windows.
func setRateHeaders(h http.Header, tr *tokenRate, l limits, now int64, kind int, refused bool) {
	minuteStart := floorDiv(now, minuteMs) * minuteMs
	dayStart := floorDiv(now, dayMs) * dayMs
	remaining := func(b *bucket, start int64, limit int) int {
		if tr == nil || b.window != start {
			return limit
		}
		return max(0, limit-b.used)
	}
	var pb, qb, db *bucket
	if tr != nil {
		pb, qb, db = &tr.minute[kindPlatform], &tr.minute[kindQuery], &tr.day
	}
	// Assigned, not Set: the map key is written as given, so the wire carries the
	// documented spelling (X-PlatformRateLimit-Limit, not X-Platformratelimit-Limit).
	// Header names are case-insensitive; Header.Get still finds them.
	set := func(name string, v int64) { h[name] = []string{strconv.FormatInt(v, 10)} }
	set("X-PlatformRateLimit-Limit", int64(l.minute[kindPlatform]))
	set("X-PlatformRateLimit-Remaining", int64(remaining(pb, minuteStart, l.minute[kindPlatform])))
	set("X-PlatformRateLimit-Reset", minuteStart+minuteMs)
	set("X-QueryRateLimit-Limit", int64(l.minute[kindQuery]))
	set("X-QueryRateLimit-Remaining", int64(remaining(qb, minuteStart, l.minute[kindQuery])))
	set("X-QueryRateLimit-Reset", minuteStart+minuteMs)
	set("X-DailyQuota-Limit", int64(l.daily))
	set("X-DailyQuota-Remaining", int64(remaining(db, dayStart, l.daily)))
	set("X-DailyQuota-Reset", dayStart+dayMs)
	if refused {
		// "X-RateLimit-Reset and X-DailyQuota-Rest indicate the UTC times when the next
		// minute and day intervals open up respectively" (sic).
		set("X-RateLimit-Reset", minuteStart+minuteMs)
		set("X-DailyQuota-Rest", dayStart+dayMs)
	}
}
