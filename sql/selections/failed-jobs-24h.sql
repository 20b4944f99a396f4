-- description: Failed jobs of the last 24 hours that have not been rerun yet, one row per job.
-- description: "Not rerun" means no later job of the same stream covers the same days; jobs
-- description: rerun by drextract within the cooldown are skipped by the action's guard rail.
-- action: rerun
-- max_rows: 500
SELECT j.stream_id,
       j.id                 AS job_id,
       s.workspace_id,
       s.name               AS stream_name,
       j.data_start_date,
       j.data_end_date,
       j.end_execution_time AS failed_at
FROM jobs j
JOIN streams s ON s.id = j.stream_id
WHERE j.status = 'FAILURE'
  AND NOT j.is_deleted
  AND NOT s.is_deleted
  AND coalesce(j.end_execution_time, j.start_execution_time) >= $now - INTERVAL 24 HOUR
  AND coalesce(j.end_execution_time, j.start_execution_time) <= $now
  AND NOT EXISTS (
        SELECT 1 FROM jobs later
        WHERE later.stream_id = j.stream_id
          AND later.id > j.id
          AND NOT later.is_deleted
          AND later.data_start_date <= j.data_start_date
          AND later.data_end_date >= j.data_end_date)
ORDER BY j.stream_id, j.id
