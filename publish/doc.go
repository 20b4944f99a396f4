// Package publish makes what a run wrote visible outside the live store: it refreshes
// the read-only serving copy (serving.duckdb) and, when schedules.yaml names one, the
// PostgreSQL schema, and records how that went on the run (runs.publish_status,
// publish_error). It is the one entry point every command and the daemon call after a
// run ends, and `drextract publish` calls on demand. It must not know how runs crawl or
// act: it sees the store, the configuration and a run id.
package publish
