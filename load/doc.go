// Package load is drextract's DuckDB store: schema migrations, the analyst views and the
// comments of sql/catalog.yaml, the current-state, history and audit tables behind the
// Sink that extract writes to, the Parquet export, the read-only serving copy, the sandbox
// that runs SQL a person wrote (Sandbox: read-only, no file access, statement type judged
// by DuckDB, time limit), the one row scanner (ScanRows), the data-directory lock, and what
// a publish target (PostgreSQL) lacks (Changes). It knows nothing of HTTP, the Datorama
// API or PostgreSQL: rows arrive as typed Go values with their raw JSON, and leave for a
// target as a ChangeSet.
//
// Files under the data directory:
//
//	live/                  the live store's private folder (0700)
//	  datorama.duckdb      the live store (0600), opened read-write by one process at a
//	                       time (LockDir), verified against its checksums at every open
//	  datorama.duckdb.wal  its write-ahead log (0600); DuckDB spills into .tmp/ beside it
//	  datorama.duckdb.calls
//	                       the API-call journal every process appends to (Journal), folded
//	                       into api_calls by the store's holder (FoldJournal); .lock and
//	                       .folding beside it
//	serving.duckdb         the BI copy, replaced whole by Publish, read-only on disk
//	                       (Share: 0440 by default) so consumers can only open it read-only
//	parquet                a symlink to the newest complete export in parquet.versions/
//	drextract.lock         the single-writer lock, holding the writer's pid
package load
