// Package extract decides what to fetch from the Datorama API and fetches it: workspaces,
// data streams, jobs (stats), mappings and workspace-level metadata, incrementally and
// resumably, emitting typed batches through load.Sink. It must not know DuckDB or SQL:
// everything it stores or reads back goes through that one interface.
//
// # What a run reads
//
// A run lists the workspaces (one call; with a ratelimit.Pool, one per token, merged),
// then every workspace's streams (one call each). The stream listing is the change
// detector: a stream's jobs are read again only when its run-related fields
// (lastRunStatus, lastRowsRetrieved, processedRows, lastDataDate, lastUpdate) differ from
// the fingerprint kept in the stream's "jobs" checkpoint, when it has stored jobs that are
// not final yet, when its last read did not reach the end, when its safety-net sweep is
// due (Options.SweepEvery) or when Options.Full is set. A stream's mapping is read again
// only when the stream's updateTime changed. Workspace-level lists (dimensions,
// measurements, harmonized dimensions, patterns, calculated measurements) are read on
// their own cadence (Options.WorkspaceListsEvery).
//
// The listing's run fields move only when a run finishes, so for the streams that look
// unchanged the bulk status endpoint is asked too (one call per workspace and 100 such
// streams): a stream whose latest run is not final yet is read, and its jobs in flight
// are stored. A stream that leaves its workspace's complete listing has its jobs and
// mapping marked deleted with it.
//
// # Reading a stream's jobs
//
// The stats list is paged (pageSize, 1-based pageNumber) and ends with a page shorter
// than asked. Its order across pages is not known for certain, so it is detected from
// the ids and remembered in the "account" checkpoint. Oldest first, an incremental read
// starts at the page holding the last stored job (so the stored ids on it prove the
// pages did not shift), re-reads the earlier pages that hold jobs not yet final, and
// reads to the end. Newest first, it reads from page 1 until it reaches stored jobs
// below which every stored job is final and none went missing. Any disagreement between
// a page and the stored ids (jobs vanished or moved) makes it re-read that stream in
// full. Each page is written with the stream's checkpoint in one transaction, so a kill
// repeats at most the page in flight. With several workers, the pages read while a
// commit runs are committed together in the next transaction (each with its own
// checkpoint), so a fast API gets few, large commits.
//
// # The silent page-size cap, and what learning it costs
//
// The crawl asks for Options.RequestPageSize (default 10,000). The API may cap the page
// size without saying so, and then a capped first page looks like a complete list. Every
// page length ever returned proves the cap is at least that long, so a first page
// shorter than asked is only ambiguous when it is at least as long as every page seen
// before. Ambiguous streams are set aside until the end of the jobs stage and resolved
// longest first, each with one probe call (page 2 of size L-1: one job back means the
// list had exactly L jobs; more means the API capped the page at L, which is then
// remembered in the store and used as the page size from then on). Each probe costs
// exactly one call; a probe that finds the cap is followed by the pages the stream needs
// anyway. A fresh account therefore pays exactly one probe per stream that ties for the
// longest first page, taken in stream-id order, up to and including the first one that
// turns out to be capped; when one stream alone has the longest first page, that is one
// call. Later runs pay a probe only when a stream's first page is at least as long as
// the longest ever seen while the cap is still unknown.
//
// # Defences against pages the API gets wrong
//
// The client retries transient failures; the crawler only judges content. An empty page
// that should not be empty (after a full page, or a first page of a stream whose listing
// says it ran) is fetched again Options.EmptyPageChecks times before it is believed. A
// page whose ids all repeat the previous page is fetched again up to three times, then
// the stream's listing fails. A listing that fails part-way keeps the pages it wrote but
// never marks anything deleted and never advances the stream's fingerprint, so the next
// run reads it again; the run ends partial, naming the parent.
//
// # Stopping
//
// The daily quota running out, Options.MaxCalls, a failing store or the caller's
// cancellation stop a crawl cleanly: no new request is sent, the answers in flight are
// still committed (after a cancellation they get a few seconds), and the run is recorded
// as quota_exhausted, partial or failed. The next run resumes from the checkpoints
// without asking again for anything stored. Streams are read by Options.Workers workers
// (default one, since one token's pace leaves a single worker idle most of the time); a
// kill loses at most the page each worker had in flight.
package extract
