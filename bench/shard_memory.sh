#!/usr/bin/env bash
# Memory per node as nodes are added, with train.shard_optimizer off and on: for each world
# size R in SIZES (default "1 2 3"), R node processes on 127.0.0.1 train the same 25M-parameter
# GPT for STEPS steps (default 10) and each prints its --json summary; this prints, per R and
# mode, the median over the nodes of the peak RSS and of the optimizer state the node holds.
#
#   bench/shard_memory.sh            # SIZES="1 2 3" STEPS=10 PORT=17946
#
# The first node listens on 127.0.0.1:PORT and waits for R nodes; the others join it on free
# ports. Logs and summaries stay in OUT (default bench/out/shard_memory).
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=${SIZES:-1 2 3}
steps=${STEPS:-10}
port=${PORT:-17946}
out=${OUT:-bench/out/shard_memory}
mkdir -p "$out"

go build -o "$out/troupe" ./cmd/troupe

# Wide and shallow-windowed, so that parameters and optimizer state, not activations, are
# most of a node's memory: 8 blocks of 512 (25.3M parameters), windows of 64 bytes.
job() {
  cat <<EOF
name: shard-memory
seed: 1
data: {dataset: text, tokenizer: byte, validation: 8, test_limit: 8}
model:
  gpt: {n_layer: 8, n_head: 8, n_embd: 512, block_size: 64, vocab: 256, dropout: 0}
optimizer: {name: adamw, lr: 0.0003, beta1: 0.9, beta2: 0.99, weight_decay: 0.1, clip_norm: 1.0}
train: {epochs: 1, batch_size: 12, max_steps: $steps, shard_optimizer: $1}
EOF
}

printf '%-4s %-6s %14s %18s\n' R shard peak_rss_MiB optimizer_MiB
for r in $sizes; do
  for shard in false true; do
    job "$shard" >"$out/job-$shard.yaml"
    pids=()
    for i in $(seq 0 $((r - 1))); do
      if [ "$i" = 0 ]; then
        args=(--bind "127.0.0.1:$port" --job "$out/job-$shard.yaml" --min-nodes "$r")
      else
        args=(--bind 127.0.0.1:0 --join "127.0.0.1:$port")
      fi
      "$out/troupe" node "${args[@]}" --gossip lan --no-checkpoint --json \
        >"$out/r$r-$shard-$i.json" 2>"$out/r$r-$shard-$i.log" &
      pids+=($!)
      [ "$i" = 0 ] && sleep 1 # the seed listens before anyone joins it
    done
    for p in "${pids[@]}"; do
      wait "$p" || { echo "a node of R=$r shard=$shard failed: see $out/r$r-$shard-*.log" >&2; exit 1; }
    done
    python3 - "$r" "$shard" "$out"/r"$r"-"$shard"-*.json <<'EOF'
import json, statistics, sys
r, shard, files = sys.argv[1], sys.argv[2], sys.argv[3:]
runs = [json.load(open(f)) for f in files]
rss = statistics.median(x["peak_rss_bytes"] for x in runs) / 2**20
opt = statistics.median(x["optimizer_state_bytes"] for x in runs) / 2**20
print(f"{r:<4} {shard:<6} {rss:14.1f} {opt:18.1f}")
EOF
  done
done
