"""Retention: what training did to everything else the model could do.

Two figures per trained cell on a causal LM, each measured on the base model (``before``) and on the
model as evaluated (``after``):

- **probe loss**: the mean next-token loss on a neutral probe set: the base model's own greedy
  continuations of a few neutral prompts shipped here (``PROBE_PROMPTS``), generated once per model and
  cached under ``$TBENCH_CACHE/retention``, keyed by the model's fingerprint and the probe's content. The
  base model predicts its own continuations well; a rise after training means the model no longer says
  what it used to (forgetting).
- **cross-task**: the zero-shot headline score on the first ``retention_examples`` test examples of every
  other registered task the model can run, with the same prompt format as the cell.

``before`` is always the base model itself, measured before the method's ``adapt``: never a freshly
initialised adapter, whose initial state (prompt tuning's initial prompt, a random prefix) already changes
the output and would make training look like it repaired forgetting. For PEFT methods this equals the
trained model with its adapter disabled (``disable_adapter``; tests/test_retention.py checks it); for full
fine-tuning it is the model before training starts; it needs no hook from third-party methods.

The base side is the same for every trained cell of a run that shares the model, precision, device,
task and retention settings, so it is measured once: the first cell stores it (with its probe) in the
run's cache folder (``OUT/.cache/retention-base-KEY.json``, written atomically), keyed by everything
it depends on (``RetentionMeter.base_key``); the other cells read it (``Retention.base_reused``). Cells
that start together may both measure it: a race costs a measurement, never a wrong figure.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from tuning_bench.api.kinds import ModelKind
from tuning_bench.api.task import Example, Task
from tuning_bench.engine.data import Encoded, cache_key
from tuning_bench.run.records import Retention, TaskRetention

# Neutral: general knowledge and everyday narration, unrelated to any shipped task. Short, so the probe
# costs about 0.1-0.5 s per pass on SmolLM2-135M on a 2-core CPU (docs/measurements.md, Retention).
PROBE_PROMPTS = (
    "The capital of France is",
    "Water boils at a temperature of",
    "Once upon a time, in a small village by the sea,",
    "The three primary colours are",
    "To make a cup of tea, first",
    "The largest planet in our solar system is",
    "A good night's sleep helps the body",
    "In the morning, the market square was",
)
PROBE_NEW_TOKENS = 24
PROBE_VERSION = 1  # bump when how the probe is made changes: old cached probes are then not reused
BASE_VERSION = 1  # bump when how the base side is measured changes: stored base sides are then not reused

ENCODER_SKIP = ("an encoder has no language-model head to probe, and its classification head is this task's: "
                "retention is measured on causal LMs only")


def probe_folder() -> Path:
    """Where probe sets are cached: beside the model cache ($TBENCH_CACHE/retention)."""
    from tuning_bench.models.fetch import cache_dir

    return cache_dir() / "retention"


@dataclass(frozen=True)
class Probe:
    """The probe set: (prompt ids, the base model's greedy continuation ids) per prompt."""

    texts: list[tuple[list[int], list[int]]]

    @property
    def tokens(self) -> int:
        """Continuation tokens scored (the loss is their mean)."""
        return sum(len(continuation) for _, continuation in self.texts)

    @property
    def fingerprint(self) -> str:
        """A hash of the token ids themselves: two runs compare probe losses only on equal probes."""
        return hashlib.sha256(json.dumps(self.texts).encode()).hexdigest()[:16]

    def encoded(self) -> list[Encoded]:
        return [Encoded(list(prompt), list(continuation)) for prompt, continuation in self.texts]


def make_probe(model: Any, tokenizer: Any, device: torch.device) -> Probe:
    """Greedy continuations of ``PROBE_PROMPTS`` by ``model`` (the base model), in fp32 so the probe does
    not depend on the run's precision; prompts whose continuation is empty are left out."""
    from tuning_bench.engine.generation import GenerationSettings, eos_ids_for, generate_all

    prompts = [tokenizer(text, add_special_tokens=True).input_ids for text in PROBE_PROMPTS]
    settings = GenerationSettings(max_new_tokens=PROBE_NEW_TOKENS, eos_ids=eos_ids_for(tokenizer, model, ""),
                                  pad_id=tokenizer.pad_token_id, batch_size=len(prompts), decoding="engine",
                                  device=device)
    outputs = generate_all(model, prompts, settings)
    return Probe([(list(p), list(o)) for p, o in zip(prompts, outputs) if o])


def load_or_make_probe(model: Any, tokenizer: Any, model_fingerprint: str, device: torch.device,
                       folder: Path | None) -> Probe:
    """The cached probe for this model and probe content, or a new one (stored atomically in ``folder``)."""
    key = cache_key(PROBE_VERSION, model_fingerprint, PROBE_PROMPTS, PROBE_NEW_TOKENS)
    path = folder / f"probe-{key}.json" if folder is not None else None
    if path is not None and path.exists():
        try:
            raw = json.loads(path.read_text())
            return Probe([(list(map(int, p)), list(map(int, c))) for p, c in raw["texts"]])
        except (ValueError, KeyError, TypeError):
            pass  # a damaged cache file is made again below
    probe = make_probe(model, tokenizer, device)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            payload = {"model": model_fingerprint, "prompts": list(PROBE_PROMPTS), "new_tokens": PROBE_NEW_TOKENS,
                       "texts": probe.texts, "continuations": [tokenizer.decode(c) for _, c in probe.texts]}
            with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
                json.dump(payload, handle, indent=1)
            os.replace(handle.name, path)
        except OSError:
            pass  # an unwritable cache costs one generation per cell, not the cell
    return probe


@dataclass
class OtherTask:
    """Another registered task, encoded zero-shot (no worked examples) as the cell's prompt format would."""

    task: Task
    examples: list[Example]
    encoded: list[Encoded]
    label_ids: list[list[int]]


def other_tasks(tasks: Sequence[Task], own: str, tokenizer: Any, fmt: Any, max_length: int, count: int
                ) -> tuple[list[OtherTask], list[TaskRetention]]:
    """The first ``count`` test examples of every task but ``own`` that a causal LM can run, and an entry
    with the error for each task that could not be prepared."""
    from tuning_bench.engine.strategies import PromptContext, strategy_for, unsupported

    prepared, failed = [], []
    for task in tasks:
        if task.name == own or unsupported(ModelKind.CAUSAL_LM, task.kind):
            continue
        try:
            examples = list(task.splits()["test"][:count])
            strategy = strategy_for(ModelKind.CAUSAL_LM, task.kind)
            context = PromptContext(tokenizer, fmt, task.instruction, [], max_length)
            encoded = [strategy.encode(context, task, example) for example in examples]
            prepared.append(OtherTask(task, examples, encoded, strategy.label_ids(context, task)))
        except Exception as exc:  # one broken plugin task must not fail the cell: its entry says why
            failed.append(TaskRetention.of(task=task.name, metric=task.headline, error=f"{type(exc).__name__}: {exc}"))
    return [p for p in prepared if p.examples], failed


@dataclass
class _Side:
    """One side (base or trained) of the measurement."""

    probe_loss: float | None = None
    scores: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


class RetentionMeter:
    """Measures the base model before ``adapt`` (``measure_base``) and the trained model after evaluation
    (``measure_trained``), with the cell's device, precision and evaluation batch size."""

    def __init__(self, loaded: Any, own_task: str, tasks: Sequence[Task], fmt: Any, strategy: Any,
                 device: torch.device, autocast_dtype: torch.dtype | None, batch_size: int, max_length: int,
                 examples: int, max_new_tokens: int, probe_cache: Path | None, base_cache: Path | None = None,
                 base_context: Any = None) -> None:
        self.loaded, self.fmt, self.strategy, self.device = loaded, fmt, strategy, device
        self.autocast_dtype, self.batch_size, self.max_new_tokens = autocast_dtype, batch_size, max_new_tokens
        self.own_task, self.max_length, self.examples = own_task, max_length, examples
        self.probe_cache = probe_cache
        # Where the base side is shared between the cells of a run (None: measured in every cell), and what
        # else decides the base model as loaded (e.g. --base-quant), for the key.
        self.base_cache, self.base_context = base_cache, base_context
        self.base_reused = False
        start = time.perf_counter()
        self.others, self.failed = (other_tasks(tasks, own_task, loaded.tokenizer, fmt, max_length, examples)
                                    if examples else ([], []))
        self.prepare_seconds = time.perf_counter() - start  # the other tasks' examples, encoded
        self.probe: Probe | None = None
        self.base: _Side | None = None

    def _feeder(self, model: Any) -> Any:
        from tuning_bench.engine.trainer import make_feeder

        return make_feeder(model, self.loaded.kind, self.loaded.tokenizer.pad_token_id, self.device,
                           self.autocast_dtype, self.strategy)

    def _measure(self, model: Any, decoding: str) -> _Side:
        from tuning_bench.engine.castcache import weights_cast_once
        from tuning_bench.engine.trainer import mean_loss

        start = time.perf_counter()
        was_training = model.training
        model.eval()
        feeder = self._feeder(model)
        side = _Side()
        # One answering block, as in evaluation: each weight cast to the autocast precision once (and on a CPU
        # laid out once) for the probe and every other task, not at every forward pass; the same numbers.
        with weights_cast_once(model, self.device, self.autocast_dtype):
            if self.probe is not None and self.probe.texts:
                side.probe_loss = mean_loss(model, self.probe.encoded(), feeder, self.batch_size)
            for other in self.others:
                try:
                    side.scores[other.task.name] = self._score(model, other, feeder, decoding)
                except Exception as exc:  # e.g. a hub metric offline: recorded in the task's entry
                    side.errors[other.task.name] = f"{type(exc).__name__}: {exc}"
        model.train(was_training)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        side.seconds = time.perf_counter() - start
        return side

    def _score(self, model: Any, other: OtherTask, feeder: Any, decoding: str) -> float | None:
        from tuning_bench.engine.strategies import Answerer, generation_settings, strategy_for

        task = other.task
        settings = generation_settings(self.loaded.tokenizer, model, self.fmt, self.max_new_tokens or task.max_new_tokens,
                                       self.batch_size, decoding, feeder)
        answerer = Answerer(model, self.loaded.tokenizer, task, feeder, self.batch_size, settings, other.label_ids)
        quality = strategy_for(ModelKind.CAUSAL_LM, task.kind).evaluate(answerer, other.examples, other.encoded)
        value = quality["scores"].get(task.headline)
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    @torch.no_grad()
    def measure_base(self, model: Any) -> None:
        """Measure the base model (call before ``adapt``), or read the side another cell of the run stored
        under ``base_key``; on a GPU it visits the device and goes back, so the method adapts the model
        where it always did."""
        start = time.perf_counter()
        path = self._base_path()
        stored = _read_base(path) if path is not None else None
        if stored is not None:
            self.probe, self.base = stored
            self.base_reused = True
        else:
            self._measure_base_model(model)
            if path is not None:
                _write_base(path, self.probe, self.base)
        # With the probe, when it was made here, and the other tasks' encoding (needed for the trained side).
        self.base.seconds = time.perf_counter() - start + self.prepare_seconds

    def _measure_base_model(self, model: Any) -> None:
        moved = self.device.type != "cpu"
        if moved:
            model.to(self.device)
        try:
            # Generated without autocast (GenerationSettings has none): the probe does not depend on --precision.
            self.probe = load_or_make_probe(model, self.loaded.tokenizer, self.loaded.fingerprint, self.device,
                                            self.probe_cache)
            # The base model's own cached loop: a plain transformers forward takes the KV cache.
            self.base = self._measure(model, "engine")
        finally:
            if moved:
                model.to("cpu")

    def base_key(self) -> str:
        """A hash of everything the base side depends on: the model and how it was loaded, the probe, the
        cell's task (left out of the others; its kind picks the strategy), every other task and its data,
        the prompt format, precision, device, batch size, lengths, examples, CPU threads and package
        versions. No random number is drawn, so the seed is not part of it."""
        from tuning_bench.engine.measure import package_versions

        device = self.device.type
        if device == "cuda":
            device += ":" + torch.cuda.get_device_name(self.device)  # results differ between GPU models
        return cache_key(
            BASE_VERSION, PROBE_VERSION, PROBE_PROMPTS, PROBE_NEW_TOKENS, self.loaded.fingerprint,
            self.loaded.kind.value, self.base_context, self.own_task, type(self.strategy).__name__,
            [(other.task.name, other.task.fingerprint()) for other in self.others],
            dataclasses.asdict(self.fmt) if dataclasses.is_dataclass(self.fmt) else repr(self.fmt),
            str(self.autocast_dtype), device, torch.get_num_threads(), self.batch_size, self.max_length,
            self.examples, self.max_new_tokens, package_versions())

    def _base_path(self) -> Path | None:
        if self.base_cache is None:
            return None
        try:
            return self.base_cache / f"retention-base-{self.base_key()}.json"
        except Exception:  # a task whose fingerprint fails: measured here, not shared
            return None

    @torch.no_grad()
    def measure_trained(self, adapted: Any, decoding: str) -> Retention:
        """Measure the trained model (decoded the way the method declares) and pair it with the base."""
        if self.base is None:
            raise RuntimeError("measure_base must run before measure_trained")
        after = self._measure(adapted, decoding)
        before = self.base
        entries = []
        for other in self.others:
            name = other.task.name
            b, a = before.scores.get(name), after.scores.get(name)
            error = before.errors.get(name) or after.errors.get(name)
            entries.append(TaskRetention.of(
                task=name, metric=other.task.headline, higher_is_better=other.task.higher_is_better,
                examples=len(other.examples), before=b, after=a,
                change=a - b if a is not None and b is not None else None, **({"error": error} if error else {})))
        entries += self.failed
        towards_better = [(e.change if e.higher_is_better else -e.change) for e in entries if e.change is not None]
        probe = self.probe
        loss_before, loss_after = before.probe_loss, after.probe_loss
        return Retention.of(
            probe_loss_before=loss_before, probe_loss_after=loss_after,
            probe_loss_change=loss_after - loss_before if loss_before is not None and loss_after is not None else None,
            probe_texts=len(probe.texts) if probe else 0, probe_tokens=probe.tokens if probe else 0,
            probe_fingerprint=probe.fingerprint if probe else None,
            tasks=entries, tasks_change=sum(towards_better) / len(towards_better) if towards_better else None,
            seconds=before.seconds + after.seconds, base_reused=self.base_reused)


def _write_base(path: Path, probe: Probe | None, side: _Side) -> None:
    """Store a measured base side (and the probe it was measured on) atomically; never fails the cell."""
    payload = {"version": BASE_VERSION, "probe": probe.texts if probe is not None else None,
               "probe_loss": side.probe_loss, "scores": side.scores, "errors": side.errors,
               "measured_seconds": side.seconds}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
            json.dump(payload, handle)  # floats as repr: they read back bit for bit
        os.replace(handle.name, path)
    except (OSError, TypeError, ValueError):
        pass  # an unwritable cache (or an unexpected value) costs the next cell a measurement, not the cell


def _read_base(path: Path) -> tuple[Probe | None, _Side] | None:
    """A stored base side, or None when there is none (or it is damaged: then it is measured again)."""
    try:
        raw = json.loads(path.read_text())
        if raw["version"] != BASE_VERSION:
            return None
        probe = Probe([(list(map(int, p)), list(map(int, c))) for p, c in raw["probe"]]) \
            if raw["probe"] is not None else None
        loss = raw["probe_loss"]
        side = _Side(probe_loss=float(loss) if loss is not None else None,
                     scores={str(k): float(v) if v is not None else None for k, v in raw["scores"].items()},
                     errors={str(k): str(v) for k, v in raw["errors"].items()})
        return probe, side
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


# --- The cell's two retention phases (engine/cell.py runs them in order) ---------------------------

def retention_base_phase(spec: Any, method: Any, own_task: str, tasks: Sequence[Task], loaded: Any, fmt: Any,
                         strategy: Any, device: torch.device, emit: Callable[[dict[str, Any]], None],
                         base_cache: Path | None = None) -> RetentionMeter | str | None:
    """Measure the base model for retention before the method adapts it (``spec``: the cell's
    ``CellSpec``), or reuse the base side another cell of the run stored in ``base_cache`` (the run's
    cache folder). Returns the meter; a reason string when retention cannot be measured (an encoder);
    None when the cell trains nothing or retention is off."""
    if not (spec.retention and method.trains and spec.steps):
        return None
    if loaded.kind is not ModelKind.CAUSAL_LM:
        return ENCODER_SKIP
    emit({"event": "phase", "phase": "retention: measuring the base model"})
    meter = RetentionMeter(loaded, own_task, tasks, fmt, strategy, device,
                           torch.bfloat16 if spec.precision == "bf16" else None, spec.eval_batch_size, spec.max_length,
                           spec.retention_examples, spec.max_new_tokens, probe_folder(), base_cache,
                           {"model": spec.model, "base_quant": spec.base_quant, "precision": spec.precision})
    meter.measure_base(loaded.model)
    return meter


def retention_trained_phase(meter: RetentionMeter | str | None, adapted: Any, decoding: str,
                            emit: Callable[[dict[str, Any]], None]) -> Retention | None:
    """The trained model's side of retention, paired with the base model's (a ``Retention`` record);
    ``meter`` is what ``retention_base_phase`` returned."""
    if meter is None:
        return None
    if isinstance(meter, str):
        return Retention.of(skipped=meter)
    emit({"event": "phase", "phase": "retention: measuring the trained model"})
    return meter.measure_trained(adapted, decoding)
