// Package convert turns the API's models (package datorama) into the store's rows
// (package load): typed columns from the model, the record exactly as the API sent it in
// Raw. It is the one place that knows both shapes, so the crawler and the action engine,
// which both store what the API answered, write the same rows for the same record. It
// must not know HTTP, SQL, crawling or actions: only the two sets of types.
package convert
