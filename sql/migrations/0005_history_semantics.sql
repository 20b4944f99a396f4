-- History that records changes, not runs (issue 13.2). No schema change: what a row
-- means, and the rows an older drextract wrote that the new meaning makes wrong.
--
-- streams_history keeps one version per configuration of a stream (name, enabled,
-- schedule, config, …), not per run: its row_hash is the md5 of the stream record
-- without the run statistics lastUpdate, lastRunStatus, lastRowsRetrieved, processedRows,
-- lastDataDate, processStatsCounts and hasData (load/entities.go, streamRunStats). Those
-- change with every run; their current values are in streams, the runs are in jobs. A
-- version's columns and raw are the record as first seen in that version. Every stored
-- version is hashed anew here, so current versions are not reopened by the next crawl,
-- and the old run-statistic versions can be told apart: consecutive versions of a stream
-- with the same row_hash. They are kept as they are (nothing stored is removed).
-- workspaces_history and mappings_history still hash the whole record.
--
-- valid_from is the API's change time (updateTime) for workspaces and streams when it is
-- later than every earlier version of the row, else the time the crawl saw the change;
-- for mappings, which carry no change time, always the crawl time. valid_to is the next
-- version's valid_from, or the crawl time of a deletion. Versions written before this
-- migration keep their crawl times.
--
-- job_status_changes records transitions only: a job's first sight is no longer a row
-- (it was 99.7% of the table); jobs.first_seen says when a job was first seen, and the
-- old_status of its earliest transition (or its status, if it has none) what it was then.
-- count(*) counts transitions. Rows an older drextract wrote for first sightings are
-- kept; they are exactly the rows with old_status NULL, so on a store crawled before this
-- migration count transitions with WHERE old_status IS NOT NULL.
--
-- streams.last_run_status is NULL for a stream that never ran (it was '').

UPDATE streams_history
SET row_hash = md5(coalesce(json_merge_patch(raw, '{"lastUpdate":null,"lastRunStatus":null,"lastRowsRetrieved":null,"processedRows":null,"lastDataDate":null,"processStatsCounts":null,"hasData":null}'), ''));

UPDATE streams SET last_run_status = NULL WHERE last_run_status = '';
UPDATE streams_history SET last_run_status = NULL WHERE last_run_status = '';
