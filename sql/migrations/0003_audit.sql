-- Audit: one row per run, one row per API call attempt. Tokens never appear here, only
-- their fingerprints ("tok_" + 8 hex digits).

CREATE SEQUENCE runs_id_seq START 1;

CREATE TABLE runs (
    id         BIGINT PRIMARY KEY DEFAULT nextval('runs_id_seq'),
    schedule   VARCHAR NOT NULL,
    kind       VARCHAR NOT NULL,
    started    TIMESTAMPTZ NOT NULL,
    finished   TIMESTAMPTZ,
    -- ok | partial | quota_exhausted | failed | running
    status     VARCHAR NOT NULL,
    calls      BIGINT,
    rows       JSON, -- rows written per table, e.g. {"jobs": 1200}
    incomplete JSON, -- parents whose listing failed, e.g. ["jobs of stream 123"]
    error      VARCHAR
);

-- Append-only; rate headers are NULL when the response did not carry them.
CREATE TABLE api_calls (
    time               TIMESTAMPTZ NOT NULL,
    run_id             BIGINT,
    token_fingerprint  VARCHAR,
    method             VARCHAR,
    path_template      VARCHAR,
    status             INTEGER,
    latency_ms         DOUBLE,
    attempt            INTEGER,
    platform_remaining INTEGER,
    query_remaining    INTEGER,
    daily_remaining    INTEGER,
    platform_reset     TIMESTAMPTZ,
    daily_reset        TIMESTAMPTZ,
    error              VARCHAR
);
