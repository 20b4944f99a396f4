// Package load is drextract's DuckDB store: schema migrations, the current-state, history
// and audit tables behind the Sink that extract writes to, the Parquet export, the
// read-only serving copy, the sandbox that runs SQL a person wrote (Sandbox: read-only,
// no file access, statement type judged by DuckDB, time limit), the one row scanner
// (ScanRows) and the data-directory lock. It knows nothing of HTTP or the Datorama API:
// rows arrive as typed Go values with their raw JSON.
//
// Files under the data directory:
//
//	datorama.duckdb   the live store, opened read-write by one process at a time (LockDir)
//	datorama.duckdb.calls
//	                  the API-call journal every process appends to (Journal), folded
//	                  into api_calls by the store's holder (FoldJournal); .lock and
//	                  .folding beside it
//	serving.duckdb    the BI copy, replaced whole by Publish; consumers open it read-only
//	parquet           a symlink to the newest complete export in parquet.versions/
//	drextract.lock    the single-writer lock, holding the writer's pid
package load
