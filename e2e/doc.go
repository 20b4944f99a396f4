// Package e2e holds the reliability and security tests that cross package lines: a crawl
// under every injected fault compared with the simulator's ground truth, and a hunt for a
// recognisable API token through every output and file the CLI produces. It must not know
// any package's internals: it drives the real client, crawler, store and CLI through their
// exported APIs, against the simulator over real HTTP, so that what it proves is what a
// user gets.
package e2e
