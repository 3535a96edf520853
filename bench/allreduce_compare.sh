#!/usr/bin/env bash
# Side by side: troupe's ring all-reduce (BenchmarkAllReduceProcesses, one OS process per rank)
# against torch.distributed's gloo (allreduce_gloo.py, one process per rank), both on 127.0.0.1,
# float32 sums, worlds 2 and 4, 1/16/64 MiB. The runs alternate so that machine drift hits
# all alike. Both time rounds of K ops after a barrier, a round taking the slowest rank's time,
# with K = max(4, min(32, 64/MiB)) and 5 rounds; troupe's figure is the mean over its rounds,
# gloo's the median. Prints the medians over ROUNDS runs and the ratio to gloo of bus bandwidth
# (above 1: troupe is faster).
#
#   bench/allreduce_compare.sh [ROUNDS] [GLOO_SCRIPT]
#
# ROUNDS defaults to 3; GLOO_SCRIPT to ../shared/bench/allreduce_gloo.py (set-up:
# apt-get install -y python3-torch). PYTHON overrides /usr/bin/python3, OUT the output folder.
# TLS=1 also runs BenchmarkAllReduceProcessesTLS (the streams over mutual TLS; gloo has no
# such mode, so its ratio is to gloo in the clear). BASE_TEST=path runs a test binary of
# another version of cluster/collective (go test -c) in the same alternation, as "base", and
# with TLS=1 its TLS benchmark as "base-tls" (build it with this process_bench_test.go).
# A world of 4 on a 2-core machine oversubscribes the cores, for all alike.
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

variants=(ours)
[[ ${TLS:-0} == 1 ]] && variants+=(tls)
[[ -n ${BASE_TEST:-} ]] && variants+=(base)
[[ -n ${BASE_TEST:-} && ${TLS:-0} == 1 ]] && variants+=(base-tls)
for v in "${variants[@]}" gloo; do : >"$out/allreduce_$v.txt"; done

# run_ours VARIANT WORLD MIB: one benchmark run, appending "world MiB ms busGB/s".
run_ours() {
  local v=$1 w=$2 m=$3 bin=$out/collective.test bench=BenchmarkAllReduceProcesses
  case $v in
    tls) bench=BenchmarkAllReduceProcessesTLS ;;
    base) bin=$BASE_TEST ;;
    base-tls) bin=$BASE_TEST bench=BenchmarkAllReduceProcessesTLS ;;
  esac
  local k=$(( 64 / m )); k=$(( k > 32 ? 32 : k )); k=$(( k < 4 ? 4 : k ))
  # Lines look like: BenchmarkAllReduceProcesses/ranks=2/MiB=1-2  20  1359246 ns/op  0.77 busGB/s
  "$bin" -test.run='^$' -test.benchtime=$((5 * k))x -test.bench="^$bench\$/^ranks=$w\$/^MiB=$m\$" |
    awk -v w="$w" -v m="$m" '$4 == "ns/op" { print w, m, $3 / 1e6, $5 }' |
    tee -a "$out/allreduce_$v.txt" | sed "s/^/round $i $v: world size ms busGB\/s: /"
}

for i in $(seq "$rounds"); do
  for w in "${worlds[@]}"; do
    for m in "${sizes[@]}"; do
      for v in "${variants[@]}"; do
        run_ours "$v" "$w" "$m"
      done
    done
  done
  (IFS=,; "$python" "$gloo" --worlds "${worlds[*]}" --sizes-mib "${sizes[*]}" --rounds 5 --no-memcpy) |
    grep '^RESULT ' | sed 's/^RESULT //' |
    "$python" -c 'import json,sys
for l in sys.stdin:
    r = json.loads(l); print(r["world"], r["size_mib"], r["ms_median"], r["busbw_gbps_median"])' |
    tee -a "$out/allreduce_gloo.txt" | sed "s/^/round $i gloo: world size ms busGB\/s: /"
done

"$python" - "$out" "$rounds" "${variants[@]}" <<'PY'
import statistics, sys
from collections import defaultdict
out, rounds, variants = sys.argv[1], sys.argv[2], sys.argv[3:]
def load(v):
    rows = defaultdict(list)
    for line in open(f"{out}/allreduce_{v}.txt"):
        w, m, ms, bus = line.split()
        rows[(int(w), int(m))].append((float(ms), float(bus)))
    return rows
data = {v: load(v) for v in variants + ["gloo"]}
def med(rows, i):
    return statistics.median(r[i] for r in rows) if rows else float("nan")
print(f"medians over {rounds} runs; busGB/s = bytes*2(n-1)/n / t_op; ratio = busGB/s / gloo's")
head = f"{'world':>5} {'MiB':>4} | {'gloo ms':>8} {'busGB/s':>8}"
for v in variants:
    head += f" | {v + ' ms':>9} {'busGB/s':>8} {'ratio':>6}"
print(head)
for key in sorted(set().union(*(set(d) for d in data.values()))):
    g = data["gloo"][key]
    gbus = med(g, 1)
    line = f"{key[0]:>5} {key[1]:>4} | {med(g, 0):>8.2f} {gbus:>8.3f}"
    for v in variants:
        rows = data[v][key]
        line += f" | {med(rows, 0):>9.2f} {med(rows, 1):>8.3f} {med(rows, 1) / gbus:>6.3f}"
    print(line)
PY
