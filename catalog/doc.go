// Package catalog describes the store to people: it reads sql/catalog.yaml, the one
// source of the description of every table, view and column, pairs it with the objects a
// store actually has, and renders the result as Markdown, JSON or a dbt sources.yml. The
// store (load) and the PostgreSQL publisher write the same descriptions as COMMENT ON.
// It must not know how the store is read or written: objects come in as names and types.
package catalog
