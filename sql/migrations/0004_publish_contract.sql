-- What a publish to another database needs to find the rows written since its last run:
-- every current-state row carries the run that last wrote it (run_id); a history version
-- also records the run that closed it, since closing changes valid_to and is_current.
-- A run's publish (the serving copy, PostgreSQL) is recorded on its runs row.

ALTER TABLE workspaces_history ADD COLUMN closed_run_id BIGINT;
ALTER TABLE streams_history ADD COLUMN closed_run_id BIGINT;
ALTER TABLE mappings_history ADD COLUMN closed_run_id BIGINT;

-- ok | failed | skipped (no target configured); NULL while not attempted.
ALTER TABLE runs ADD COLUMN publish_status VARCHAR;
ALTER TABLE runs ADD COLUMN publish_error VARCHAR;
