// Package sql holds drextract's SQL files, embedded in the binary: the store's versioned
// migrations and the built-in selections. It runs nothing itself.
//
// Importers name it drsql to keep database/sql readable.
package sql

import "embed"

// Migrations are the store's schema migrations, migrations/NNNN_name.sql, applied in
// version order. They are only ever additive.
//
//go:embed migrations
var Migrations embed.FS

// Selections are the built-in selections, selections/NAME.sql.
//
//go:embed selections
var Selections embed.FS
