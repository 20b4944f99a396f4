-- History. Workspaces, streams and mappings keep every version as a slowly changing
-- dimension (type 2): a version is valid from valid_from until valid_to (NULL while
-- current). A new version starts only when the hash of the raw record changes; a deletion
-- closes the current version without opening another.
--
-- job_status_changes records each observed status transition of a job. The first sight of
-- a job is recorded too, with old_status NULL, so "when did we first see it PENDING" is a
-- query rather than a guess.

CREATE TABLE workspaces_history (
    id          BIGINT NOT NULL,
    name        VARCHAR,
    account_id  BIGINT,
    create_time TIMESTAMPTZ,
    update_time TIMESTAMPTZ,
    raw         JSON,
    row_hash    VARCHAR NOT NULL,
    valid_from  TIMESTAMPTZ NOT NULL,
    valid_to    TIMESTAMPTZ,
    is_current  BOOLEAN NOT NULL,
    run_id      BIGINT
);

CREATE TABLE streams_history (
    id                  BIGINT NOT NULL,
    workspace_id        BIGINT,
    name                VARCHAR,
    data_source_id      BIGINT,
    data_source_name    VARCHAR,
    enabled             BOOLEAN,
    has_data            BOOLEAN,
    last_run_status     VARCHAR,
    last_run_failed     BOOLEAN,
    last_rows_retrieved BIGINT,
    processed_rows      BIGINT,
    last_data_date      DATE,
    last_update         TIMESTAMPTZ,
    create_time         TIMESTAMPTZ,
    update_time         TIMESTAMPTZ,
    raw                 JSON,
    row_hash            VARCHAR NOT NULL,
    valid_from          TIMESTAMPTZ NOT NULL,
    valid_to            TIMESTAMPTZ,
    is_current          BOOLEAN NOT NULL,
    run_id              BIGINT
);

CREATE TABLE mappings_history (
    stream_id    BIGINT NOT NULL,
    workspace_id BIGINT,
    raw          JSON,
    row_hash     VARCHAR NOT NULL,
    valid_from   TIMESTAMPTZ NOT NULL,
    valid_to     TIMESTAMPTZ,
    is_current   BOOLEAN NOT NULL,
    run_id       BIGINT
);

CREATE TABLE job_status_changes (
    job_id     BIGINT NOT NULL,
    stream_id  BIGINT,
    old_status VARCHAR,
    new_status VARCHAR,
    seen_at    TIMESTAMPTZ NOT NULL,
    run_id     BIGINT
);
