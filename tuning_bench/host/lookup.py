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
    """A registered task, or a YAML task file when ``name`` is a path ending in .yaml/.yml.

    A registered task's examples are checked here, the first time it is resolved, as a task file's rows
    are when it loads: a broken one is one line naming its plugin, before anything runs. A metric that
    is neither shipped nor registered is loaded from the hub here too, so a bad name fails early.
    """
    from tuning_bench.metrics.registry import require_metrics
    from tuning_bench.taskfiles.taskfile import check_examples, load_task_file

    if name in catalog.tasks:
        task = catalog.tasks.get(name)
        if name not in catalog.checked_tasks:
            check_examples(task, f"plugin '{catalog.tasks.owner(name)}', task '{name}'")
            catalog.checked_tasks.add(name)
    elif name.endswith((".yaml", ".yml")):
        task = load_task_file(Path(name), {m.name: m.higher_is_better for m in catalog.metrics})
    else:
        raise did_you_mean("task", name, catalog.tasks.names())
    require_metrics(task.metrics, catalog.metrics.names())
    return task


def split_names(value: str, option: str) -> list[str]:
    """A comma list from the command line, without blanks or repeats."""
    names = [part.strip() for part in value.split(",") if part.strip()]
    if not names:
        raise UsageError(f"{option}: expected a comma-separated list of names, got '{value}'")
    return list(dict.fromkeys(names))
