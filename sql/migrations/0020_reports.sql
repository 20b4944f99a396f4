-- Query API reports (issue 8). The result tables (report_*) are created by the report
-- package at run time, typed from the answers; these two tables are its bookkeeping.
--   report_runs     one per definition per run: what was asked, what landed, how it ended
--   report_columns  the stored schema of each result table: which answer header became
--                   which column, with which type, so types stay stable across runs
-- report_runs.status: running | ok | failed.

CREATE SEQUENCE IF NOT EXISTS report_runs_id_seq START 1;

CREATE TABLE IF NOT EXISTS report_runs (
    run_id     BIGINT PRIMARY KEY DEFAULT nextval('report_runs_id_seq'),
    report     VARCHAR NOT NULL,   -- the definition's name
    table_name VARCHAR NOT NULL,
    workspace  BIGINT NOT NULL,
    date_from  DATE NOT NULL,      -- the covered range, inclusive, as resolved for this run
    date_to    DATE NOT NULL,
    mode       VARCHAR NOT NULL,   -- replace | append
    batched    BOOLEAN NOT NULL DEFAULT false, -- answered through /v1/query-batch
    row_count  BIGINT,             -- rows inserted
    replaced   BIGINT,             -- rows deleted by mode replace
    columns    JSON,               -- the answer's headers, in order
    started    TIMESTAMPTZ NOT NULL,
    finished   TIMESTAMPTZ,
    status     VARCHAR NOT NULL,
    error      VARCHAR
);

CREATE TABLE IF NOT EXISTS report_columns (
    table_name  VARCHAR NOT NULL,
    header      VARCHAR NOT NULL,  -- as the Query API names it, e.g. 'Data Stream Total Rows'
    column_name VARCHAR NOT NULL,  -- e.g. 'data_stream_total_rows'
    type        VARCHAR NOT NULL,  -- BIGINT | DOUBLE | DATE | VARCHAR | '' (only nulls seen so far; stored as VARCHAR)
    position    INTEGER NOT NULL,
    added_run   BIGINT NOT NULL,
    PRIMARY KEY (table_name, header)
);
