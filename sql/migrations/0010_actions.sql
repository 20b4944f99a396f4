-- Audit of bulk actions (issue 5). Three levels, because one selection row can need
-- several API calls (a process range split into chunks) and one call can carry many
-- rows (a batch process for 300 streams):
--   action_runs   one per `drextract act` / single-item command / scheduled action
--   action_calls  one per API call that changes something at Datorama; the unit of
--                 side effects: written 'sending' before the request and 'sent' after
--   action_items  one per input row (selection row or CSV line), with its outcome
-- Statuses: planned | sending | sent | failed | skipped (items and calls).
-- Outcomes (items, filled by the follow-up after a crawl): succeeded | failed | pending.

CREATE SEQUENCE IF NOT EXISTS action_runs_id_seq START 1;

CREATE TABLE IF NOT EXISTS action_runs (
    id            BIGINT PRIMARY KEY DEFAULT nextval('action_runs_id_seq'),
    selection     VARCHAR NOT NULL,  -- selection name, 'csv:FILE' or 'command:NAME'
    source        VARCHAR NOT NULL,  -- selection | csv | command
    operation     VARCHAR NOT NULL,
    parameters    JSON,              -- selection parameters and the guard-rail settings
    started_by    VARCHAR,           -- 'cli:USER' or 'schedule:NAME'
    plan          JSON,              -- the plan as printed: calls, skips, estimate
    rows_total    INTEGER,
    items_planned INTEGER,
    items_skipped INTEGER,
    items_sent    INTEGER,
    items_failed  INTEGER,
    calls_planned INTEGER,
    calls_sent    INTEGER,
    started       TIMESTAMPTZ NOT NULL,
    finished      TIMESTAMPTZ,
    status        VARCHAR NOT NULL,  -- running | ok | partial | failed | quota_exhausted | interrupted
    error         VARCHAR
);

CREATE TABLE IF NOT EXISTS action_calls (
    run_id        BIGINT NOT NULL,
    call_no       INTEGER NOT NULL,
    operation     VARCHAR NOT NULL,
    workspace_id  BIGINT,
    method        VARCHAR,
    path          VARCHAR,
    stream_ids    BIGINT[],
    start_date    DATE,              -- process chunk
    end_date      DATE,
    request       JSON,              -- the body sent (or to be sent)
    response      JSON,              -- the answer, bounded
    job_ids       BIGINT[],          -- jobs the answer says were created
    status        VARCHAR NOT NULL,
    error         VARCHAR,
    sending_at    TIMESTAMPTZ,
    sent_at       TIMESTAMPTZ,
    reconciled    VARCHAR,           -- how an interrupted call was settled, if it was
    PRIMARY KEY (run_id, call_no)
);

CREATE SEQUENCE IF NOT EXISTS action_items_id_seq START 1;

CREATE TABLE IF NOT EXISTS action_items (
    id               BIGINT PRIMARY KEY DEFAULT nextval('action_items_id_seq'),
    run_id           BIGINT NOT NULL,
    row_no           INTEGER,        -- selection row or CSV line
    operation        VARCHAR NOT NULL,
    workspace_id     BIGINT,
    stream_id        BIGINT,
    job_id           BIGINT,         -- rerun/download input
    start_date       DATE,           -- process input; for rerun the rerun job's dates
    end_date         DATE,
    name             VARCHAR,        -- rename input
    patch            JSON,           -- patch/put/mapping input
    request          JSON,           -- the input row as given
    call_nos         BIGINT[],       -- the action_calls carrying this item
    known_max_job_id BIGINT,         -- newest job of the stream in the store when planned
    expected_jobs    INTEGER,        -- jobs the item should create (NULL: unknown)
    response         JSON,           -- this item's part of the answer
    job_ids          BIGINT[],       -- jobs created for this item
    status           VARCHAR NOT NULL,
    reason           VARCHAR,        -- why skipped / failed
    sending_at       TIMESTAMPTZ,
    sent_at          TIMESTAMPTZ,
    outcome          VARCHAR,        -- succeeded | failed | pending
    outcome_at       TIMESTAMPTZ,
    outcome_detail   VARCHAR
);
