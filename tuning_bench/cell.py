"""One cell of a comparison (task x method x seed): load, adapt, train, measure, evaluate, save.

A cell is described by a ``CellSpec`` (plain data, serializable) and produces one result record
(plain data). Data flows one way: spec -> model + method -> trainer -> measurements -> record.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuning_bench.kinds import ModelKind, TaskKind

Emit = Callable[[dict[str, Any]], None]


@dataclass
class CellSpec:
    """Everything that decides a cell's result. Two equal specs on equal data give the same result."""

    task: str
    method: str
    seed: int
    model: str
    method_config: dict[str, Any]
    steps: int
    batch_size: int = 8
    eval_examples: int = 0  # 0: the whole test split
    val_examples: int = 12
    val_every: int = 0  # 0: validate only after the last step
    eval_batch_size: int = 32
    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 0  # 0: one per available core
    max_length: int = 512
    prompt_format: str = "auto"
    keep: str = "adapters"
    trust_remote_code: bool = False
    samples: int = 5
    latency: bool = True
    max_new_tokens: int = 0  # 0: the task's own limit
    guard_prompts: int = 2
    plugin_modules: list[str] = field(default_factory=list)
    trial: str = ""  # e.g. "learning_rate=0.003" for a sweep trial

    @property
    def label(self) -> str:
        trial = f" [{self.trial}]" if self.trial else ""
        return f"{Path(self.task).stem if self.task.endswith(('.yaml', '.yml')) else self.task}/{self.method}/seed {self.seed}{trial}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellSpec:
        return cls(**data)


class CellFailed(Exception):
    """A cell failed for a reason that belongs in the results (not a bug in tbench)."""


def _set_determinism(seed: int) -> None:
    import numpy
    import torch

    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)


def _count_parameters(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def _directory_bytes(path: Path) -> dict[str, int]:
    return {str(p.relative_to(path)): p.stat().st_size for p in sorted(path.rglob("*")) if p.is_file()}


def _save_state(adapted: Any, method: Any, spec: CellSpec, state_dir: Path, prompt_record: dict[str, Any]) -> dict[str, Any]:
    """Save what the method trained, measure the files, keep or delete them as asked."""
    import json

    from peft import PeftModel

    if state_dir.exists():
        shutil.rmtree(state_dir)
    state_dir.mkdir(parents=True)
    if isinstance(adapted, PeftModel):
        adapted.save_pretrained(state_dir)  # PEFT's own format: PeftModel.from_pretrained loads it
        kind = "peft-adapter"
    elif method.trains:
        adapted.save_pretrained(state_dir)  # safetensors of every weight
        kind = "full-model"
    else:
        kind = "prompt-only"
    (state_dir / "tbench-prompt.json").write_text(json.dumps(prompt_record, indent=1, ensure_ascii=False))
    files = _directory_bytes(state_dir)
    weights = sum(size for name, size in files.items() if name.endswith(".safetensors"))
    keep = spec.keep == "all" or (spec.keep == "adapters" and kind != "full-model")
    if not keep:
        for name in list(files):
            if name.endswith(".safetensors"):
                (state_dir / name).unlink()
    return {"kind": kind, "files": files, "saved_bytes": weights, "kept": keep, "path": "state"}  # relative to the cell's folder


def run_cell(spec: CellSpec, cell_dir: Path, token_cache: Path | None, emit: Emit | None = None) -> dict[str, Any]:
    """Run one cell and return its result record. Never raises for a failure of the cell itself."""
    emit = emit or (lambda event: None)
    record: dict[str, Any] = {
        "task": spec.task, "method": spec.method, "seed": spec.seed, "trial": spec.trial,
        "status": "failed", "error": None, "config": spec.to_dict(),
    }
    started = time.perf_counter()
    try:
        record.update(_run(spec, cell_dir, token_cache, emit))
    except CellFailed as exc:
        record["error"] = str(exc)
    except MemoryError:
        record["error"] = "out of memory (host RAM); try a smaller --batch-size or --eval-batch-size"
    except Exception as exc:  # a cell's crash is recorded; the run goes on with the other cells
        if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch here
            first = str(exc).splitlines()[0] if str(exc) else ""
            record["error"] = f"CUDA out of memory ({first}); try a smaller --batch-size"
        else:
            record["error"] = f"{type(exc).__name__}: {exc}"
        cell_dir.mkdir(parents=True, exist_ok=True)
        (cell_dir / "error.log").write_text(traceback.format_exc())
    record["cell_seconds"] = time.perf_counter() - started
    return record


def _run(spec: CellSpec, cell_dir: Path, token_cache: Path | None, emit: Emit) -> dict[str, Any]:
    import torch

    from tuning_bench import measure
    from tuning_bench.data import cache_key, encode_task, load_or_encode
    from tuning_bench.evaluation import (decode, evaluate_classification_encoder, evaluate_classification_lm,
                                         evaluate_generation)
    from tuning_bench.generation import (GenerationSettings, eos_ids_for, generate_batch, generation_guard,
                                         pick_guard_prompts)
    from tuning_bench.lookup import resolve_model, resolve_task
    from tuning_bench.options import resolve_options
    from tuning_bench.plugins import load_catalog
    from tuning_bench.prompting import resolve_format
    from tuning_bench.trainer import NonFiniteLoss, TrainConfig, make_feeder, mean_loss, train

    device = torch.device(spec.device)
    if device.type == "cpu":
        torch.set_num_threads(spec.threads or len(os.sched_getaffinity(0)))
    autocast = torch.bfloat16 if spec.precision == "bf16" else None

    catalog = load_catalog(spec.plugin_modules)
    task = resolve_task(catalog, spec.task)
    method = catalog.methods.get(spec.method)
    source = resolve_model(catalog, spec.model, spec.trust_remote_code)
    config = resolve_options(method.name, method.options, spec.method_config, where="cell config")
    reason = method.not_applicable(task, source.kind, config)
    if reason:
        return {"status": "not_applicable", "error": reason}

    emit({"event": "phase", "phase": "loading model"})
    _set_determinism(spec.seed)
    load_start = time.perf_counter()
    loaded = source.load(task_kind=task.kind, labels=task.labels, trust_remote_code=spec.trust_remote_code)
    load_seconds = time.perf_counter() - load_start
    tokenizer = loaded.tokenizer
    causal = loaded.kind is ModelKind.CAUSAL_LM

    # The same input formatting for every method; only few-shot adds worked examples.
    shots_examples = method.context_examples(task, config, spec.seed)
    shots = [(task.render_input(ex), task.render_target(ex)) for ex in shots_examples]
    fmt = resolve_format(tokenizer, spec.prompt_format) if causal else None
    tokenize_start = time.perf_counter()
    key = cache_key(loaded.fingerprint, task.fingerprint(), fmt and fmt.style, shots, spec.max_length, loaded.kind.value)
    encoded = load_or_encode(token_cache, key, lambda: encode_task(task, tokenizer, loaded.kind, fmt, shots, spec.max_length))
    tokenize_seconds = time.perf_counter() - tokenize_start
    warnings: list[str] = []
    if encoded.truncated:
        warnings.append(f"{encoded.truncated} examples were longer than max_length={spec.max_length} tokens and were "
                        "truncated (the prompt keeps its end); raise --max-length or shorten the inputs")
        emit({"event": "warning", "message": warnings[-1]})
    test_examples = task.splits()["test"]
    if spec.eval_examples:
        test_examples = test_examples[: spec.eval_examples]
    test_encoded = encoded.splits["test"][: len(test_examples)]
    val_encoded = encoded.splits["validation"][: spec.val_examples]
    train_encoded = encoded.splits["train"]
    if not train_encoded and method.trains:
        raise CellFailed(f"task {task.name} has no training examples")
    if not test_encoded:
        raise CellFailed(f"task {task.name} has no test examples")

    _set_determinism(spec.seed)
    adapted = method.adapt(loaded, task, config)
    adapted.to(device)
    trainable, total = _count_parameters(adapted)
    probe = measure.MemoryProbe(device)
    probe.baseline()
    feeder = make_feeder(adapted, loaded.kind, tokenizer.pad_token_id, device, autocast)

    log = None
    if method.trains and spec.steps > 0:
        emit({"event": "phase", "phase": "training", "total": spec.steps})
        probe.start("train")
        train_config = TrainConfig(steps=spec.steps, batch_size=spec.batch_size, learning_rate=config["learning_rate"],
                                   seed=spec.seed, val_every=spec.val_every)
        try:
            log = train(adapted, train_encoded, val_encoded, feeder, train_config,
                        on_step=lambda step, loss: emit({"event": "step", "step": step, "total": spec.steps, "loss": loss}))
        except NonFiniteLoss as exc:
            raise CellFailed(str(exc)) from None
        probe.stop("train")

    emit({"event": "phase", "phase": "evaluating"})
    probe.start("eval")
    eval_start = time.perf_counter()
    adapted.eval()
    if log is not None and log.val_loss and log.val_loss[-1][0] == spec.steps:
        final_val = log.val_loss[-1][1]  # measured right after the last step; the model has not changed since
    else:
        final_val = mean_loss(adapted, val_encoded, feeder, spec.batch_size) if val_encoded else None
    quality: dict[str, Any]
    guard = None
    latency = None
    if causal:
        settings = GenerationSettings(
            max_new_tokens=spec.max_new_tokens or task.max_new_tokens, eos_ids=eos_ids_for(tokenizer, loaded.model, fmt.answer_end),
            pad_id=tokenizer.pad_token_id, batch_size=spec.eval_batch_size, padded_batches=method.padded_generation,
            device=device, autocast_dtype=autocast)
        report = generation_guard(adapted, pick_guard_prompts([e.prompt_ids for e in test_encoded], spec.guard_prompts),
                                  settings)
        guard = report.as_record()
        if not report.passed:
            raise CellFailed(f"generation guard failed: {report.detail}")
        if task.kind is TaskKind.GENERATION:
            quality = evaluate_generation(adapted, tokenizer, task, test_examples, test_encoded, settings)
        else:
            quality = evaluate_classification_lm(adapted, task, test_examples, test_encoded, encoded.label_ids,
                                                 feeder, spec.eval_batch_size)
        if spec.latency:
            single_start = time.perf_counter()
            first_answer = generate_batch(adapted, [test_encoded[0].prompt_ids], settings)[0]
            if device.type == "cuda":
                torch.cuda.synchronize()
            latency = {"seconds": time.perf_counter() - single_start, "new_tokens": len(first_answer),
                       "text": decode(tokenizer, first_answer)}
    else:
        quality = evaluate_classification_encoder(adapted, task, test_examples, test_encoded, feeder, spec.eval_batch_size)
        if spec.latency:
            single_start = time.perf_counter()
            evaluate_classification_encoder(adapted, task, test_examples[:1], test_encoded[:1], feeder, 1)
            latency = {"seconds": time.perf_counter() - single_start, "new_tokens": 0, "text": None}
    eval_seconds = time.perf_counter() - eval_start
    probe.stop("eval")

    prompt_record = {
        "format": fmt.style if fmt else "encoder-input",
        "instruction": task.instruction if causal else "",
        "shots": [{"input": i, "target": t} for i, t in shots],
        "example_input": task.render_input(test_examples[0]),
        "example_prompt": tokenizer.decode(test_encoded[0].prompt_ids, skip_special_tokens=False),
    }
    state = _save_state(adapted, method, spec, cell_dir / "state", prompt_record)
    memory = probe.finish()

    measurements: dict[str, Any] = {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_percent": 100.0 * trainable / total if total else 0.0,
        "load_seconds": load_seconds,
        "tokenize_seconds": tokenize_seconds,
        "token_cache_hit": encoded.from_cache,
        "truncated_examples": encoded.truncated,
        "memory": memory,
        "eval_seconds": eval_seconds,
        "eval_examples": len(test_examples),
        "final_val_loss": final_val,
        "val_perplexity": math.exp(min(final_val, 50.0)) if causal and final_val is not None else None,
        "saved_bytes": state["saved_bytes"],
        "latency_seconds": latency["seconds"] if latency else None,  # None: not measured (--quick)
        "latency_new_tokens": latency["new_tokens"] if latency else None,
    }
    if "generation_seconds" in quality:
        measurements["generation_seconds"] = quality["generation_seconds"]
        measurements["generation_seconds_per_example"] = quality["generation_seconds"] / len(test_examples)
        measurements["generated_tokens"] = quality["generated_tokens"]
    else:
        measurements["classify_seconds"] = quality["classify_seconds"]
    curves: dict[str, Any] = {"train_loss": [], "val_loss": [], "learning_rate": []}
    if log is not None:
        train_seconds = sum(log.step_seconds)
        measurements.update({
            "train_seconds": train_seconds,
            "train_phase_seconds": log.wall_seconds,
            "validation_seconds": log.val_seconds,
            "median_step_seconds": statistics.median(log.step_seconds),
            "tokens_per_second": log.tokens / train_seconds if train_seconds else None,
            "train_tokens": log.tokens,
            "train_target_tokens": log.target_tokens,
            "final_train_loss": log.train_loss[-1],
            "steps": len(log.train_loss),
        })
        curves = {"train_loss": log.train_loss, "val_loss": [list(p) for p in log.val_loss],
                  "learning_rate": log.learning_rates}
    else:
        measurements.update({"train_seconds": 0.0, "steps": 0, "final_train_loss": None, "tokens_per_second": None,
                             "median_step_seconds": None})
    samples = [
        {"input": task.render_input(ex), "reference": ref, "prediction": pred}
        for ex, ref, pred in list(zip(test_examples, quality["references"], quality["predictions"]))[: spec.samples]
    ]
    return {
        "status": "ok",
        "error": None,
        "warnings": warnings,
        "method_config": config,
        "quality": quality["scores"],
        "headline": {"metric": task.headline, "value": quality["scores"].get(task.headline),
                     "higher_is_better": task.higher_is_better},
        "measurements": measurements,
        "curves": curves,
        "samples": samples,
        "predictions": quality["predictions"],
        "prompt": prompt_record,
        "guard": guard,
        "state": state,
        "classification_by": quality.get("method"),
        "environment": measure.environment(device),
        "task_info": task.summary() | {"fingerprint": task.fingerprint()},
        "model_info": {"name": loaded.name, "kind": loaded.kind.value, "fingerprint": loaded.fingerprint},
    }
