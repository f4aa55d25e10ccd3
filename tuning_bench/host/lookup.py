"""Turning the names a user types into tasks, methods and model sources."""

from __future__ import annotations

from pathlib import Path

from tuning_bench.api.errors import UsageError, did_you_mean
from tuning_bench.models.hf import PretrainedSource, looks_like_pretrained
from tuning_bench.api.model import ModelSource
from tuning_bench.host.plugins import Catalog
from tuning_bench.api.task import Task


def resolve_model(catalog: Catalog, name: str, trust_remote_code: bool = False) -> ModelSource:
    """A registered model source, else a Hugging Face id (``org/name``) or a local folder."""
    if name in catalog.models:
        return catalog.models.get(name)
    if looks_like_pretrained(name):
        return PretrainedSource(name, trust_remote_code=trust_remote_code)
    err = did_you_mean("model", name, catalog.models.names())
    raise UsageError(f"{err} A Hugging Face id (org/name) or a local model folder also works.")


def resolve_task(catalog: Catalog, name: str) -> Task:
    """A registered task, or a YAML task file when ``name`` is a path ending in .yaml/.yml."""
    if name in catalog.tasks:
        return catalog.tasks.get(name)
    if name.endswith((".yaml", ".yml")):
        from tuning_bench.taskfiles.taskfile import load_task_file

        return load_task_file(Path(name))
    raise did_you_mean("task", name, catalog.tasks.names())


def split_names(value: str, option: str) -> list[str]:
    """A comma list from the command line, without blanks or repeats."""
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise UsageError(f"{option}: expected a comma-separated list of names, got '{value}'")
    return list(dict.fromkeys(names))
