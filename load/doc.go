// Package load is drextract's DuckDB store: schema migrations, the analyst views and the
// comments of sql/catalog.yaml, the current-state, history and audit tables behind the
// Sink that extract writes to, the Parquet export, the read-only serving copy, read-only
// queries, the data-directory lock, and what a publish target (PostgreSQL) lacks
// (Changes). It knows nothing of HTTP, the Datorama API or PostgreSQL: rows arrive as
// typed Go values with their raw JSON, and leave for a target as a ChangeSet.
//
// Files under the data directory:
//
//	datorama.duckdb   the live store, opened read-write by one process at a time (LockDir)
//	serving.duckdb    the BI copy, replaced whole by Publish; consumers open it read-only
//	parquet           a symlink to the newest complete export in parquet.versions/
//	drextract.lock    the single-writer lock, holding the writer's pid
package load
