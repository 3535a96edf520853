#!/usr/bin/env bash
# What churn costs a whole job on real node processes on loopback: goodput of a fleet of three
# under spot preemptions against the same job without them, a whole fleet killed and resumed
# from its checkpoints, and what a snapshot stalls training. Runs each COUNT times
# (default 3); prints the raw benchmark lines, then the median of each metric. A failed run
# leaves the others' medians printed and the exit status non-zero.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

count=${COUNT:-3}
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT

status=0
go test -run '^$' -bench 'FleetChurn|WholeFleetResume|CheckpointStall' -benchtime 1x -count "$count" ./cmd/troupe | tee "$raw" || status=$?
if grep -q -e '--- FAIL:' -e '^FAIL' "$raw"; then
	status=1
fi

python3 bench/median_table.py "$raw"
exit "$status"
