-- One meaning per name: run_id points at runs. A report run's own id, and the column of
-- every report_* result table that points at it, is report_run_id. The result tables are
-- created at run time, so their column is renamed by the Go step of this migration
-- (load/migrate.go, renameReportRunID).

ALTER TABLE report_runs RENAME COLUMN run_id TO report_run_id;
