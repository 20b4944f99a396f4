-- freshness: one row per crawled entity: the last run that ended ok having written its
-- rows, when that run ended, and the time the entity's data is as of (the newest
-- last_seen of its rows: when the crawler last saw the API's answer).
--
-- A run records the rows it wrote per table in runs.rows; an entity the run did not
-- crawl, or whose rows it found unchanged without reading them, is not in it, so its
-- last ok run is an earlier one.
WITH entities (entity) AS (
    VALUES ('workspaces'), ('streams'), ('jobs'), ('mappings'), ('dimensions'),
           ('measurements'), ('harmonized_dimensions'), ('patterns'), ('calculated_measurements')
),
last_ok AS (
    SELECT e.entity, max(r.id) AS run_id
    FROM entities e
    JOIN runs r ON r.status = 'ok' AND (r.rows -> e.entity) IS NOT NULL
    GROUP BY e.entity
),
seen AS (
    SELECT 'workspaces' AS entity, max(last_seen) AS data_as_of, count(*) FILTER (WHERE NOT is_deleted) AS live_rows FROM workspaces
    UNION ALL SELECT 'streams', max(last_seen), count(*) FILTER (WHERE NOT is_deleted) FROM streams
    UNION ALL SELECT 'jobs', max(last_seen), count(*) FILTER (WHERE NOT is_deleted) FROM jobs
    UNION ALL SELECT 'mappings', max(last_seen), count(*) FILTER (WHERE NOT is_deleted) FROM mappings
    UNION ALL SELECT 'dimensions', max(last_seen), count(*) FILTER (WHERE NOT is_deleted) FROM dimensions
    UNION ALL SELECT 'measurements', max(last_seen), count(*) FILTER (WHERE NOT is_deleted) FROM measurements
    UNION ALL SELECT 'harmonized_dimensions', max(last_seen), count(*) FILTER (WHERE NOT is_deleted) FROM harmonized_dimensions
    UNION ALL SELECT 'patterns', max(last_seen), count(*) FILTER (WHERE NOT is_deleted) FROM patterns
    UNION ALL SELECT 'calculated_measurements', max(last_seen), count(*) FILTER (WHERE NOT is_deleted) FROM calculated_measurements
)
SELECT
    e.entity,
    lo.run_id AS last_ok_run_id,
    r.finished AS last_ok_run_finished,
    s.data_as_of,
    s.live_rows
FROM entities e
LEFT JOIN last_ok lo ON lo.entity = e.entity
LEFT JOIN runs r ON r.id = lo.run_id
LEFT JOIN seen s ON s.entity = e.entity
