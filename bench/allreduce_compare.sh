#!/usr/bin/env bash
# Side by side: troupe's ring all-reduce (BenchmarkAllReduceProcesses, one OS process per rank)
# against torch.distributed's gloo (allreduce_gloo.py, one process per rank), both on 127.0.0.1,
# float32 sums, worlds 2 and 4, 1/16/64 MiB. The two run alternately so that machine drift hits
# both alike. Both time rounds of K ops after a barrier, a round taking the slowest rank's time,
# with K = max(4, min(32, 64/MiB)) and 5 rounds; troupe's figure is the mean over its rounds,
# gloo's the median. Prints the medians over ROUNDS runs and the ratio ours/gloo of bus bandwidth
# (above 1: troupe is faster).
#
#   bench/allreduce_compare.sh [ROUNDS] [GLOO_SCRIPT]
#
# ROUNDS defaults to 3; GLOO_SCRIPT to ../shared/bench/allreduce_gloo.py (set-up:
# apt-get install -y python3-torch). PYTHON overrides /usr/bin/python3, OUT the output folder.
# A world of 4 on a 2-core machine oversubscribes the cores, for both alike.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
gloo=${2:-../shared/bench/allreduce_gloo.py}
python=${PYTHON:-/usr/bin/python3}
out=${OUT:-bench/out}
worlds=(2 4)
sizes=(1 16 64)
mkdir -p "$out"

go test -c -o "$out/collective.test" ./cluster/collective

: >"$out/allreduce_ours.txt"; : >"$out/allreduce_gloo.txt"
for i in $(seq "$rounds"); do
  for w in "${worlds[@]}"; do
    for m in "${sizes[@]}"; do
      k=$(( 64 / m )); k=$(( k > 32 ? 32 : k )); k=$(( k < 4 ? 4 : k ))
      # Lines look like: BenchmarkAllReduceProcesses/ranks=2/MiB=1-2  20  1359246 ns/op  0.77 busGB/s
      "$out/collective.test" -test.run='^$' -test.benchtime=$((5 * k))x \
        -test.bench="^BenchmarkAllReduceProcesses\$/^ranks=$w\$/^MiB=$m\$" |
        awk -v w="$w" -v m="$m" '$4 == "ns/op" { print w, m, $3 / 1e6, $5 }' |
        tee -a "$out/allreduce_ours.txt" | sed "s/^/round $i troupe: world size ms busGB\/s: /"
    done
  done
  (IFS=,; "$python" "$gloo" --worlds "${worlds[*]}" --sizes-mib "${sizes[*]}" --rounds 5 --no-memcpy) |
    grep '^RESULT ' | sed 's/^RESULT //' |
    "$python" -c 'import json,sys
for l in sys.stdin:
    r = json.loads(l); print(r["world"], r["size_mib"], r["ms_median"], r["busbw_gbps_median"])' |
    tee -a "$out/allreduce_gloo.txt" | sed "s/^/round $i gloo:   world size ms busGB\/s: /"
done

"$python" - "$out/allreduce_ours.txt" "$out/allreduce_gloo.txt" "$rounds" <<'PY'
import statistics, sys
from collections import defaultdict
def load(path):
    rows = defaultdict(list)
    for line in open(path):
        w, m, ms, bus = line.split()
        rows[(int(w), int(m))].append((float(ms), float(bus)))
    return rows
ours, gloo = load(sys.argv[1]), load(sys.argv[2])
print(f"medians over {sys.argv[3]} runs; busGB/s = bytes*2(n-1)/n / t_op")
print(f"{'world':>5} {'MiB':>4} | {'ours ms':>9} {'busGB/s':>8} | {'gloo ms':>9} {'busGB/s':>8} | {'ours/gloo':>9}")
for key in sorted(set(ours) | set(gloo)):
    def med(rows, i):
        return statistics.median(r[i] for r in rows) if rows else float("nan")
    oms, obus, gms, gbus = med(ours[key], 0), med(ours[key], 1), med(gloo[key], 0), med(gloo[key], 1)
    print(f"{key[0]:>5} {key[1]:>4} | {oms:>9.2f} {obus:>8.3f} | {gms:>9.2f} {gbus:>8.3f} | {obus / gbus:>9.3f}")
PY
