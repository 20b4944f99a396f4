#!/usr/bin/env bash
# The one test command (README, .ci/run): what the tests need beyond Go (scripts/deps.sh),
# vet, the whole suite (fuzz corpora replayed), and a race run over every package, short
# (fewer seeds and sizes; speed and memory targets are benchmarks, never tests).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null || { echo "Go is required (https://go.dev/dl)" >&2; exit 1; }
. ./scripts/deps.sh
export CGO_ENABLED=1
go vet ./...
go test -count=1 -timeout 15m ./...
go test -count=1 -timeout 15m -race -short ./...
