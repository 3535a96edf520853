#!/usr/bin/env python3
"""Median, min and max of every custom metric in `go test -bench` output.

    python3 bench/median_table.py RAW_OUTPUT [BENCHMARK_PREFIX]

Reads the benchmark lines of RAW_OUTPUT (those whose name starts with BENCHMARK_PREFIX,
default "Benchmark"), skips ns/op, and prints one row per benchmark and metric, in the order
they first came. Exits non-zero when no line matched.
"""
import re
import statistics
import sys


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    prefix = sys.argv[2] if len(sys.argv) == 3 else "Benchmark"
    line_re = re.compile(r"^(" + re.escape(prefix) + r"\w*?)(?:-\d+)?\s+\d+\s+(.*)$")
    runs = {}  # (benchmark, unit) -> values, in the order they came
    with open(sys.argv[1]) as raw:
        for line in raw:
            m = line_re.match(line)
            if not m:
                continue
            fields = m.group(2).split()
            for value, unit in zip(fields[0::2], fields[1::2]):
                if unit != "ns/op":
                    runs.setdefault((m.group(1), unit), []).append(float(value))
    if not runs:
        sys.exit("no benchmark results")
    print()
    print(f"{'benchmark':<32} {'metric':<24} {'runs':>4} {'median':>10} {'min':>10} {'max':>10}")
    for (bench, unit), vals in runs.items():
        print(f"{bench:<32} {unit:<24} {len(vals):>4} {statistics.median(vals):>10.4g} {min(vals):>10.4g} {max(vals):>10.4g}")


if __name__ == "__main__":
    main()
