#!/usr/bin/env bash
# The GPU check: one short run on a machine with an NVIDIA GPU and its driver, and no Go
# toolchain. Build the bundle here, carry it there, run it there:
#
#   bench/gpu-check.sh --build DIR     # here: cuda-tagged test binary (and this script) into DIR
#   DIR/gpu-check.sh                   # there: conformance tests, kernel benchmarks, a table
#
# The binary needs only libcuda.so.1 and glibc at run time. The tests hold every GPU kernel to
# its CPU counterpart; the benchmarks measure matrix multiply GFLOP/s and the memory-bound
# kernels' GB/s against the peaks the device reports. Finishes in well under 5 minutes.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ "${1:-}" = "--build" ]; then
  out=${2:?usage: gpu-check.sh --build DIR}
  mkdir -p "$out"
  cd "$here/.."
  go test -c -tags cuda -o "$out/troupe-cuda.test" ./compute/cuda
  cp "$here/gpu-check.sh" "$out/"
  echo "built $out/troupe-cuda.test; run $out/gpu-check.sh on the GPU machine"
  exit 0
fi

bin=${TEST_BINARY:-$here/troupe-cuda.test}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
"$bin" -test.v -test.count 1 -test.timeout 4m -test.bench . -test.benchtime 2s 2>&1 | tee "$log" || status=$?

echo
echo "== summary"
grep -m1 '^GPU:' "$log" || echo "no GPU line: the binary did not start (driver missing?)"
printf '%-48s %s\n' "check" "result"
grep -E '^--- (PASS|FAIL)' "$log" | awk '{printf "%-48s %s %s\n", $3, $2, $4}'
printf '%-48s %s\n' "benchmark" "figure"
grep -E '^Benchmark' "$log" | awk '{for (i = 4; i < NF; i += 2) if ($(i+1) ~ /GFLOP|GB\/s/) printf "%-48s %s %s\n", $1, $i, $(i+1)}'
if grep -q -e '^--- FAIL' -e '^FAIL' "$log"; then
  status=1
fi
exit "$status"
