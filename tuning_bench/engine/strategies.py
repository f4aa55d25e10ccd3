"""One strategy per (model kind, task kind): how examples become model inputs, batches and a loss, how test
quality is measured, and how new inputs are answered.

    causal LM + generation       ``CausalGeneration``        generated text, scored by the task's metrics
    causal LM + classification   ``CausalClassification``    the label whose answer is most likely
    encoder + classification     ``EncoderClassification``   the sequence-classification head
    encoder + generation         not applicable              (``unsupported`` says why)

The cell evaluates through ``Strategy.evaluate`` and measures one example's latency through
``Strategy.answer``; ``tbench generate`` answers through the same ``Strategy.answer`` with the same encoding
(truncated at the run's ``max_length``), batch size, device and precision, so it answers as the run did.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from tuning_bench.api.kinds import ModelKind, TaskKind
from tuning_bench.api.task import Example, Task
from tuning_bench.engine import data, losses

if TYPE_CHECKING:
    import torch

    from tuning_bench.engine.generation import GenerationSettings
    from tuning_bench.engine.prompting import PromptFormat
    from tuning_bench.engine.trainer import Feeder


@dataclass
class PromptContext:
    """What turns a task's input into token ids for one model: the prompt format (causal LM only), the
    instruction, worked examples in front (few-shot) and the run's ``max_length``."""

    tokenizer: Any
    fmt: PromptFormat | None
    instruction: str
    shots: Sequence[tuple[str, str]]
    max_length: int


@dataclass
class Answerer:
    """A model ready to answer, as a cell evaluates it or ``tbench generate`` uses it: the batch size, the
    device and precision (in ``feeder``) and, for a causal LM, the decoding settings and the label answers."""

    model: Any
    tokenizer: Any
    task: Task
    feeder: Feeder
    batch_size: int
    generation: GenerationSettings | None = None  # causal LM only
    label_ids: list[list[int]] = field(default_factory=list)  # tokenized answer per label (causal classification)
    progress: Callable[[int], None] | None = None  # told how many more examples ``evaluate`` answered


@dataclass
class Latency:
    """One example answered alone: seconds, new tokens generated (0 when none are) and the answer."""

    seconds: float
    new_tokens: int
    text: str | None

    def as_record(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "new_tokens": self.new_tokens, "text": self.text}


def generation_settings(tokenizer: Any, model: Any, fmt: PromptFormat, max_new_tokens: int, batch_size: int,
                        decoding: str, feeder: Feeder) -> GenerationSettings:
    """Decoding settings for a causal LM: stop at the format's answer end, pad, batch size, the method's
    decoding, and the feeder's device and precision."""
    from tuning_bench.engine.generation import GenerationSettings, eos_ids_for

    return GenerationSettings(max_new_tokens=max_new_tokens, eos_ids=eos_ids_for(tokenizer, model, fmt.answer_end),
                              pad_id=tokenizer.pad_token_id, batch_size=batch_size, decoding=decoding,
                              device=feeder.device, autocast_dtype=feeder.autocast_dtype)


class Strategy:
    """How one (model kind, task kind) pair is encoded, batched, trained, evaluated and answered."""

    model_kind: ClassVar[ModelKind]
    task_kind: ClassVar[TaskKind]

    def encode(self, context: PromptContext, task: Task, example: Example) -> data.Encoded:
        """One example (input and reference answer) as token ids, truncated to ``context.max_length``."""
        raise NotImplementedError

    def encode_input(self, context: PromptContext, rendered: str) -> list[int]:
        """A new rendered input (no reference answer) as the prompt ids the model answers from."""
        raise NotImplementedError

    def label_ids(self, context: PromptContext, task: Task) -> list[list[int]]:
        """Tokenized answer per label, for strategies that score labels (else empty)."""
        return []

    def collate(self, items: Sequence[data.Encoded], pad_id: int) -> dict[str, Any]:
        """A padded batch of encoded examples (CPU tensors)."""
        raise NotImplementedError

    def loss(self, model: Any, batch: dict[str, Any], use_keep: bool) -> tuple[torch.Tensor, int]:
        """Summed loss over a batch and how many items (tokens or examples) it sums."""
        raise NotImplementedError

    def evaluate(self, answerer: Answerer, examples: Sequence[Example], encoded: Sequence[data.Encoded]
                 ) -> dict[str, Any]:
        """Test quality: scores, per-example scores, predictions, references and the time taken."""
        raise NotImplementedError

    def answer(self, answerer: Answerer, prompts: Sequence[Sequence[int]]) -> list[str]:
        """Answers for prompt ids (from ``encode`` or ``encode_input``), in input order."""
        raise NotImplementedError

    def latency(self, answerer: Answerer, prompt: Sequence[int]) -> Latency:
        """Time answering one prompt alone."""
        start = time.perf_counter()
        text = self.answer(answerer, [prompt])[0]
        _synchronize(answerer.feeder.device)
        return Latency(time.perf_counter() - start, 0, text)


def _synchronize(device: Any) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize()


class _CausalLM(Strategy):
    """Prompt plus answer tokens; the loss is on the answer tokens only."""

    model_kind = ModelKind.CAUSAL_LM

    def _prompt_ids(self, context: PromptContext, rendered: str) -> list[int]:
        fmt = context.fmt
        prompt = fmt.prompt(context.tokenizer, context.instruction, context.shots, rendered)
        # Chat templates spell out their own special tokens; plain prompts get the tokenizer's usual BOS.
        return context.tokenizer(prompt, add_special_tokens=fmt.style == "plain").input_ids

    def encode(self, context: PromptContext, task: Task, example: Example) -> data.Encoded:
        prompt_ids = self._prompt_ids(context, task.render_input(example))
        target_ids = context.tokenizer(context.fmt.answer(task.render_target(example)), add_special_tokens=False).input_ids
        label = self._label(task, example)
        max_length = context.max_length
        truncated = False
        if len(prompt_ids) + len(target_ids) > max_length:
            truncated = True
            target_ids = target_ids[: max_length // 2] if len(target_ids) > max_length // 2 else target_ids
            keep = max_length - len(target_ids)
            prompt_ids = prompt_ids[-keep:]  # the end of the prompt holds the input itself and the answer cue
        return data.Encoded(prompt_ids, target_ids, label, truncated)

    def encode_input(self, context: PromptContext, rendered: str) -> list[int]:
        # No reference answer to make room for: the prompt keeps its last max_length tokens.
        return self._prompt_ids(context, rendered)[-context.max_length:]

    def _label(self, task: Task, example: Example) -> int | None:
        return None

    def collate(self, items: Sequence[data.Encoded], pad_id: int) -> dict[str, Any]:
        return data.collate_causal(items, pad_id)

    def loss(self, model: Any, batch: dict[str, Any], use_keep: bool) -> tuple[torch.Tensor, int]:
        return losses.causal_target_loss(model, batch, use_keep)


class CausalGeneration(_CausalLM):
    """A causal LM generates the answer; the task's metrics score the text."""

    task_kind = TaskKind.GENERATION

    def evaluate(self, answerer: Answerer, examples: Sequence[Example], encoded: Sequence[data.Encoded]
                 ) -> dict[str, Any]:
        from tuning_bench.engine.evaluation import evaluate_generation

        return evaluate_generation(answerer.model, answerer.tokenizer, answerer.task, examples, encoded,
                                   answerer.generation, answerer.progress)

    def _generate(self, answerer: Answerer, prompts: Sequence[Sequence[int]]) -> list[list[int]]:
        from tuning_bench.engine.generation import generate_all

        return generate_all(answerer.model, [list(p) for p in prompts], answerer.generation)

    def answer(self, answerer: Answerer, prompts: Sequence[Sequence[int]]) -> list[str]:
        from tuning_bench.engine.evaluation import decode

        return [decode(answerer.tokenizer, out) for out in self._generate(answerer, prompts)]

    def latency(self, answerer: Answerer, prompt: Sequence[int]) -> Latency:
        from tuning_bench.engine.evaluation import decode

        start = time.perf_counter()
        tokens = self._generate(answerer, [prompt])[0]
        _synchronize(answerer.feeder.device)
        return Latency(time.perf_counter() - start, len(tokens), decode(answerer.tokenizer, tokens))


class CausalClassification(_CausalLM):
    """A causal LM classifies by the likelihood of each label's answer (rank classification)."""

    task_kind = TaskKind.CLASSIFICATION

    def _label(self, task: Task, example: Example) -> int | None:
        from tuning_bench.api.task import label_index

        return label_index(task, example)

    def label_ids(self, context: PromptContext, task: Task) -> list[list[int]]:
        return [context.tokenizer(context.fmt.answer(label), add_special_tokens=False).input_ids
                for label in task.labels]

    def evaluate(self, answerer: Answerer, examples: Sequence[Example], encoded: Sequence[data.Encoded]
                 ) -> dict[str, Any]:
        from tuning_bench.engine.evaluation import evaluate_classification_lm

        return evaluate_classification_lm(answerer.model, answerer.task, examples, encoded, answerer.label_ids,
                                          answerer.feeder, answerer.batch_size, answerer.progress)

    def answer(self, answerer: Answerer, prompts: Sequence[Sequence[int]]) -> list[str]:
        from tuning_bench.engine.evaluation import label_logprobs

        scores = label_logprobs(answerer.model, [data.Encoded(list(p), []) for p in prompts], answerer.label_ids,
                                answerer.feeder, answerer.batch_size)
        return [answerer.task.labels[int(i)] for i in scores.argmax(dim=1)]


class EncoderClassification(Strategy):
    """An encoder classifies with its sequence-classification head."""

    model_kind = ModelKind.ENCODER
    task_kind = TaskKind.CLASSIFICATION

    def encode(self, context: PromptContext, task: Task, example: Example) -> data.Encoded:
        from tuning_bench.api.task import label_index

        ids, truncated = self._ids(context, task.render_input(example))
        return data.Encoded(ids, [], label_index(task, example), truncated)

    def encode_input(self, context: PromptContext, rendered: str) -> list[int]:
        return self._ids(context, rendered)[0]

    def _ids(self, context: PromptContext, rendered: str) -> tuple[list[int], bool]:
        ids = context.tokenizer(rendered, add_special_tokens=True).input_ids
        truncated = len(ids) > context.max_length
        if truncated:
            ids = ids[: context.max_length - 1] + ids[-1:]  # keep the closing separator token
        return ids, truncated

    def collate(self, items: Sequence[data.Encoded], pad_id: int) -> dict[str, Any]:
        return data.collate_encoder(items, pad_id)

    def loss(self, model: Any, batch: dict[str, Any], use_keep: bool) -> tuple[torch.Tensor, int]:
        return losses.encoder_class_loss(model, batch)

    def evaluate(self, answerer: Answerer, examples: Sequence[Example], encoded: Sequence[data.Encoded]
                 ) -> dict[str, Any]:
        from tuning_bench.engine.evaluation import evaluate_classification_encoder

        return evaluate_classification_encoder(answerer.model, answerer.task, examples, encoded, answerer.feeder,
                                               answerer.batch_size, answerer.progress)

    def answer(self, answerer: Answerer, prompts: Sequence[Sequence[int]]) -> list[str]:
        from tuning_bench.engine.evaluation import classify_with_head

        encoded = [data.Encoded(list(p), []) for p in prompts]
        return [answerer.task.labels[i] for i in classify_with_head(answerer.model, encoded, answerer.feeder,
                                                                     answerer.batch_size)]


_STRATEGIES: dict[tuple[ModelKind, TaskKind], Strategy] = {
    (s.model_kind, s.task_kind): s for s in (CausalGeneration(), CausalClassification(), EncoderClassification())
}


def unsupported(model_kind: ModelKind, task_kind: TaskKind) -> str | None:
    """Why no strategy serves this pair (a cell of it is not applicable), or None when one does."""
    if (model_kind, task_kind) in _STRATEGIES:
        return None
    if model_kind is ModelKind.ENCODER and task_kind is TaskKind.GENERATION:
        return "an encoder model cannot generate text"
    return f"no strategy for a {model_kind.value} model on a {task_kind.value} task"


def strategy_for(model_kind: ModelKind, task_kind: TaskKind) -> Strategy:
    """The strategy for a model kind and a task kind. Raises ValueError for a pair that has none (check
    ``unsupported`` first)."""
    try:
        return _STRATEGIES[(model_kind, task_kind)]
    except KeyError:
        raise ValueError(unsupported(model_kind, task_kind)) from None


def training_strategy(model_kind: ModelKind) -> Strategy:
    """A strategy whose collate and loss serve every task kind of ``model_kind`` (both causal strategies
    batch and train alike), for callers that know only the model kind."""
    task_kind = TaskKind.GENERATION if model_kind is ModelKind.CAUSAL_LM else TaskKind.CLASSIFICATION
    return strategy_for(model_kind, task_kind)
