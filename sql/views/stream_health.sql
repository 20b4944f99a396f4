-- stream_health: one row per stream: is it enabled, when did it last succeed and fail,
-- how often did it fail in the last 7 days, how many failures in a row it has now, is a
-- job of it running, and how long since it last succeeded.
--
-- "Now" is as_of, the time the store's stream data is as of (the newest last_seen of
-- streams), not the reader's clock: the view says the same thing in every copy of the
-- store and in PostgreSQL, and a crawl that stopped shows as an old as_of here and in
-- freshness rather than as ageing figures. A job's time is when it ended, or started when
-- it has no end.
WITH as_of AS (
    SELECT max(last_seen) AS t FROM streams
),
finished AS (
    SELECT stream_id, status, coalesce(end_execution_time, start_execution_time) AS t
    FROM jobs
    WHERE NOT is_deleted AND status IN ('SUCCESS', 'FAILURE')
),
last AS (
    SELECT stream_id,
           max(t) FILTER (WHERE status = 'SUCCESS') AS last_success,
           max(t) FILTER (WHERE status = 'FAILURE') AS last_failure
    FROM finished
    GROUP BY stream_id
),
failures AS (
    SELECT f.stream_id,
           count(*) FILTER (WHERE f.status = 'FAILURE' AND f.t >= (SELECT t FROM as_of) - INTERVAL '7 days') AS failures_7d,
           count(*) FILTER (WHERE f.status = 'FAILURE' AND (l.last_success IS NULL OR f.t > l.last_success)) AS consecutive_failures
    FROM finished f
    JOIN last l ON l.stream_id = f.stream_id
    GROUP BY f.stream_id
),
running AS (
    SELECT stream_id, count(*) AS jobs
    FROM jobs
    WHERE NOT is_deleted AND status = 'IN_PROGRESS'
    GROUP BY stream_id
)
SELECT
    s.id AS stream_id,
    s.name AS stream_name,
    s.workspace_id,
    s.enabled,
    s.is_deleted,
    l.last_success,
    l.last_failure,
    coalesce(f.failures_7d, 0) AS failures_7d,
    coalesce(f.consecutive_failures, 0) AS consecutive_failures,
    coalesce(r.jobs, 0) > 0 AS running_now,
    CAST(extract(epoch FROM ((SELECT t FROM as_of) - l.last_success)) / 3600 AS FLOAT8) AS hours_since_last_success,
    (SELECT t FROM as_of) AS as_of
FROM streams s
LEFT JOIN last l ON l.stream_id = s.id
LEFT JOIN failures f ON f.stream_id = s.id
LEFT JOIN running r ON r.stream_id = s.id
