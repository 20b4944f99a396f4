// Package action turns a selection (a read-only SQL query over the store) or a CSV file
// into a plan of grouped API calls, and sends it with guard rails and a full audit, then
// follows each item to its outcome. It must not know how crawling works: it reads the
// store's tables and talks to the API only through the datorama client.
//
// The life of a bulk action:
//
//	rows (selection | CSV | command flags)
//	  → Prepare: validate, look the streams up in the store, skip what must not be
//	    touched (deleted, disabled, cooldown, unchanged), group into calls   (no API call)
//	  → Execute: reconcile calls a crashed run left "sending", record the plan, then
//	    send call by call through a stack of Senders (dry-run | audit | faults | API),
//	    holding back while the workspace has too many of our jobs pending, and write
//	    back what each sent call changed (the API's answer, or one GET) through load.Sink
//	  → FollowUp (after the run, and after every crawl): each item's outcome.
//
// It writes its own audit tables (action_runs, action_calls, action_items) with SQL, but
// never the store's current-state tables: those change only through load.Sink, with the
// rows package convert makes of the API's models, exactly as a crawl writes them.
package action
