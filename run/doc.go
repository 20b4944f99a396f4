// Package run holds the run sequences of drextract, the same for a command and for a
// schedule of the daemon: a crawl, then the follow-up of earlier actions and the
// publish; an action, then the follow-up and the publish; an export, then the publish; a
// report, then the publish. Every run that writes the store is recorded in its runs
// table, and whatever a run adds after its work (publishing, notifications) is added
// here, once. It must not know flags, output formats or cron: cli/ parses and prints,
// serve/ decides when, and this package only runs.
//
// The caller owns the store's lifetime (a command opens it for one run, the daemon for
// each of its runs) and the data directory's lock; a Runner holds what every run shares:
// the configuration, the clock, the tokens' rate budget and how clients are built.
package run
