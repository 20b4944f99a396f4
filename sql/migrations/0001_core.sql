-- Current state of every crawled entity, plus the crawlers' checkpoints.
--
-- Every current-state table has: typed columns converted from the API record (ids BIGINT,
-- epoch-millisecond times TIMESTAMPTZ, dates DATE), the whole record as JSON in raw (so a
-- field the API adds later is never lost), the run that last wrote the row, when it was
-- first and last seen, and a soft-delete flag. A row is marked deleted only when a complete
-- listing of its parent no longer contains it; it is never removed.

CREATE TABLE workspaces (
    id          BIGINT PRIMARY KEY,
    name        VARCHAR,
    account_id  BIGINT,
    create_time TIMESTAMPTZ,
    update_time TIMESTAMPTZ,
    raw         JSON,
    run_id      BIGINT,
    first_seen  TIMESTAMPTZ NOT NULL,
    last_seen   TIMESTAMPTZ NOT NULL,
    is_deleted  BOOLEAN NOT NULL DEFAULT false,
    deleted_at  TIMESTAMPTZ
);

CREATE TABLE streams (
    id                  BIGINT PRIMARY KEY,
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
    run_id              BIGINT,
    first_seen          TIMESTAMPTZ NOT NULL,
    last_seen           TIMESTAMPTZ NOT NULL,
    is_deleted          BOOLEAN NOT NULL DEFAULT false,
    deleted_at          TIMESTAMPTZ
);

-- Jobs ("stats", "runs" in the API). No PRIMARY KEY on purpose: its ART index made each
-- commit of a 1000-job page about five times slower on a store of a few hundred thousand
-- jobs (ids of different streams interleave). The store keeps id unique itself: every
-- write compares the page with the stream's stored jobs under the single-writer lock
-- (load.Store.Write), and the conformance suite checks there are never duplicates. Rows
-- arrive stream by stream, so zone maps on stream_id keep per-stream reads cheap.
CREATE TABLE jobs (
    id                   BIGINT NOT NULL,
    stream_id            BIGINT,
    workspace_id         BIGINT,
    status               VARCHAR,
    status_reason        VARCHAR,
    data_start_date      DATE,
    data_end_date        DATE,
    start_execution_time TIMESTAMPTZ,
    end_execution_time   TIMESTAMPTZ,
    user_id              BIGINT,
    raw                  JSON,
    run_id               BIGINT,
    first_seen           TIMESTAMPTZ NOT NULL,
    last_seen            TIMESTAMPTZ NOT NULL,
    is_deleted           BOOLEAN NOT NULL DEFAULT false,
    deleted_at           TIMESTAMPTZ
);

-- One mapping per stream; its layout is unknown beyond "a JSON object", so raw is the data.
CREATE TABLE mappings (
    stream_id    BIGINT PRIMARY KEY,
    workspace_id BIGINT,
    raw          JSON,
    run_id       BIGINT,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    is_deleted   BOOLEAN NOT NULL DEFAULT false,
    deleted_at   TIMESTAMPTZ
);

CREATE TABLE dimensions (
    workspace_id BIGINT,
    system_name  VARCHAR,
    display_name VARCHAR,
    raw          JSON,
    run_id       BIGINT,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    is_deleted   BOOLEAN NOT NULL DEFAULT false,
    deleted_at   TIMESTAMPTZ,
    PRIMARY KEY (workspace_id, system_name)
);

CREATE TABLE measurements (
    workspace_id BIGINT,
    system_name  VARCHAR,
    display_name VARCHAR,
    raw          JSON,
    run_id       BIGINT,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    is_deleted   BOOLEAN NOT NULL DEFAULT false,
    deleted_at   TIMESTAMPTZ,
    PRIMARY KEY (workspace_id, system_name)
);

CREATE TABLE harmonized_dimensions (
    id           BIGINT PRIMARY KEY,
    workspace_id BIGINT,
    name         VARCHAR,
    update_time  TIMESTAMPTZ,
    raw          JSON,
    run_id       BIGINT,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    is_deleted   BOOLEAN NOT NULL DEFAULT false,
    deleted_at   TIMESTAMPTZ
);

CREATE TABLE patterns (
    id                      BIGINT PRIMARY KEY,
    workspace_id            BIGINT,
    harmonized_dimension_id BIGINT,
    name                    VARCHAR,
    update_time             TIMESTAMPTZ,
    raw                     JSON,
    run_id                  BIGINT,
    first_seen              TIMESTAMPTZ NOT NULL,
    last_seen               TIMESTAMPTZ NOT NULL,
    is_deleted              BOOLEAN NOT NULL DEFAULT false,
    deleted_at              TIMESTAMPTZ
);

CREATE TABLE calculated_measurements (
    id           BIGINT PRIMARY KEY,
    workspace_id BIGINT,
    name         VARCHAR,
    formula      VARCHAR,
    update_time  TIMESTAMPTZ,
    raw          JSON,
    run_id       BIGINT,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    is_deleted   BOOLEAN NOT NULL DEFAULT false,
    deleted_at   TIMESTAMPTZ
);

-- A crawler's resumable position per parent; state is the crawler's own JSON. Written in
-- the same transaction as the rows it covers.
CREATE TABLE checkpoints (
    kind       VARCHAR NOT NULL,
    parent_id  BIGINT NOT NULL,
    state      JSON,
    run_id     BIGINT,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (kind, parent_id)
);
