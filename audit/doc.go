// Package audit makes every API attempt of every drextract command an api_calls row: its
// Recorder is the datorama.Observer that appends each attempt, as it completes, to the
// store's API-call journal (load.Journal), tagged with the run it belongs to and the
// bulk-action call it carried out, and Sink makes those records durable before the data a
// crawl read from them is committed. The store folds the journal into api_calls
// (load.Store.FoldJournal). It must not know SQL, how a crawl or an action works, or
// flags and output: the run layer and cli wire it into every client they build.
package audit
