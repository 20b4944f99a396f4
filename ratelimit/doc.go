// Package ratelimit is the budget every Datorama request passes through: it paces calls
// under the per-minute windows and the daily quota of each token, learned from the rate
// headers of every response, and shares that view between processes on one machine. It
// must not know about the store, crawling or the command line; it sees calls only as
// datorama.Call values and their outcomes.
//
// A Budget governs one token and a Pool routes calls over several; both implement
// datorama.Gate. The decision of how long a call must wait is the pure function decide
// (decide.go); the waiting itself, the priority queue and the shared state file are
// mechanics kept apart from it (wait.go, shared.go).
//
// The model, in short:
//
//   - Minute windows are fixed and aligned the way the server's are: the Reset header says
//     when the current one ends. Platform and Query calls have separate windows; both
//     count against the daily quota.
//   - Every response's headers are trusted over local counts (another program may spend
//     the same token): a window's count is the highest the server has reported in it
//     (so answers arriving out of order do no harm), and calls still in flight are
//     taken off what it leaves, because the server may not have counted them yet. Until
//     the first answer of a window, one call at a time is sent.
//   - Early in a window calls go as soon as they are allowed; the last Safety.Spread of a
//     window's calls are spaced evenly over what is left of it, so fresh headers arrive
//     between them and another program's spending shows before the window runs dry.
//   - Calls the server counted but nobody here sent are "external"; the budget leaves
//     about as many free in the next window as it saw spent the last time.
//   - A 429 closes the window until the reset it reports; without one, a bounded
//     exponential backoff with jitter.
//   - Scheduled and Backfill calls may not spend the daily reserve; Interactive calls may,
//     and nobody may spend more than the quota. Both get a *datorama.QuotaError.
//   - A waiting Interactive call goes before waiting Scheduled calls, and those before
//     Backfill calls. Priorities are honoured within a process; between processes sharing
//     a state file, calls are served as they come.
//   - Resets are the API's times: given a *clock.Remote as Config.Clock (the client's
//     API clock), the budget compares them with the API's clock, saves that estimate
//     beside the token states and restores it in the next process; a process that has
//     not heard the API yet lets one call through a daily-quota stop, since the stop may
//     only be stale (apiclock.go).
//   - With Config.StateDir, every process on the machine using a token reads and writes
//     one small state file per token under a file lock, calls in flight included. A call
//     in flight whose process died, or that is older than Safety.InFlightTTL, is
//     forgotten; values no honest writer leaves (a reset far ahead, a corrupt file) are
//     repaired or replaced with a warning, so stale state never blocks anyone.
package ratelimit
