"""The Method interface: a way of adapting a model to a task, written like its paper's config."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, ClassVar

from tuning_bench.api.kinds import ModelKind, TaskKind
from tuning_bench.api.model import LoadedModel
from tuning_bench.api.options import Option
from tuning_bench.api.task import Example, Task


class Method:
    """A way of adapting a model. Subclasses are mostly their ``options``.

    Class attributes:
      name, description: as shown by ``tbench methods`` (description is one line).
      paper: where the method and its defaults come from.
      options: typed options with defaults; a trainable method has ``learning_rate`` among them.
      trains: False for hard-prompt baselines (no optimiser step; still measured).
      task_kinds, model_kinds: what the method supports; anything else is "not applicable".
      padded_generation: whether greedy generation in left-padded batches matches generating each
        prompt alone (the engine groups prompts of equal length when it does not).

    ``adapt`` returns the module to train and evaluate: a ``peft.PeftModel`` for PEFT methods (the
    engine saves and reloads those in PEFT's format), or the model itself with ``requires_grad`` set.
    ``context_examples`` returns worked examples shown in front of every input (few-shot prompting).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    trains: ClassVar[bool] = True
    task_kinds: ClassVar[frozenset[TaskKind]] = frozenset(TaskKind)
    model_kinds: ClassVar[frozenset[ModelKind]] = frozenset(ModelKind)
    padded_generation: ClassVar[bool] = True

    def not_applicable(self, task: Task, model_kind: ModelKind, config: Mapping[str, Any]) -> str | None:
        """Why this method cannot run on this task and model, or None when it can."""
        if model_kind not in self.model_kinds:
            kinds = ", ".join(sorted(k.value for k in self.model_kinds))
            return f"{self.name} needs a {kinds} model; this model is {model_kind.value}"
        if task.kind not in self.task_kinds:
            kinds = ", ".join(sorted(k.value for k in self.task_kinds))
            return f"{self.name} handles {kinds} tasks; {task.name} is {task.kind.value}"
        if model_kind is ModelKind.ENCODER and task.kind is TaskKind.GENERATION:
            return "an encoder model cannot generate text"
        return None

    def adapt(self, loaded: LoadedModel, task: Task, config: Mapping[str, Any]) -> Any:
        """Return the model to train for this task (PEFT wrapper or the model with grads set)."""
        raise NotImplementedError

    def context_examples(self, task: Task, config: Mapping[str, Any], seed: int) -> list[Example]:
        """Worked examples to show before every input; none by default."""
        return []

    @classmethod
    def option(cls, name: str) -> Option:
        for option in cls.options:
            if option.name == name:
                return option
        raise KeyError(name)

    @classmethod
    def summary(cls) -> dict[str, Any]:
        """A JSON-friendly description for listings."""
        return {
            "name": cls.name,
            "description": cls.description,
            "paper": cls.paper,
            "trains": cls.trains,
            "task_kinds": sorted(k.value for k in cls.task_kinds),
            "model_kinds": sorted(k.value for k in cls.model_kinds),
            "options": [
                {
                    "name": o.name,
                    "type": o.type.__name__,
                    "default": o.default,
                    "help": o.help,
                    "source": o.source,
                    **({"choices": list(o.choices)} if o.choices else {}),
                }
                for o in cls.options
            ],
        }


def learning_rate(default: float, source: str) -> Option:
    """The learning-rate option every trainable method declares, with its sourced default."""
    return Option(
        "learning_rate",
        float,
        default,
        "Peak AdamW learning rate (after warm-up, before decay).",
        source=source,
        minimum=1e-8,
        maximum=10.0,
    )


def sample_examples(examples: list[Example], k: int, seed: int) -> list[Example]:
    """k distinct examples drawn reproducibly from a list (e.g. the train split)."""
    if k > len(examples):
        raise ValueError(f"asked for {k} examples from a split of {len(examples)}")
    return random.Random(seed).sample(examples, k)


def peft_task_type(loaded: LoadedModel) -> str:
    """PEFT's task type for a loaded model: causal LM, or sequence classification for an encoder."""
    return "SEQ_CLS" if loaded.kind is ModelKind.ENCODER else "CAUSAL_LM"


def freeze(model: Any) -> Any:
    """Mark every parameter frozen (hard-prompt baselines train nothing)."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model
