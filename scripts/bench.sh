#!/bin/sh
# `make bench`: the Go micro-benchmarks of every package, then the
# whole-program comparisons against installed peers (scripts/bench).
set -eu
cd "$(dirname "$0")/.."
go test -run '^$' -bench . -benchtime 2s ./...
go run ./scripts/bench -bin bin
