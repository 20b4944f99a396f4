-- jobs_enriched: every job with what an analyst asks next: how long it ran, how many rows
-- it retrieved, and the names of its stream, workspace and data source.
--
-- Written once for DuckDB and PostgreSQL alike (the store, the serving copy and the
-- published schema): only syntax and functions both have. rows_retrieved comes from the
-- job record's rowsRetrieved when the API sends one, else from the "Retrieved N rows"
-- line of processLog; regexp_replace returns its input unchanged when the pattern does
-- not match, which is how a log without that line is told apart. The JSON operators are
-- parenthesised: DuckDB binds ->> more loosely than comparisons.
SELECT
    j.id,
    j.stream_id,
    coalesce(nullif(j.workspace_id, 0), s.workspace_id) AS workspace_id,
    j.status,
    j.status_reason,
    j.data_start_date,
    j.data_end_date,
    j.start_execution_time,
    j.end_execution_time,
    j.user_id,
    j.raw,
    j.run_id,
    j.first_seen,
    j.last_seen,
    j.is_deleted,
    j.deleted_at,
    CAST(extract(epoch FROM (j.end_execution_time - j.start_execution_time)) AS FLOAT8) AS duration_s,
    CASE
        WHEN (j.raw ->> 'rowsRetrieved') <> ''
             AND regexp_replace((j.raw ->> 'rowsRetrieved'), '^[0-9]{1,18}$', '') = ''
            THEN CAST((j.raw ->> 'rowsRetrieved') AS BIGINT)
        WHEN regexp_replace((j.raw ->> 'processLog'), '^.*Retrieved ([0-9]{1,18}) rows.*$', '\1', 's') <> (j.raw ->> 'processLog')
            THEN CAST(regexp_replace((j.raw ->> 'processLog'), '^.*Retrieved ([0-9]{1,18}) rows.*$', '\1', 's') AS BIGINT)
    END AS rows_retrieved,
    s.name AS stream_name,
    w.name AS workspace_name,
    s.data_source_name,
    (s.raw ->> 'sourceDisplayName') AS source_display_name
FROM jobs j
LEFT JOIN streams s ON s.id = j.stream_id
LEFT JOIN workspaces w ON w.id = coalesce(nullif(j.workspace_id, 0), s.workspace_id)
