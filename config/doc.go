// Package config reads schedules.yaml: strict decoding with FILE:LINE errors, validation of
// every value, and the token sources (never the tokens themselves). It must not know how a
// crawl, an action, an export or a report runs — it only describes what to run and when.
//
// Load decodes a file strictly: an unknown key or a value of the wrong type is an error
// naming its line, found by walking the YAML syntax tree against the Go types below (the
// struct tags are the schema, so the two cannot drift apart). Validation then collects one
// named error per mistake (ErrInvalidCron, ErrUnknownSelection, …), each printing as one
// line "FILE:LINE: KEY: MESSAGE".
//
// Relative paths in the file (store.data_dir, selections_dir, token files) are relative to
// the directory holding the file, so a daemon started from any working directory reads the
// same store.
//
// sql_timeout (default 60s, at most 24h) is the time limit of each statement a person
// wrote, i.e. a selection's SQL, in commands and under serve: Config.SQLTimeoutDuration.
package config
