"""The shared base of methods built on a PEFT config: adapt with ``get_peft_model``, save PEFT's adapter format."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from tuning_bench.api.method import Method
from tuning_bench.api.model import LoadedModel
from tuning_bench.api.task import Task

PEFT_ADAPTER = "peft-adapter"


class PeftMethod(Method):
    """A method that is one PEFT config: subclasses implement ``peft_config`` and little else.

    The state is PEFT's own adapter format (``adapter_model.safetensors`` + ``adapter_config.json``,
    loadable with ``PeftModel.from_pretrained``). For sequence classification PEFT itself trains a
    copy of the classification head (``modules_to_save``), and the engine leaves that copy to it.
    """

    def peft_config(self, loaded: LoadedModel, task: Task, config: Mapping[str, Any]) -> Any:
        """The ``peft`` config for this model and task (import ``peft`` inside: listing must not load torch)."""
        raise NotImplementedError

    def adapt(self, loaded: LoadedModel, task: Task, config: Mapping[str, Any]) -> Any:
        from peft import get_peft_model

        return get_peft_model(loaded.model, self.peft_config(loaded, task, config))

    def save_state(self, adapted: Any, directory: Path) -> str:
        adapted.save_pretrained(directory)
        return PEFT_ADAPTER

    def load_state(self, loaded: LoadedModel, task: Task, config: Mapping[str, Any], directory: Path) -> Any:
        from peft import PeftModel

        return PeftModel.from_pretrained(loaded.model, directory)

    def merged(self, adapted: Any) -> AbstractContextManager[Any] | None:
        """PEFT's ``merge_adapter`` on entry and ``unmerge_adapter`` on exit, for tuners that change weights
        (LoRA family, IA3); None for prompt learning (prompt, prefix and P-tuning prepend inputs instead).
        Merging in place, not ``merge_and_unload`` on a copy, keeps the serving peak at one model."""
        if adapted.peft_config[adapted.active_adapter].is_prompt_learning:
            return None
        tuner = adapted.base_model
        if not hasattr(tuner, "merge_adapter"):
            return None
        return _merged_in_place(tuner)


@contextmanager
def _merged_in_place(tuner: Any) -> Iterator[Any]:
    try:
        # PEFT refuses some merges (ValueError: a target tied to the embeddings; NotImplementedError: IA3 on
        # a bitsandbytes layer); layers merged before the refusal are put back.
        tuner.merge_adapter()
    except Exception:
        tuner.unmerge_adapter()
        raise
    try:
        yield tuner
    finally:
        tuner.unmerge_adapter()
