// Package datorama is the typed HTTP client for the Datorama (Marketing Cloud
// Intelligence) Platform and Query APIs: every request passes one rate Gate, every
// response's rate headers are parsed, and models keep their raw JSON. It must not know
// about DuckDB, cron, cobra or the store; pacing policy belongs to the Gate
// (package ratelimit), crawl policy to package extract.
//
// The facts the client relies on, with their evidence, are in ../shared/datorama-api.md
// (its endpoint index is copied in testdata/endpoint_index.md);
// every service method's doc comment ends with the endpoint it calls, and a test checks
// those lines against that file's endpoint index.
//
// A Client is safe for concurrent use. Methods retry transient failures themselves (see
// shouldRetry); callers must not add their own retry loops around them.
package datorama
