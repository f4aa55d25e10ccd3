"""Quality on held-out examples: generated text scored by the task's metrics, or classification."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from tuning_bench.engine.data import IGNORE, Encoded, sequential_batches
from tuning_bench.engine.generation import GenerationSettings, generate_all
from tuning_bench.engine.losses import target_logits
from tuning_bench.metrics import compute_metrics, example_scores
from tuning_bench.api.task import Example, Task

if TYPE_CHECKING:
    from tuning_bench.engine.trainer import Feeder  # the trainer builds on the strategies, which build on this


# Told how many more test examples are answered, batch by batch (the live view's evaluation bar).
Progress = Callable[[int], None]


def score(task: Task, predictions: list[str], references: list[str]) -> dict[str, Any]:
    """The task's metrics over all examples, and per example what the paired bootstrap resamples."""
    return {"scores": compute_metrics(task.metrics, predictions, references),
            "per_example": example_scores(task.metrics, predictions, references)}


def decode(tokenizer: Any, tokens: Sequence[int]) -> str:
    return tokenizer.decode(list(tokens), skip_special_tokens=True).strip()


def evaluate_generation(model: Any, tokenizer: Any, task: Task, examples: Sequence[Example],
                        encoded: Sequence[Encoded], settings: GenerationSettings,
                        progress: Progress | None = None) -> dict[str, Any]:
    """Generate an answer for every example and score it against the reference."""
    start = time.perf_counter()
    outputs = generate_all(model, [e.prompt_ids for e in encoded], settings, progress)
    if settings.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    predictions = [decode(tokenizer, o) for o in outputs]
    references = [task.render_target(ex) for ex in examples]
    return {
        **score(task, predictions, references),
        "predictions": predictions,
        "references": references,
        "generation_seconds": seconds,
        "generated_tokens": sum(len(o) for o in outputs),
        "generated_ids": outputs,  # for the generation guard; the cell takes it out before recording
    }


@torch.no_grad()
def label_logprobs(model: Any, encoded: Sequence[Encoded], label_ids: Sequence[Sequence[int]], feeder: Feeder,
                   batch_size: int, progress: Progress | None = None) -> torch.Tensor:
    """Summed log-probability of each label's answer tokens after each prompt: (examples, labels).
    ``progress(n)`` is told, batch by batch, how many examples' worth of (prompt, label) pairs were scored
    (batches are sorted by length, so an example's labels may fall in different batches; the counts still
    add up to the number of examples)."""
    pairs = [Encoded(e.prompt_ids, list(ids)) for e in encoded for ids in label_ids]
    scores = torch.zeros(len(pairs))
    scored = 0
    for indices in sequential_batches([p.length for p in pairs], batch_size):
        batch = feeder.batch([pairs[i] for i in indices])
        with feeder.autocast():
            logits, targets = target_logits(model, batch, feeder.use_keep)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        mask = targets != IGNORE
        picked = logprobs.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
        scores[torch.tensor(indices)] = picked.sum(dim=1).cpu()
        if progress is not None:
            done = (scored + len(indices)) // len(label_ids) - scored // len(label_ids)
            scored += len(indices)
            if done:
                progress(done)
    return scores.view(len(encoded), len(label_ids))


def evaluate_classification_lm(model: Any, task: Task, examples: Sequence[Example], encoded: Sequence[Encoded],
                               label_ids: Sequence[Sequence[int]], feeder: Feeder, batch_size: int,
                               progress: Progress | None = None) -> dict[str, Any]:
    """Classify with a causal LM by the likelihood of each label's answer (rank classification)."""
    start = time.perf_counter()
    scores = label_logprobs(model, encoded, label_ids, feeder, batch_size, progress)
    predictions = [task.labels[int(i)] for i in scores.argmax(dim=1)]
    return _classified(task, examples, predictions, start, "label likelihood")


def _classified(task: Task, examples: Sequence[Example], predictions: list[str], start: float, how: str) -> dict[str, Any]:
    """A classification's evaluation: scores against the references, the labels, its time and how it chose."""
    references = [task.render_target(ex) for ex in examples]
    return {
        **score(task, predictions, references),
        "predictions": predictions,
        "references": references,
        "classify_seconds": time.perf_counter() - start,
        "method": how,
    }


@torch.no_grad()
def classify_with_head(model: Any, encoded: Sequence[Encoded], feeder: Feeder, batch_size: int,
                       progress: Progress | None = None) -> list[int]:
    """The label index the sequence-classification head picks for each example, in input order."""
    picked: list[int] = [0] * len(encoded)
    for indices in sequential_batches([len(e.prompt_ids) for e in encoded], batch_size):
        batch = feeder.batch([encoded[i] for i in indices])
        with feeder.autocast():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        for index, label in zip(indices, logits.argmax(dim=-1).tolist()):
            picked[index] = label
        if progress is not None:
            progress(len(indices))
    return picked


def evaluate_classification_encoder(model: Any, task: Task, examples: Sequence[Example], encoded: Sequence[Encoded],
                                    feeder: Feeder, batch_size: int, progress: Progress | None = None) -> dict[str, Any]:
    """Classify with the sequence-classification head."""
    start = time.perf_counter()
    predictions = [task.labels[i] for i in classify_with_head(model, encoded, feeder, batch_size, progress)]
    return _classified(task, examples, predictions, start, "classification head")
