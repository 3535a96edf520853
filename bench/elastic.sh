#!/usr/bin/env bash
# What a change of world costs on real node processes on loopback: the time from a SIGKILL,
# a join or a SIGTERM to the coordinator's next step, over COUNT runs (default 5); prints
# the raw benchmark lines, then the median of each metric.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

count=${COUNT:-5}
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT

go test -run '^$' -bench Elastic -benchtime 1x -count "$count" ./cmd/troupe | tee "$raw"

python3 bench/median_table.py "$raw" BenchmarkElastic
