#!/usr/bin/env bash
# The one test command (README, .ci/run): vet, the whole suite (fuzz corpora replayed), and a
# race run over the packages that are concurrent by design.
set -euo pipefail
cd "$(dirname "$0")/.."
go vet ./...
go test -count=1 -timeout 15m ./...
go test -count=1 -timeout 15m -race ./clock/ ./ratelimit/ ./serve/ ./extract/
