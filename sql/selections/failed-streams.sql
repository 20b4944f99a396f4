-- description: Enabled streams whose last run failed (the stream listing's lastRunStatus).
-- action: rerun-all
-- max_rows: 200
SELECT s.id AS stream_id,
       s.workspace_id,
       s.name AS stream_name,
       s.last_run_status,
       s.last_update
FROM streams s
WHERE s.last_run_failed
  AND s.enabled
  AND NOT s.is_deleted
ORDER BY s.workspace_id, s.id
