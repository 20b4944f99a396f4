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
// the fingerprint kept in the stream's "jobs" checkpoint, when it has stored jobs that
// may still change unseen (below), when its last read did not reach the end, when its
// safety-net sweep is due (Options.SweepEvery) or when Options.Full is set. A stream's
// mapping is read again only when the stream's updateTime changed. Workspace-level lists
// (dimensions, measurements, harmonized dimensions, patterns, calculated measurements)
// are read on their own cadence (Options.WorkspaceListsEvery).
//
// The listing's run fields move only when a run finishes, so for the streams that look
// unchanged the bulk status endpoint is asked too (one call per workspace and 100 such
// streams); it gives each stream's latest run status. A stream whose stored jobs are all
// final is read when its latest run is not final: a run started since. Jobs of one
// stream run one at a time, oldest first (later ones wait in PENDING), so a stream whose
// only stored job not final is its latest, IN_PROGRESS, cannot have changed while its
// listing stands still and its latest run is still IN_PROGRESS: a job stuck for hours
// costs one bulk status share an hour, not a page. (That jobs queue is inferred [I]; were
// two to run at once, a job started beside a stuck one would be stored when either
// finishes, as without the bulk status.) A stream with stored PENDING jobs is
// always read: a job queued behind them, or the head of their queue starting, shows
// neither in the listing nor in the bulk status. A stream that leaves its workspace's
// complete listing has its jobs and mapping marked deleted with it.
//
// # Targeted crawls
//
// Options.Workspaces and Options.Streams restrict a run. A targeted workspace is read as
// any run reads it (its stream list, its streams' jobs and mappings as decided above, its
// workspace-level lists when due), without the workspace list, so no workspace is marked
// deleted. A targeted stream outside them costs one GET of the stream (its record and
// run fields stand in for its workspace's listing), its job pages, read as if its
// listing had moved, and its mapping; only its own rows and checkpoints change, and a
// stream the API does not answer leaves the run partial with nothing marked deleted.
// Their checkpoints are the ones a whole run writes, so the next whole run reads
// neither again unless it changed since.
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
// as quota_exhausted, partial or failed. Streams are read by Options.Workers workers
// (default one, since one token's pace leaves a single worker idle most of the time); a
// kill loses at most the page each worker had in flight.
//
// # Resuming, and why a resumed run may say ok
//
// The next run resumes from the checkpoints without asking again for anything stored
// that cannot have changed; what can have changed while the crawl was stopped (hours or
// a day of runs) is read again, so the first run that ends ok leaves every table equal
// to the API, whatever quota stops and kills came before. It rests on one rule: a
// stream's "jobs" checkpoint records a listing fingerprint only as the run that saw that
// listing reaches the end of the stream's list, having read, after it saw the listing,
// every page that can have changed since. So:
//
//   - An interrupted read is finished by a later run as an incremental read from where
//     it stopped: oldest first, the pages before the stop that hold jobs not final are
//     read again before the rest; newest first, the top of the list is read down to
//     final jobs before the rest.
//   - A first page parked for the cap probe by an earlier run is kept only when nothing
//     can have changed since: the listing is the one it was read under, every job on it
//     was final and the bulk status shows no run started; otherwise page 1 is read again
//     (a job may have joined the list, and the probe would then misjudge the cap).
//   - Streams that leave a workspace's list are written into that list's checkpoint with
//     the list, and retired (their jobs and mapping marked deleted) after every list was
//     read; a run stopped in between leaves them to the next one.
//
// What changes while a run is under way is seen by the next run: a page read before a
// job changed keeps the job's old status, which is not final, so the next run reads it
// again.
package extract
