"""Reads a schema drextract published, as Superset does: psycopg2 connects, SQLAlchemy's
inspector lists the tables, views and columns with their comments, and a query runs.

Usage: PGHOST=… PGPORT=… PGUSER=… PGPASSWORD=… PGDATABASE=… /usr/bin/python3 check.py SCHEMA
Prints one JSON object on standard output (postgres/clients_test.go reads it).
"""
import json
import sys

import psycopg2
import sqlalchemy

schema = sys.argv[1]

# psycopg2 alone, taking every connection setting from the PG* environment variables.
with psycopg2.connect("") as conn:
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT status, count(*) FROM {schema}.jobs WHERE NOT is_deleted GROUP BY status ORDER BY status"
        )
        jobs_by_status = {status: n for status, n in cur.fetchall()}
        cur.execute(f"SELECT count(*), sum(rows_retrieved) FROM {schema}.jobs_enriched")
        enriched, rows_retrieved = cur.fetchone()

# SQLAlchemy on psycopg2, the way Superset lists tables and columns.
# An empty URL: libpq takes the settings from the PG* environment variables.
engine = sqlalchemy.create_engine("postgresql+psycopg2://")
insp = sqlalchemy.inspect(engine)
tables = sorted(insp.get_table_names(schema=schema))
views = sorted(insp.get_view_names(schema=schema))
jobs_columns = [
    {"name": c["name"], "type": str(c["type"]), "comment": c.get("comment")}
    for c in insp.get_columns("jobs", schema=schema)
]
jobs_comment = insp.get_table_comment("jobs", schema=schema).get("text")
pk = insp.get_pk_constraint("jobs", schema=schema).get("constrained_columns")
with engine.connect() as c:
    streams = c.execute(
        sqlalchemy.text(f"SELECT count(*) FROM {schema}.stream_health WHERE enabled")
    ).scalar()

print(json.dumps({
    "jobs_by_status": jobs_by_status,
    "jobs_enriched": enriched,
    "rows_retrieved": int(rows_retrieved or 0),
    "tables": tables,
    "views": views,
    "jobs_columns": jobs_columns,
    "jobs_comment": jobs_comment,
    "jobs_pk": pk,
    "enabled_streams": streams,
}))
