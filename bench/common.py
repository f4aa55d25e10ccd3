"""Shared set-up for the benchmarks: the real model, the default task, batches, the machine's matmul rate."""

from __future__ import annotations

import platform
import statistics
import time
from importlib import metadata

import torch


def threads() -> int:
    import os

    return len(os.sched_getaffinity(0))


def matmul_gflops(sizes=(2048, 3072), repeats: int = 5, dtype: torch.dtype = torch.float32) -> float:
    """Best matmul rate in ``dtype`` over square sizes (2 n^3 FLOP per product), as the machine's ceiling
    for that precision."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        torch.mm(a, b)
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best


def environment_line() -> str:
    from tuning_bench.engine.measure import cpu_name

    versions = ", ".join(f"{p} {metadata.version(p)}" for p in ("torch", "transformers", "peft"))
    return f"{cpu_name()}, {threads()} threads, Python {platform.python_version()}, {versions}"


def load(task_name: str = "product-descriptions", model_name: str = "smollm2-135m"):
    """The catalog, task, a freshly loaded model and the task's encoded splits (engine formatting)."""
    from tuning_bench.engine.data import encode_task
    from tuning_bench.host.plugins import load_catalog
    from tuning_bench.engine.prompting import resolve_format

    catalog = load_catalog()
    task = catalog.tasks.get(task_name)
    source = catalog.models.get(model_name)
    source.prepare()
    loaded = source.load(task_kind=task.kind, labels=task.labels)
    fmt = resolve_format(loaded.tokenizer)
    encoded = encode_task(task, loaded.tokenizer, loaded.kind, fmt, [], 512)
    return catalog, task, source, loaded, encoded


def median(values) -> float:
    return statistics.median(values)
