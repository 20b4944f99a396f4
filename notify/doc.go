// Package notify tells people that something went wrong: it sends drextract's events (a
// run that ended failed, partial or quota_exhausted; action items that failed again; a
// stream that keeps failing) to webhooks, one JSON POST per event, with a one-line "text"
// that Slack and Teams incoming webhooks show as it is. It must not know the store's SQL,
// the Datorama API or the configuration file: events arrive built (package run builds
// them from a run's result and the store), webhooks arrive with their URLs read.
//
// Delivery never holds up a run: Notify only queues. Each webhook has one worker and a
// short bounded queue, so a receiver that hangs costs one goroutine and drops what does
// not fit (logged), never a pile of goroutines in a daemon. Each attempt has a timeout;
// 5xx answers, 429 and network errors are retried with backoff, other 4xx are not; an
// event has an overall deadline. Close drains the queues for a bounded time before the
// process exits.
//
// A webhook URL is a secret (whoever holds it can post): it is never printed, logged or
// sent. Logs and errors name a webhook by Fingerprint ("hook_" and 8 hex digits of its
// SHA-256), and every configured URL and extra secret (the API tokens) is scrubbed from
// the text of every event before it is sent.
package notify
