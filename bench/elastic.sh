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

python3 - "$raw" <<'PY'
import re, statistics, sys

runs = {}  # (benchmark, unit) -> values, in the order they came
for line in open(sys.argv[1]):
    m = re.match(r"^(BenchmarkElastic\w+?)(?:-\d+)?\s+\d+\s+(.*)$", line)
    if not m:
        continue
    fields = m.group(2).split()
    for value, unit in zip(fields[0::2], fields[1::2]):
        if unit != "ns/op":
            runs.setdefault((m.group(1), unit), []).append(float(value))

if not runs:
    sys.exit("no benchmark results")
print()
print(f"{'benchmark':<32} {'metric':<22} {'runs':>4} {'median':>10} {'min':>10} {'max':>10}")
for (bench, unit), vals in runs.items():
    print(f"{bench:<32} {unit:<22} {len(vals):>4} {statistics.median(vals):>10.4g} {min(vals):>10.4g} {max(vals):>10.4g}")
PY
