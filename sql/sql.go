// Package sql holds drextract's SQL files, embedded in the binary: the store's versioned
// migrations, the analyst views, the description of every table, view and column, and
// the built-in selections. It runs nothing itself.
//
// Importers name it drsql to keep database/sql readable.
package sql

import "embed"

// Entities are the store's current-state tables, in the order a crawl reads them: also
// the entities a crawl, a schedule or a flag may name. The one list of them; the store's
// migrations create these tables.
var Entities = []string{
	"workspaces", "streams", "jobs", "mappings", "dimensions", "measurements",
	"harmonized_dimensions", "patterns", "calculated_measurements",
}

// Migrations are the store's schema migrations, migrations/NNNN_name.sql, applied in
// version order. They are only ever additive.
//
//go:embed migrations
var Migrations embed.FS

// Selections are the built-in selections, selections/NAME.sql.
//
//go:embed selections
var Selections embed.FS

// Views are the analyst views, views/NAME.sql: the SELECT of view NAME, in SQL that
// DuckDB and PostgreSQL both run.
//
//go:embed views
var Views embed.FS

// Catalog is catalog.yaml, the description of every table, view and column of the store:
// the source of COMMENT ON in DuckDB and PostgreSQL, `drextract catalog` and
// `drextract dbt-sources`.
//
//go:embed catalog.yaml
var Catalog []byte
