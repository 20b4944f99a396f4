// Package postgres publishes the store into a PostgreSQL schema, for BI tools and for
// several drextract instances to meet: the same tables and columns as the store, typed
// (BIGINT ids, TIMESTAMPTZ, DATE, BOOLEAN, raw as jsonb, the store's primary keys), the
// analyst views and the descriptions of sql/catalog.yaml as COMMENT ON. It must not know
// about HTTP or the Datorama API, nor how the store is written: the store (load) says
// what changed, as a load.ChangeSet, and this package applies it.
//
// A publish is one PostgreSQL transaction, so a BI query sees whole runs or nothing:
// schema changes (additive: new tables, new columns), then for each table the deletions
// and the changed rows, sent with the COPY protocol (into a staging table merged with one
// statement per table when rows replace others), the views and comments when they
// changed, and the schema's drextract_publish row (layout version, the store's schema
// version and identity, the publish counter). Only after PostgreSQL committed does the
// store record how far the target has got (load.ChangeSet.Commit); a failure anywhere
// leaves PostgreSQL as it was and the store's crawl untouched, and the next publish
// catches up. When the store and the schema disagree on the publish counter the next
// publish is a full one.
//
// The connection string (DSN) is a secret: it is never printed, logged or stored, and
// errors are scrubbed of it and of its password. Targets are named by a fingerprint of
// host, port, database and user.
package postgres
