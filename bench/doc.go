// Package bench measures drextract against the targets of issue 15 in one run and prints
// the table the README quotes: API calls per crawl against the minimum, job rows stored
// per second against a bare DuckDB load of the same rows, the Parquet export against a
// bare COPY, and the peak memory of each. It is all test code:
//
//	go test ./bench -run '^$' -bench Table -benchtime 1x -timeout 60m
//
// Each measured crawl, load and export runs in a child process (the test binary run
// again), so its peak resident memory is its own; the simulator stays in the parent.
// Seeds and sizes come from flags or environment variables (see bench_test.go), so a
// check from outside can measure the same figures on its own accounts. It must not be a
// timed test: nothing here fails on a slow machine, it reports.
package bench
