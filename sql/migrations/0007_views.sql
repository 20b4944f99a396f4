-- The analyst views (jobs_enriched, stream_health, freshness) are written once, in
-- sql/views/NAME.sql, in SQL that DuckDB and PostgreSQL both run. The store (re)creates
-- them when it opens and their source changed since; this table remembers which source
-- each view was made from.

CREATE TABLE schema_views (
    name       VARCHAR PRIMARY KEY,
    source_md5 VARCHAR NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL
);
