-- description: Enabled streams with no new data for 7 days; processes the missing days,
-- description: from the day after their last data date to today, at most max_days back.
-- description: Streams that never had data are left out: there is no range to infer.
-- action: process
-- param: max_days (default 90) how far back the missing range may start
-- max_rows: 500
SELECT s.id AS stream_id,
       greatest(s.last_data_date + 1, $today - CAST($max_days AS INTEGER)) AS start_date,
       $today AS end_date,
       s.workspace_id,
       s.name AS stream_name,
       s.last_data_date
FROM streams s
WHERE s.enabled
  AND NOT s.is_deleted
  AND s.last_data_date IS NOT NULL
  AND s.last_data_date < $today - 7
ORDER BY s.workspace_id, s.id
