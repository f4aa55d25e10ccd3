"""Deployment cost: what answering with the adapted model costs once training is over.

The cell already times one test example answered alone (``latency_seconds``, measured at the end of
evaluation). This phase adds, on the same model, device and precision:

- **throughput**: the first ``SERVE_BATCH`` test examples answered together as one batch, in answers
  per second (a batch of 8 is what a small server sees; evaluation's batches of 128 are not);
- for a method that can fold its update into the base weights (``Method.merged``: LoRA family, IA3), the
  same latency and throughput with the weights **merged**, as such a model is served, and whether the
  merged model gives the same greedy answers as the unmerged one (it should; floating-point rounding of
  the merge, or a quantized base's re-quantization, can flip a near-tie).

Methods with nothing to merge (prompts, prefixes, full fine-tuning, baselines) get no merged figures.
Merging happens in place and is undone on leaving (``Method.merged``), after the state was saved, so the
serving peak holds one model and nothing saved depends on the merge's rounding.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from typing import Any

from tuning_bench.engine.castcache import weights_cast_once
from tuning_bench.engine.strategies import _synchronize  # the clock waits for the GPU, as latency's does

SERVE_BATCH = 8


@dataclass
class Deployment:
    """The figures of the deployment phase (recorded under ``measurements``; docs/measurements.md)."""

    throughput_batch_size: int
    throughput_answers_per_second: float
    latency_merged_seconds: float | None = None  # None: the method has nothing to merge
    throughput_answers_per_second_merged: float | None = None
    merged_outputs_match: bool | None = None
    merged_answers_differing: int | None = None  # of merged_answers_compared: the batch's and the latency example's
    merged_answers_compared: int = field(default=0, repr=False)
    merge_refused: str | None = None  # why the method's merge failed (e.g. PEFT refuses tied weights)
    deployment_seconds: float = 0.0  # the time this phase added to the cell

    def measurements(self) -> dict[str, Any]:
        """The figures as ``Measurements`` fields; ``merge_refused`` only when there is a reason."""
        figures = {
            "throughput_batch_size": self.throughput_batch_size,
            "throughput_answers_per_second": self.throughput_answers_per_second,
            "latency_merged_seconds": self.latency_merged_seconds,
            "throughput_answers_per_second_merged": self.throughput_answers_per_second_merged,
            "merged_outputs_match": self.merged_outputs_match,
            "merged_answers_differing": self.merged_answers_differing,
            "deployment_seconds": self.deployment_seconds,
        }
        if self.merge_refused:
            figures["merge_refused"] = self.merge_refused
        return figures

    def warning(self) -> str | None:
        """A line for the cell's warnings when the merged figures do not time the same answers."""
        if self.merge_refused:
            return f"merged deployment cost not measured: the method's merge failed ({self.merge_refused})"
        if self.merged_outputs_match is False:
            return (f"merging the weights changed {self.merged_answers_differing} of {self.merged_answers_compared} "
                    "greedy answers (rounding of the merge); the merged figures time a model that answers differently")
        return None


def _timed(answer: Callable[[], list[str]], device: Any) -> tuple[float, list[str]]:
    start = time.perf_counter()
    answers = answer()
    _synchronize(device)
    return time.perf_counter() - start, answers


def serving_answerer(answerer: Any) -> Any:
    """The evaluation's answerer with batches of ``SERVE_BATCH`` and no progress reports."""
    generation = answerer.generation
    if generation is not None:
        generation = replace(generation, batch_size=SERVE_BATCH)
    return replace(answerer, batch_size=SERVE_BATCH, generation=generation, progress=None)


def measure_deployment(strategy: Any, answerer: Any, prompts: Sequence[Sequence[int]], method: Any, adapted: Any,
                       unmerged_latency: dict[str, Any] | None) -> Deployment:
    """Throughput of the first ``SERVE_BATCH`` prompts answered as one batch, then, if ``method`` can merge,
    latency (``prompts[0]`` alone) and throughput merged, with the merged answers checked against the
    unmerged ones (this batch's, and ``unmerged_latency``'s text from the evaluation phase)."""
    start = time.perf_counter()
    serve = serving_answerer(answerer)
    device = answerer.feeder.device
    batch = [list(p) for p in prompts[:SERVE_BATCH]]
    dtype = answerer.feeder.autocast_dtype
    # Weights cast to the autocast precision once per block, as in evaluation (engine.castcache), so the
    # figures compare with its latency; a separate block after merging, as merging changes the weights.
    with weights_cast_once(adapted, device, dtype):
        seconds, unmerged = _timed(lambda: strategy.answer(serve, batch), device)
    result = Deployment(throughput_batch_size=len(batch), throughput_answers_per_second=len(batch) / seconds)
    context = method.merged(adapted)
    if context is not None:
        with ExitStack() as merged_weights:
            try:
                merged_weights.enter_context(context)
            except (ValueError, NotImplementedError) as exc:  # PEFT's refusals (Method.merged)
                detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "no message"
                result.merge_refused = f"{type(exc).__name__}: {detail}"
            else:
                with weights_cast_once(adapted, device, dtype):
                    latency = strategy.latency(serve, batch[0])
                    merged_seconds, merged = _timed(lambda: strategy.answer(serve, batch), device)
                differing = sum(a != b for a, b in zip(unmerged, merged))
                result.merged_answers_compared = len(batch)
                if unmerged_latency is not None and unmerged_latency.get("text") is not None:
                    differing += latency.text != unmerged_latency["text"]
                    result.merged_answers_compared += 1
                result.latency_merged_seconds = latency.seconds
                result.throughput_answers_per_second_merged = len(batch) / merged_seconds
                result.merged_answers_differing = differing
                result.merged_outputs_match = differing == 0
    result.deployment_seconds = time.perf_counter() - start
    return result


def deployment_phase(strategy: Any, answerer: Any, prompts: Sequence[Sequence[int]], method: Any, adapted: Any,
                     unmerged_latency: dict[str, Any] | None, probe: Any, emit: Callable[[dict[str, Any]], None],
                     warnings: list[str]) -> Deployment:
    """The cell's deployment phase (engine/cell.py): ``measure_deployment`` with the serving peak memory
    (``probe``: the cell's ``MemoryProbe``); a warning, if any, is appended to ``warnings`` and emitted."""
    emit({"event": "phase", "phase": "measuring deployment cost"})
    probe.start("serve")
    deployment = measure_deployment(strategy, answerer, prompts, method, adapted, unmerged_latency)
    probe.stop("serve")
    if deployment.warning():
        warnings.append(deployment.warning())
        emit({"event": "warning", "message": deployment.warning()})
    return deployment
