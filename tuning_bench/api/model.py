"""The model-source interface: a name that turns into a model and its tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from tuning_bench.api.kinds import ModelKind, TaskKind


@dataclass
class LoadedModel:
    """A model ready for a method to adapt, with what the engine needs to feed it.

    ``fingerprint`` identifies the exact weights (for result caching); ``chat`` says whether the
    tokenizer has a chat template that the prompt format may use.
    """

    model: Any
    tokenizer: Any
    kind: ModelKind
    name: str
    fingerprint: str

    @property
    def chat(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def quantized(self) -> bool:
        """Whether the base weights were loaded quantized (``--base-quant``: bitsandbytes through transformers)."""
        return getattr(self.model, "hf_quantizer", None) is not None


class ModelSource:
    """Where a model comes from. Subclasses set ``name``, ``description`` and ``kind`` and implement ``load``.

    ``load`` receives the task kind and, for classification on an encoder, the labels (the
    sequence-classification head is sized from them). It must not need the network once its files are
    cached, and must never enable ``trust_remote_code`` unless it is passed as True.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    kind: ClassVar[ModelKind] = ModelKind.CAUSAL_LM

    def load(
        self,
        *,
        task_kind: TaskKind,
        labels: tuple[str, ...] = (),
        trust_remote_code: bool = False,
    ) -> LoadedModel:
        raise NotImplementedError

    def prepare(self, force: bool = False) -> None:
        """Fetch and fully verify the model's files, so that later ``load`` calls need no network.

        Called once per run in the main process, before any cell loads the model. ``force`` discards a
        cached copy and fetches again.
        """

    def fingerprint(self) -> str:
        """A stable identity of the weights this source loads (for caching results); default: the name."""
        return self.name

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "kind": self.kind.value}
