#!/usr/bin/env bash
# Side by side: troupe's GPT (examples/gpt-go.yaml) against the same model in PyTorch
# (bench/gpt_torch.py): the same windows of the Go standard library's source (the two corpus
# digests are printed and must be equal), the same initialization scheme, AdamW recipe and
# schedule, the same number of steps. Alternates the two ROUNDS times and prints each run's
# tokens/s of the training loop and validation loss, then the medians and the ratios.
#
#   bench/gpt_compare.sh [ROUNDS] [STEPS]
#
# STEPS (default: the whole epoch of gpt-go.yaml, 1500 steps) cuts both runs short; the
# schedule still spans the epoch, as train.max_steps does. THREADS=1 pins both to one core
# (GOMAXPROCS=1 against torch --threads 1); THREADS=2 gives troupe both cores and torch its
# best 2-core configuration (1 torch thread, 2 OpenBLAS threads; see shared/bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
steps=${2:-0}
threads=${THREADS:-1}
out=${OUT:-bench/out}
mkdir -p "$out"

go build -o "$out/troupe" ./cmd/troupe
troupe_args=(train examples/gpt-go.yaml --no-checkpoint --progress none --json)
torch_args=(train --threads 1 --openblas-core auto)
if [ "$steps" != 0 ]; then
  troupe_args+=(--max-steps "$steps")
  torch_args+=(--max-steps "$steps")
fi
[ "$threads" = 2 ] && torch_args+=(--blas-threads 2)

: >"$out/gpt-troupe.txt"; : >"$out/gpt-torch.txt"
for i in $(seq "$rounds"); do
  GOMAXPROCS=$threads "$out/troupe" "${troupe_args[@]}" >"$out/gpt-troupe.json"
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); t=r["text"]; print(t["tokens_per_second"], r.get("val_loss", "nan"), t["corpus_digest"], r["peak_rss_bytes"])' \
    "$out/gpt-troupe.json" | tee -a "$out/gpt-troupe.txt" | sed "s/^/round $i troupe: /"
  /usr/bin/python3 bench/gpt_torch.py "${torch_args[@]}" 2>/dev/null | grep '^RESULT' | sed 's/^RESULT //' |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["tokens_per_second"], r["val_loss"], r["corpus_digest"], r["peak_rss_bytes"])' |
    tee -a "$out/gpt-torch.txt" | sed "s/^/round $i torch:  /"
done

python3 - "$out/gpt-troupe.txt" "$out/gpt-torch.txt" "$threads" <<'PY'
import statistics, sys
def rows(path):
    return [l.split() for l in open(path) if l.strip()]
a, b = rows(sys.argv[1]), rows(sys.argv[2])
med = lambda rs, i: statistics.median(float(r[i]) for r in rs)
print("threads %s, %d rounds: tokens/s troupe %.0f, torch %.0f, ratio %.2f" % (sys.argv[3], len(a), med(a, 0), med(b, 0), med(a, 0) / med(b, 0)))
print("validation loss (nats/byte) troupe %.4f, torch %.4f, relative difference %.2f%%" % (med(a, 1), med(b, 1), 100 * abs(med(a, 1) - med(b, 1)) / med(b, 1)))
print("corpus digests equal: %s" % all(r[2] == b[0][2] for r in a + b))
PY
