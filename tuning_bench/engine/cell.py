"""One cell of a comparison (task x method x seed): load, adapt, train, measure, evaluate, save.

A cell is described by a ``CellSpec`` (plain data, serializable) and produces one result record
(plain data). Data flows one way: spec -> model + method -> trainer -> measurements -> record.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuning_bench.engine.allocator import reuse_freed_memory
from tuning_bench.api.kinds import ModelKind
from tuning_bench.run.records import CellRecord, Curves, Headline, Measurements, Memory, PerExample, Sample, StateInfo
from tuning_bench.run.settings import cell_default

Emit = Callable[[dict[str, Any]], None]


@dataclass
class CellSpec:
    """Everything that decides a cell's result. Two equal specs on equal data give the same result."""

    task: str
    method: str
    seed: int
    # Run settings that are per cell take their defaults from run.settings.SETTINGS (defined once there).
    model: str
    method_config: dict[str, Any]
    steps: int
    batch_size: int = cell_default("batch_size")
    eval_examples: int = cell_default("eval_examples")  # 0: the whole test split
    val_examples: int = cell_default("val_examples")
    val_every: int = cell_default("val_every")  # 0: validate only after the last step
    patience: int = cell_default("patience")  # early stopping after this many validations without improvement; 0: off
    min_delta: float = cell_default("min_delta")  # the least drop in validation loss that counts as an improvement
    eval_batch_size: int = cell_default("eval_batch_size")
    device: str = cell_default("device")
    precision: str = cell_default("precision")
    threads: int = cell_default("threads")  # 0: one per available core
    max_length: int = cell_default("max_length")
    prompt_format: str = cell_default("prompt_format")
    keep: str = cell_default("keep")
    trust_remote_code: bool = cell_default("trust_remote_code")
    base_quant: str | None = cell_default("base_quant")  # None: the base in fp32; "nf4" or "int8": bitsandbytes
    samples: int = cell_default("samples")
    latency: bool = cell_default("latency")
    max_new_tokens: int = cell_default("max_new_tokens")  # 0: the task's own limit
    retention: bool = cell_default("retention")
    retention_examples: int = cell_default("retention_examples")  # 0: no cross-task retention
    guard_prompts: int = 2
    # Which plugin modules the cell process loads: changes where code comes from, not the result.
    plugin_modules: list[str] = field(default_factory=list, metadata={"outside_cache_key": True})
    trial: str = ""  # e.g. "learning_rate=0.003" for a sweep trial
    # The registered method that runs a cell whose ``method`` is a name given with --method-config ("": ``method``).
    runs_as: str = ""
    # The task's own name (a YAML file's name:) for progress lines; ``task`` may be the file's path.
    task_name: str = field(default="", metadata={"outside_cache_key": True})

    @property
    def named_task(self) -> str:
        """The task as tables, progress lines and records name it: a YAML file's ``name:``, not its path."""
        return self.task_name or self.task

    @property
    def label(self) -> str:
        trial = f" [{self.trial}]" if self.trial else ""
        return f"{self.named_task}/{self.method}/seed {self.seed}{trial}"

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


def run_cell(spec: CellSpec, cell_dir: Path, token_cache: Path | None, emit: Emit | None = None) -> dict[str, Any]:
    """Run one cell and return its result record (``CellRecord.to_json()``: it crosses processes as JSON).

    Never raises for a failure of the cell itself.
    """
    emit = emit or (lambda event: None)
    record = CellRecord.of(task=spec.named_task, method=spec.method, seed=spec.seed, trial=spec.trial,
                           status="failed", error=None, config=spec.to_dict(), device=spec.device)
    started = time.perf_counter()
    reuse_freed_memory()  # faster full fine-tuning on CPU; MemoryProbe keeps each phase's peak its own
    try:
        for name, value in _run(spec, cell_dir, token_cache, emit).items():
            record.assign(name, value)
    except CellFailed as exc:
        record.error = str(exc)
    except MemoryError:
        record.error = "out of memory (host RAM); try a smaller --batch-size or --eval-batch-size"
    except Exception as exc:  # a cell's crash is recorded; the run goes on with the other cells
        if type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError, without importing torch here
            first = str(exc).splitlines()[0] if str(exc) else ""
            record.error = f"CUDA out of memory ({first}); try a smaller --batch-size"
        else:
            record.error = f"{type(exc).__name__}: {exc}"
        cell_dir.mkdir(parents=True, exist_ok=True)
        (cell_dir / "error.log").write_text(traceback.format_exc())
    record.assign("cell_seconds", time.perf_counter() - started)
    return record.to_json()


def _run(spec: CellSpec, cell_dir: Path, token_cache: Path | None, emit: Emit) -> dict[str, Any]:
    import torch

    from tuning_bench.host.lookup import resolve_model, resolve_task
    from tuning_bench.host.plugins import load_catalog

    device = torch.device(spec.device)
    if device.type == "cpu":
        torch.set_num_threads(spec.threads or len(os.sched_getaffinity(0)))
    elif device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)  # so calls without a device (synchronize, caches) mean this cell's GPU
    catalog = load_catalog(spec.plugin_modules)
    task = resolve_task(catalog, spec.task)
    method = catalog.methods.get(spec.runs_as or spec.method)
    source = resolve_model(catalog, spec.model, spec.trust_remote_code)
    config = method.resolve_config(spec.method_config, where="cell config")
    from tuning_bench.engine.strategies import unsupported

    family = {"family": method.family}  # recorded for every cell that gets this far, so reports can group by it
    reason = method.not_applicable(task, source.kind, config) or unsupported(source.kind, task.kind)
    if not reason and spec.base_quant:
        from tuning_bench.models.quantization import unavailable

        reason = unavailable(spec.base_quant, device)
    if reason:
        return {**family, "status": "not_applicable", "error": reason}

    emit({"event": "phase", "phase": "loading model"})
    _set_determinism(spec.seed)
    load_start = time.perf_counter()
    from tuning_bench.models.quantization import quantized_loading

    with quantized_loading(spec.base_quant, device, torch.bfloat16 if spec.precision == "bf16" else torch.float32):
        loaded = source.load(task_kind=task.kind, labels=task.labels, trust_remote_code=spec.trust_remote_code)
    load_seconds = time.perf_counter() - load_start
    if spec.base_quant and not loaded.quantized:
        return {**family, "status": "not_applicable", "error": f"model source {source.name} did not load a quantized base "
                "(--base-quant works with sources that load through tuning_bench.models.hf.load_pretrained)"}
    reason = method.not_applicable_to(loaded, task, config)
    if reason:
        return {**family, "status": "not_applicable", "error": reason}
    data = _prepare_data(spec, task, method, config, loaded, token_cache, emit)
    from tuning_bench.engine.retention import retention_base_phase, retention_trained_phase

    retention = retention_base_phase(spec, method, task.name, list(catalog.tasks), loaded, data.fmt, data.strategy,
                                     device, emit, base_cache=token_cache)  # the base side: once per run

    _set_determinism(spec.seed)
    from tuning_bench.engine.head import adapt_for_training

    adapted = adapt_for_training(method, loaded, task, config)  # the engine trains an encoder's new head
    adapted.to(device)
    from tuning_bench.engine.measure import MemoryProbe
    from tuning_bench.engine.trainer import make_feeder

    probe = MemoryProbe(device)
    probe.baseline()
    feeder = make_feeder(adapted, loaded.kind, loaded.tokenizer.pad_token_id, device,
                         torch.bfloat16 if spec.precision == "bf16" else None, data.strategy)
    log = _train_phase(spec, method, config, adapted, data, feeder, probe, emit) if method.trains and spec.steps else None
    evaluation = _evaluate_phase(spec, task, method.decoding_for(config), loaded, adapted, data, feeder, log, probe, emit)
    retained = retention_trained_phase(retention, adapted, method.decoding_for(config), emit) if log is not None else None

    from tuning_bench.engine.state import save_state

    learned = method.learned_prompt(adapted, loaded.tokenizer)
    if learned is not None:  # a trained hard prompt: part of the prompt every answer was given
        data.prompt_record["learned"] = learned
    state = save_state(method, adapted, spec.keep, cell_dir / "state", data.prompt_record)
    from tuning_bench.engine.deployment import deployment_phase

    deployment = (deployment_phase(data.strategy, evaluation.answerer, [e.prompt_ids for e in data.test], method,
                                   adapted, evaluation.latency, probe, emit, data.warnings) if spec.latency else None)
    return {**family, **_record(spec, task, loaded, adapted, config, data, log, evaluation, state, probe.finish(),
                                load_seconds, deployment, retained)}


@dataclass
class _Data:
    """The task as this cell feeds it to the model: tokenized splits, prompt context, warnings."""

    shots: list[tuple[str, str]]
    fmt: Any
    strategy: Any  # tuning_bench.engine.strategies.Strategy for this model kind and task kind
    encoded: Any
    train: list[Any]
    validation: list[Any]
    test: list[Any]
    test_examples: list[dict[str, Any]]
    tokenize_seconds: float
    warnings: list[str]
    prompt_record: dict[str, Any]


def _prepare_data(spec: CellSpec, task: Any, method: Any, config: dict[str, Any], loaded: Any,
                  token_cache: Path | None, emit: Emit) -> _Data:
    """Format and tokenize the task (through the shared token cache) exactly as every method sees it."""
    from tuning_bench.engine.data import cache_key, encode_task, load_or_encode
    from tuning_bench.engine.prompting import resolve_format
    from tuning_bench.engine.strategies import strategy_for

    tokenizer = loaded.tokenizer
    causal = loaded.kind is ModelKind.CAUSAL_LM
    # The same input formatting for every method; only few-shot adds worked examples.
    shots = [(task.render_input(ex), task.render_target(ex)) for ex in method.context_examples(task, config, spec.seed)]
    fmt = resolve_format(tokenizer, spec.prompt_format) if causal else None
    start = time.perf_counter()
    key = cache_key(loaded.fingerprint, task.fingerprint(), fmt and fmt.style, shots, spec.max_length, loaded.kind.value)
    encoded = load_or_encode(token_cache, key,
                             lambda: encode_task(task, tokenizer, loaded.kind, fmt, shots, spec.max_length))
    tokenize_seconds = time.perf_counter() - start
    warnings: list[str] = []
    if encoded.truncated:
        warnings.append(f"{encoded.truncated} examples were longer than max_length={spec.max_length} tokens and were "
                        "truncated (the prompt keeps its end); raise --max-length or shorten the inputs")
        emit({"event": "warning", "message": warnings[-1]})
    test_examples = task.splits()["test"]
    if spec.eval_examples:
        test_examples = test_examples[: spec.eval_examples]
    test = encoded.splits["test"][: len(test_examples)]
    if not encoded.splits["train"] and method.trains:
        raise CellFailed(f"task {task.name} has no training examples")
    if not test:
        raise CellFailed(f"task {task.name} has no test examples")
    prompt_record = {
        "format": fmt.style if fmt else "encoder-input",
        "instruction": task.instruction if causal else "",
        "shots": [{"input": i, "target": t} for i, t in shots],
        "example_input": task.render_input(test_examples[0]),
        "example_prompt": tokenizer.decode(test[0].prompt_ids, skip_special_tokens=False),
    }
    return _Data(shots, fmt, strategy_for(loaded.kind, task.kind), encoded, encoded.splits["train"],
                 encoded.splits["validation"][: spec.val_examples], test, test_examples, tokenize_seconds, warnings,
                 prompt_record)


def _train_phase(spec: CellSpec, method: Any, config: dict[str, Any], adapted: Any, data: _Data, feeder: Any,
                 probe: Any, emit: Emit) -> Any:
    """The shared training loop, with the training phase's peak memory."""
    from tuning_bench.engine.trainer import NonFiniteLoss, TrainConfig, train

    emit({"event": "phase", "phase": "training", "total": spec.steps})
    probe.start("train")
    train_config = TrainConfig(steps=spec.steps, batch_size=spec.batch_size, learning_rate=config["learning_rate"],
                               seed=spec.seed, val_every=spec.val_every, patience=spec.patience,
                               min_delta=spec.min_delta)
    try:
        log = train(adapted, data.train, data.validation, feeder, train_config,
                    on_step=lambda step, loss: emit({"event": "step", "step": step, "total": spec.steps, "loss": loss}),
                    param_groups=method.parameter_groups(adapted, config), step_hook=method.on_step)
    except NonFiniteLoss as exc:
        raise CellFailed(str(exc)) from None
    probe.stop("train")
    return log


@dataclass
class _Evaluation:
    final_val: float | None
    quality: dict[str, Any]
    guard: dict[str, Any] | None
    latency: dict[str, Any] | None
    seconds: float
    answerer: Any = None  # the model ready to answer, as evaluated (the deployment phase answers through it)


def _evaluate_phase(spec: CellSpec, task: Any, decoding: str, loaded: Any, adapted: Any, data: _Data, feeder: Any,
                    log: Any, probe: Any, emit: Emit) -> _Evaluation:
    """Final validation loss, the generation guard, and test quality and one example's latency through the
    strategy for the model kind and task kind."""
    from tuning_bench.engine.castcache import weights_cast_once
    from tuning_bench.engine.strategies import Answerer, generation_settings
    from tuning_bench.engine.trainer import mean_loss

    emit({"event": "phase", "phase": "evaluating", "total": len(data.test)})
    probe.start("eval")
    start = time.perf_counter()
    adapted.eval()
    measured = dict(log.val_loss) if log is not None else {}
    if log is not None and log.state_step in measured:
        final_val = measured[log.state_step]  # measured on the state the model holds (the best, after early stopping)
    else:
        final_val = mean_loss(adapted, data.validation, feeder, spec.batch_size) if data.validation else None
    settings = None
    if loaded.kind is ModelKind.CAUSAL_LM:
        settings = generation_settings(loaded.tokenizer, loaded.model, data.fmt, spec.max_new_tokens or task.max_new_tokens,
                                       spec.eval_batch_size, decoding, feeder)
    answerer = Answerer(adapted, loaded.tokenizer, task, feeder, spec.eval_batch_size, settings, data.encoded.label_ids,
                        progress=lambda answered: emit({"event": "progress", "advance": answered}))
    # Evaluation, guard and latency answer with the same weights: cast to the autocast precision once for
    # all three instead of at every forward pass (engine.castcache; the same answers).
    with weights_cast_once(adapted, feeder.device, feeder.autocast_dtype):
        quality, guard, latency = _answer_phase(spec, loaded, adapted, data, settings, answerer, emit)
    seconds = time.perf_counter() - start
    probe.stop("eval")
    return _Evaluation(final_val, quality, guard, latency, seconds, answerer)


def _answer_phase(spec: CellSpec, loaded: Any, adapted: Any, data: _Data, settings: Any, answerer: Any, emit: Emit
                  ) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any] | None]:
    """Test quality, the generation guard on evaluation's own answers, and one example's latency."""
    from tuning_bench.engine.generation import generation_guard, pick_guard_indices

    quality = data.strategy.evaluate(answerer, data.test_examples, data.test)
    guard = None
    if loaded.kind is ModelKind.CAUSAL_LM:
        # The guard checks the answers evaluation produced (every token, one no-cache pass per prompt),
        # so nothing is generated twice; a classification task generates nothing and is checked on fresh
        # answers instead.
        generated = quality.pop("generated_ids", None)
        emit({"event": "phase", "phase": "checking answers (generation guard)"})
        prompts = [e.prompt_ids for e in data.test]
        picked = pick_guard_indices(prompts, spec.guard_prompts)
        report = generation_guard(adapted, [prompts[i] for i in picked], settings,
                                  [generated[i] for i in picked] if generated is not None else None)
        guard = report.as_record()
        if not report.passed:
            raise CellFailed(f"generation guard failed: {report.detail}")
    latency = data.strategy.latency(answerer, data.test[0].prompt_ids).as_record() if spec.latency else None
    return quality, guard, latency


def _record(spec: CellSpec, task: Any, loaded: Any, adapted: Any, config: dict[str, Any], data: _Data, log: Any,
            evaluation: _Evaluation, state: dict[str, Any], memory: dict[str, Any], load_seconds: float,
            deployment: Any = None, retained: Any = None) -> dict[str, Any]:
    """The finished cell's record fields (see ``CellRecord``): every measurement, curve, sample and the
    context needed to trust them."""
    from tuning_bench.engine.measure import environment

    trainable, total = _count_parameters(adapted)
    causal = loaded.kind is ModelKind.CAUSAL_LM
    quality, latency, final_val = evaluation.quality, evaluation.latency, evaluation.final_val
    measurements: dict[str, Any] = {
        "trainable_params": trainable,
        "total_params": total,
        "trainable_percent": 100.0 * trainable / total if total else 0.0,
        "load_seconds": load_seconds,
        "tokenize_seconds": data.tokenize_seconds,
        "token_cache_hit": data.encoded.from_cache,
        "truncated_examples": data.encoded.truncated,
        "memory": Memory.from_json(memory),  # its keys depend on the device (MemoryProbe)
        "eval_seconds": evaluation.seconds,
        "eval_examples": len(data.test_examples),
        "final_val_loss": final_val,
        "val_perplexity": math.exp(min(final_val, 50.0)) if causal and final_val is not None else None,
        "saved_bytes": state["saved_bytes"],
        "latency_seconds": latency["seconds"] if latency else None,  # None: not measured (--quick)
        "latency_new_tokens": latency["new_tokens"] if latency else None,
    }
    if deployment is not None:
        measurements.update(deployment.measurements())
    if "generation_seconds" in quality:
        measurements["generation_seconds"] = quality["generation_seconds"]
        measurements["generation_seconds_per_example"] = quality["generation_seconds"] / len(data.test_examples)
        measurements["generated_tokens"] = quality["generated_tokens"]
    else:
        measurements["classify_seconds"] = quality["classify_seconds"]
    curves = Curves(train_loss=[], val_loss=[], learning_rate=[])
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
            "step_budget": spec.steps,
            "early_stopping": spec.patience > 0,
            "stopped_early": log.stopped_early,
            "best_step": log.best_step,
            "best_val_loss": log.best_val,
            "seconds_to_best": log.seconds_to_best,
            "evaluated_step": log.state_step,
        })
        curves = Curves(train_loss=log.train_loss, val_loss=[list(p) for p in log.val_loss],
                        learning_rate=log.learning_rates)
    else:
        measurements.update({"train_seconds": 0.0, "steps": 0, "final_train_loss": None, "tokens_per_second": None,
                             "median_step_seconds": None})
    if retained is not None:
        measurements["retention"] = retained
    samples = [Sample(input=task.render_input(ex), reference=ref, prediction=pred)
               for ex, ref, pred in list(zip(data.test_examples, quality["references"], quality["predictions"]))[: spec.samples]]
    return {
        "status": "ok",
        "error": None,
        "warnings": data.warnings,
        "method_config": config,
        "quality": quality["scores"],
        "headline": Headline(metric=task.headline, value=quality["scores"].get(task.headline),
                             higher_is_better=task.higher_is_better),
        "measurements": Measurements.of(**measurements),
        "curves": curves,
        "samples": samples,
        "predictions": quality["predictions"],
        # Test examples are the first n of the test split, so position i is test example i: runs and
        # methods pair on it. Scores per example (and corpus statistics) feed the paired bootstrap.
        "per_example": PerExample.of(index=list(range(len(data.test_examples))), references=quality["references"],
                                     **quality["per_example"]),
        "prompt": data.prompt_record,
        "guard": evaluation.guard,
        "state": StateInfo.from_json(state),  # save_state's record; a method's extra keys are kept
        "classification_by": quality.get("method"),
        "environment": environment(next(adapted.parameters()).device),
        "task_info": task.summary() | {"fingerprint": task.fingerprint()},
        "model_info": {"name": loaded.name, "kind": loaded.kind.value, "fingerprint": loaded.fingerprint},
    }
