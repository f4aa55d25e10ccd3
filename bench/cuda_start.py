"""What a fresh cell process pays on a CUDA GPU before its work starts, step by step.

Each step is timed in a new interpreter (as a cell process is new): importing torch (a cell gets it from
the fork server), CUDA initialisation, the first bf16 matrix product (cuBLAS start-up), loading the
model the default run uses onto the GPU, and its first forward pass. Run twice: the second run shows
what the operating system's file cache saves.

Usage: python bench/cuda_start.py [--model smollm2-135m] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

PROBE = r"""
import json, time
t0 = time.perf_counter()
import torch
t1 = time.perf_counter()
torch.cuda.init(); torch.zeros(1, device="cuda"); torch.cuda.synchronize()
t2 = time.perf_counter()
a = torch.randn(1024, 1024, device="cuda", dtype=torch.bfloat16); (a @ a).sum().item()
t3 = time.perf_counter()
from tuning_bench.host.plugins import load_catalog
from tuning_bench.host.lookup import resolve_model, resolve_task
catalog = load_catalog()
task = resolve_task(catalog, "product-descriptions")
t4 = time.perf_counter()
loaded = resolve_model(catalog, MODEL).load(task_kind=task.kind, labels=task.labels, trust_remote_code=False)
t5 = time.perf_counter()
loaded.model.to("cuda"); torch.cuda.synchronize()
t6 = time.perf_counter()
with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
    loaded.model(torch.ones(1, 16, dtype=torch.long, device="cuda")).logits.sum().item()
t7 = time.perf_counter()
print(json.dumps({"import torch": t1 - t0, "cuda init": t2 - t1, "first bf16 matmul (cuBLAS)": t3 - t2,
                  "tbench catalog": t4 - t3, "model load (host)": t5 - t4, "model to GPU": t6 - t5,
                  "first forward": t7 - t6}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    for run in range(args.repeats):
        done = subprocess.run([sys.executable, "-c", f"MODEL = {args.model!r}\n" + PROBE], capture_output=True, text=True)
        if done.returncode:
            print(done.stderr[-2000:])
            raise SystemExit(done.returncode)
        steps = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"run {run + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in steps.items()) + f"; total {sum(steps.values()):.2f} s")


if __name__ == "__main__":
    main()
