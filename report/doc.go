// Package report runs Query API report definitions (schedules.yaml reports:) and lands
// their answers in typed DuckDB tables named report_*, with the run and date range each
// row came from. It must not know how calls are paced or scheduled, nor how the rest of
// the store is laid out: the client and its gate do the pacing, the caller picks the
// priority, and it writes only report_* tables.
//
// Bookkeeping lives in two tables (sql/migrations/0020_reports.sql): report_runs, one row
// per definition per run, and report_columns, the stored schema of each result table
// (which answer header became which column, with which type). A result table is never
// dropped: a new header adds a column, a header that disappears leaves its column NULL in
// later rows, BIGINT widens to DOUBLE, and any other type change is an error that writes
// nothing.
package report
