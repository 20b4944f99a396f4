package ratelimit

import "context"

// Priority orders waiting calls and decides who may spend the daily reserve.
// The zero value is Scheduled.
type Priority int

const (
	// Backfill is bulk history: it waits behind everything and may not spend the daily
	// reserve nor Config.BackfillReserve.
	Backfill Priority = iota - 1
	// Scheduled is a routine crawl: it may not spend the daily reserve.
	Scheduled
	// Interactive is a person waiting (reruns, ad-hoc commands): it goes first and may
	// spend the reserve.
	Interactive
)

func (p Priority) String() string {
	switch {
	case p <= Backfill:
		return "backfill"
	case p >= Interactive:
		return "interactive"
	}
	return "scheduled"
}

type priorityKey struct{}

// WithPriority makes the calls made with ctx wait and spend as p.
func WithPriority(ctx context.Context, p Priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

// PriorityFrom returns the priority set by WithPriority, or Scheduled.
func PriorityFrom(ctx context.Context) Priority {
	if p, ok := ctx.Value(priorityKey{}).(Priority); ok {
		return p
	}
	return Scheduled
}

type tokenKey struct{}

// WithToken makes a Pool send the calls made with ctx with the token whose fingerprint is
// given, whatever workspace they concern. Pool.Learn uses it to ask every token for its
// own workspace list; a Budget ignores it.
func WithToken(ctx context.Context, fingerprint string) context.Context {
	return context.WithValue(ctx, tokenKey{}, fingerprint)
}

// TokenFrom returns the fingerprint set by WithToken, or "".
func TokenFrom(ctx context.Context) string {
	fp, _ := ctx.Value(tokenKey{}).(string)
	return fp
}
