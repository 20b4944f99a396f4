// Package serve is the cron daemon: it fires the schedules of schedules.yaml on an
// injectable clock, lets exactly one run write at a time, and reports what it does on
// loopback HTTP (/healthz, /status, /metrics). It must not know how a run crawls, acts,
// exports or reports — every run goes through the Runner interface, which the CLI
// implements with the real packages — nor anything about DuckDB, the API client or tokens.
//
// Single-writer discipline: every schedule writes to the one store, so every pair of
// schedules conflicts. A schedule that fires while another run is under way (or waiting
// to start) is queued behind it or skipped, as its concurrency says; a schedule waits in
// the queue at most once, so a slow run never builds a backlog of the same schedule.
//
// Chains: a schedule with after: LEADER (instead of or besides a cron) is queued right
// after each run of LEADER that ended ok (when: ok, the default) or that ended at all
// (when: always), ahead of the runs already waiting, so a rerun sweep acts on the data
// its crawl just wrote. A skipped firing of the leader is no run and fires nothing.
//
// Failures: a run that fails (an error, a "failed" outcome or a panic) is logged and
// counted, and its schedule backs off: fire times that fall inside the back-off window
// (1 min after the first failure, doubling up to 1 h by default) are skipped, so a broken
// schedule cannot hammer the API or the store. Repeated identical errors are logged at
// error level at most every ten minutes; the first success afterwards logs "recovered"
// once. A run stopped by quota exhaustion is not a failure: its schedule sleeps until the
// quota resets. context.Canceled during shutdown is not a failure either.
//
// The status endpoint (NewHandler, Listen, Serve) answers GET /healthz, /status (JSON)
// and /metrics (Prometheus text) and nothing else: every other method is 405, so it has
// no write operation. It has no authentication either, so Listen refuses any address
// that is not loopback unless the operator passes allowAny (--listen-any). Tokens never
// reach it: budgets are named by fingerprint, and anything that does not look like one
// is shown as tok_invalid.
package serve
