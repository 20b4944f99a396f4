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
//	    holding back while the workspace has too many of our jobs pending
//	  → FollowUp (after the next crawl): each item's outcome from the jobs table.
package action
