"""Memory: the engine's reported peaks against independent measurements of the same cell process.

Each method runs as one cell in its own process (`tbench cell`), under `/usr/bin/time -v`, while this
script polls the process's resident size from outside (/proc/PID/status, every 5 ms). The engine
resets the kernel's high-water mark between phases (and the kernel's ru_maxrss with it), so
`/usr/bin/time`'s "Maximum resident set size" covers the time since the last reset: the evaluation
phase and after. Compared:
  engine process peak (max over phases)  vs  the largest resident size seen by polling
  engine evaluation-phase peak           vs  /usr/bin/time's maximum resident set size

Usage: python bench/memory_check.py [--methods ...] [--steps 4] [--out bench/memory.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import environment_line  # noqa: E402

METHODS = ["zero-shot", "few-shot", "prompt", "prefix", "ptuning", "lora", "ia3", "finetune"]


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _python_child(pid: int) -> int | None:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def run_cell(spec: dict, workdir: Path) -> tuple[dict, int, int]:
    spec_file = workdir / "spec.json"
    spec_file.write_text(json.dumps(spec))
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "tuning_bench", "cell", str(spec_file), str(workdir / "cell"),
               "--token-cache", str(workdir / "tokens")]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    polled = {"max": 0}

    def poll():
        child = None
        while process.poll() is None:
            child = child or _python_child(process.pid)
            if child:
                polled["max"] = max(polled["max"], _rss(child))
            time.sleep(0.005)

    watcher = threading.Thread(target=poll)
    watcher.start()
    stdout, stderr = process.communicate()
    watcher.join()
    record = json.loads(stdout.strip().splitlines()[-1])
    time_v = next(int(line.split(":")[1]) * 1024 for line in stderr.splitlines() if "Maximum resident set size" in line)
    return record, polled["max"], time_v


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--out", default=str(Path(__file__).parent / "memory.json"))
    args = parser.parse_args()
    results = {"environment": environment_line(), "methods": {}}
    print(results["environment"], flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        for name in args.methods.split(","):
            spec = {"task": "product-descriptions", "method": name, "seed": 0, "model": "smollm2-135m",
                    "method_config": {}, "steps": args.steps, "batch_size": 4, "eval_examples": 8,
                    "val_examples": 4, "eval_batch_size": 8, "samples": 1}
            workdir = Path(scratch) / name
            workdir.mkdir()
            record, polled, time_v = run_cell(spec, workdir)
            memory = record["measurements"]["memory"]
            process_peak, eval_peak = memory["process_peak_rss_bytes"], memory["eval_peak_rss_bytes"]
            row = {"engine_process_peak": process_peak, "polled_peak": polled,
                   "process_peak_vs_polled": process_peak / polled - 1,
                   "engine_eval_peak": eval_peak, "time_v_max_rss": time_v, "eval_peak_vs_time_v": eval_peak / time_v - 1,
                   "engine_train_peak": memory.get("train_peak_rss_bytes")}
            results["methods"][name] = row
            print(f"{name:9} process peak {process_peak / 2**30:.3f} GiB vs polled {polled / 2**30:.3f} GiB "
                  f"({100 * row['process_peak_vs_polled']:+.1f}%) | eval peak {eval_peak / 2**30:.3f} GiB vs "
                  f"/usr/bin/time {time_v / 2**30:.3f} GiB ({100 * row['eval_peak_vs_time_v']:+.1f}%)", flush=True)
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
