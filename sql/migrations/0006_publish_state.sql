-- What the store has published where (issue 13). A publish target (PostgreSQL) holds the
-- store's tables; these tables say how far each target has got, so that the next publish
-- sends only what changed.
--
-- store_identity: one row, the store's own id, which a target records to refuse data of
-- another store in the same place.
-- publish_state: per target, the publish counter (the target records it too: when the two
-- differ, the next publish is a full one), the highest run every row of which the target
-- holds (row stamps: run_id, closed_run_id), the position in the append-only api_calls,
-- and the store's schema version then.
-- publish_rows: per target, a fingerprint of each row of the tables that carry no run
-- stamp (runs, action_*, report_runs, report_columns: md5 of the row) and of each report
-- run's rows in a report_* table (their count), to find what changed or was deleted.

CREATE TABLE store_identity (
    store_id VARCHAR NOT NULL,
    created  TIMESTAMPTZ NOT NULL
);
INSERT INTO store_identity SELECT CAST(uuid() AS VARCHAR), now();

CREATE TABLE publish_state (
    target        VARCHAR PRIMARY KEY,
    serial        BIGINT NOT NULL,
    run_id        BIGINT NOT NULL,
    api_calls_pos BIGINT NOT NULL,
    store_schema  INTEGER NOT NULL,
    published_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE publish_rows (
    target      VARCHAR NOT NULL,
    table_name  VARCHAR NOT NULL,
    key         VARCHAR NOT NULL,
    fingerprint VARCHAR NOT NULL
);
