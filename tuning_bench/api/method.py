"""The Method interface: a way of adapting a model to a task, written like its paper's config."""

from __future__ import annotations

import random
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar

from tuning_bench.api.kinds import ModelKind, TaskKind
from tuning_bench.api.model import LoadedModel
from tuning_bench.api.options import Option, resolve_options
from tuning_bench.api.task import Example, Task

# The kinds of saved state the engine knows how to keep or delete (``--keep``); a method may name others.
TRAINED_TENSORS = "trained-tensors"
PROMPT_ONLY = "prompt-only"
FULL_MODEL = "full-model"  # a whole copy of the model: deleted under --keep adapters
TRAINED_TENSORS_FILE = "state.safetensors"

# Method families, in the order listings and reports group them: like is compared with like.
NO_WEIGHT_CHANGE = "no weight change"  # a fixed or searched prompt; the model is untouched (zero-shot, few-shot)
SOFT_PROMPT = "soft prompt"  # trained virtual tokens or prefixes in front of the input (prompt, prefix, ptuning)
ADAPTER = "adapter"  # new weights added to or reparameterising layers (LoRA and its variants, IA3, VeRA, OFT)
SELECTIVE = "selective"  # a chosen subset of the model's own weights trains (BitFit, LN tuning)
FULL = "full"  # every weight trains
OTHER = "other"  # a method that declares no family
FAMILIES = (NO_WEIGHT_CHANGE, SOFT_PROMPT, ADAPTER, SELECTIVE, FULL, OTHER)


class Method:
    """A way of adapting a model. Subclasses are mostly their ``options`` and one ``adapt``.

    Class attributes:
      name, description: as shown by ``tbench methods`` (description is one line).
      paper: where the method and its defaults come from.
      options: typed options with defaults; a trainable method has ``learning_rate`` among them.
      trains: False for hard-prompt baselines (no optimiser step; still measured).
      family: one of FAMILIES ("no weight change", "soft prompt", "adapter", "selective", "full";
        "other" when undeclared): listings and reports group methods by it, so like is compared with like.
      task_kinds, model_kinds: what the method supports; anything else is "not applicable".
      decoding: how the engine generates with the adapted model: "generate" (the model's own
        ``generate`` in left-padded batches; the safe default), "engine" (the engine's cached greedy
        loop through the model's forward, which must take transformers' ``past_key_values``,
        ``position_ids`` and ``logits_to_keep`` as a causal LM does: finished rows leave the batch, so
        evaluation is faster), "unpadded" (``generate``, but only prompts of equal length share a
        batch) or "soft-prompt" (the engine's own loop for models that prepend virtual tokens: PEFT's
        ``generate`` shifts them in padded rows). The generation guard checks whichever is declared.
        A method whose decoding depends on its config overrides ``decoding_for``.
      in_default_run: False keeps the method out of a run that names no methods (one that needs a
        configuration first, like ``peft``, or whose cost the default run's 10-minute budget has no room
        for, like ``hard-prompt`` and the variants DoRA, VeRA, ...); setting one of its options with
        ``--set`` brings it in.
      config_file_option: the option that takes a whole configuration file, if any: ``--method-config
        NAME=FILE`` runs the method under the name NAME with that option set to FILE.

    What a method may override, each with a default that suits a method which sets
    ``requires_grad`` on some of the model's own parameters:
      ``adapt``: the module to train and evaluate (required).
      ``not_applicable_to``: a reason to skip the cell once the model is loaded (nothing to train).
      ``parameter_groups`` and ``on_step``: optimiser groups (own learning rates) and a per-step hook.
      ``save_state`` and ``load_state``: the trained state on disk; by default the tensors that require
        grad as one safetensors file, so the saved size is what the method trains (``PeftMethod`` keeps
        PEFT's adapter format).
      ``context_examples``: worked examples shown in front of every input (few-shot prompting).
      ``learned_prompt``: the readable prompt a method trained (a hard prompt), for the record and reports.
      ``resolve_config``: the config from the option overrides (by default each override must be one of
        ``options``; a method with open-ended options, such as any field of a PEFT config, checks them here).
      ``merged``: the adapted model with its update folded into the base weights, as it would be served
        (deployment cost); by default the method has nothing to merge.

    On an encoder (sequence classification) the engine, not the method, trains the new classification
    head of every trained method: after ``adapt`` it unfreezes the modules named ``classifier`` or
    ``score``, unless PEFT already trains a copy of them (``modules_to_save``). The head is therefore
    part of the saved state.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    options: ClassVar[tuple[Option, ...]] = ()
    trains: ClassVar[bool] = True
    family: ClassVar[str] = OTHER
    in_default_run: ClassVar[bool] = True
    task_kinds: ClassVar[frozenset[TaskKind]] = frozenset(TaskKind)
    model_kinds: ClassVar[frozenset[ModelKind]] = frozenset(ModelKind)
    decoding: ClassVar[str] = "generate"
    config_file_option: ClassVar[str] = ""

    def not_applicable(self, task: Task, model_kind: ModelKind, config: Mapping[str, Any]) -> str | None:
        """Why this method cannot run on this task and model (the kinds it declares), or None when it can.
        Pairs the engine has no strategy for (an encoder on a generation task) it marks not applicable itself."""
        if model_kind not in self.model_kinds:
            kinds = ", ".join(sorted(k.value for k in self.model_kinds))
            return f"{self.name} needs a {kinds} model; this model is {model_kind.value}"
        if task.kind not in self.task_kinds:
            kinds = ", ".join(sorted(k.value for k in self.task_kinds))
            return f"{self.name} handles {kinds} tasks; {task.name} is {task.kind.value}"
        return None  # whether the engine can run this model kind on this task kind at all is its strategies' call

    def resolve_config(self, overrides: Mapping[str, Any], where: str = "--set") -> dict[str, Any]:
        """The defaults with ``overrides`` applied, each checked (a ``UsageError`` of one line otherwise).

        Called when a run is planned and again in the cell's process with the planned config, so the result
        must resolve to itself. ``where`` names the source of the overrides for the error message.
        """
        return resolve_options(self.name, self.options, overrides, where)

    def decoding_for(self, config: Mapping[str, Any]) -> str:
        """How the engine generates with the model adapted under this config (see ``decoding``)."""
        return self.decoding

    def adapt(self, loaded: LoadedModel, task: Task, config: Mapping[str, Any]) -> Any:
        """Return the model to train for this task (PEFT wrapper or the model with grads set)."""
        raise NotImplementedError

    def context_examples(self, task: Task, config: Mapping[str, Any], seed: int) -> list[Example]:
        """Worked examples to show before every input; none by default."""
        return []

    def learned_prompt(self, adapted: Any, tokenizer: Any) -> dict[str, Any] | None:
        """The prompt the method learned, as ``{"text": ..., "token_ids": [...]}``, or None (the default: a
        method that learns weights, or a fixed prompt). Asked after evaluation; the engine records it with
        the cell's prompt (``prompt.learned``) and the reports show it beside the answers."""
        return None

    def not_applicable_to(self, loaded: LoadedModel, task: Task, config: Mapping[str, Any]) -> str | None:
        """Why this method cannot adapt this loaded model (e.g. it has none of the weights the method
        trains), or None when it can. Checked after loading, before ``adapt``; a reason marks the cell
        not applicable."""
        return None

    def merged(self, adapted: Any) -> AbstractContextManager[Any] | None:
        """A context in which ``adapted`` answers with the method's update merged into the base weights, as it
        would be served (LoRA's B·A added to W, IA3's vectors multiplied in), and is restored on leaving it;
        None when there is nothing to merge (soft prompts and prefixes stay separate inputs; full fine-tuning
        already is its own merged model). The engine times answers inside it and checks that they equal the
        unmerged answers (docs/measurements.md, Deployment cost)."""
        return None

    def parameter_groups(self, model: Any, config: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The optimiser's parameter groups (``torch.optim`` dicts: "params" and optionally "lr").

        Default: one group of every parameter that requires grad, at the method's learning rate. A
        method with its own rate for some tensors (LoRA+: a higher rate for B) returns several.
        """
        return [{"params": [p for p in model.parameters() if p.requires_grad], "lr": config["learning_rate"]}]

    def on_step(self, model: Any, step: int, total: int) -> None:
        """Called after each optimiser step (``step`` counts from 1 to ``total``), before gradients are
        cleared, so a method can reshape itself while training (AdaLoRA's rank update). Default: nothing."""

    def save_state(self, adapted: Any, directory: Path) -> str:
        """Write what the method trained into ``directory`` (which exists) and return the state's kind.

        Default: the tensors that require grad, in ``state.safetensors`` with small metadata
        (kind "trained-tensors"); nothing for a method that does not train (kind "prompt-only": the
        engine saves the prompt context of every state).
        """
        if not self.trains:
            return PROMPT_ONLY
        from safetensors.torch import save_file

        tensors = {name: p.detach().contiguous().cpu() for name, p in adapted.named_parameters() if p.requires_grad}
        save_file(tensors, str(directory / TRAINED_TENSORS_FILE), metadata={"format": "tbench-trained-tensors",
                                                                            "method": self.name})
        return TRAINED_TENSORS

    def load_state(self, loaded: LoadedModel, task: Task, config: Mapping[str, Any], directory: Path) -> Any:
        """Rebuild the trained model from a fresh ``loaded`` base model and ``directory`` (the inverse of
        ``save_state``). Default: ``adapt`` again, then put the saved tensors in place."""
        adapted = self.adapt(loaded, task, config)
        if not self.trains:
            return adapted
        from safetensors.torch import load_file

        tensors = load_file(str(directory / TRAINED_TENSORS_FILE))
        unexpected = adapted.load_state_dict(tensors, strict=False).unexpected_keys
        if unexpected:
            raise ValueError(f"the saved state of {self.name} has tensors this model lacks: {', '.join(unexpected[:3])}")
        return adapted

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
            "family": cls.family,
            "in_default_run": cls.in_default_run,
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
