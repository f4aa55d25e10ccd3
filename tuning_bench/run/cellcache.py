"""The cache of finished cells: each cell's key, and whether a stored record may stand for it.

A cell's key is a hash of everything its result depends on (its settings minus those marked
``affects_result=False``, the task's and the model's fingerprints, package versions); its record is stored
as ``OUT/cells/KEY.json``. A stored record is reused only when it checks out against the cell it is
found for (``read_record``); anything else runs again.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from tuning_bench import __version__
from tuning_bench.api.errors import UsageError
from tuning_bench.engine.cell import CellSpec
from tuning_bench.engine.measure import package_versions
from tuning_bench.run.executor import CellJob
from tuning_bench.run.records import CellRecord, RunDocument
from tuning_bench.run.results import SCHEMA, SCHEMA_VERSION, clean_floats
from tuning_bench.run.settings import outside_cache_key
from tuning_bench.run.slots import device_type


def outside_key() -> set[str]:
    """CellSpec fields that change what is printed or kept, not the result: out of the key and the cache check."""
    return outside_cache_key() | {f.name for f in fields(CellSpec) if f.metadata.get("outside_cache_key")}


def key_config(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a cell's config that its result depends on (the cache key's, and the cached record's check).

    Settings marked affects_result=False (and CellSpec fields marked so) change what is printed or kept,
    not the result; leaving them out keeps a cached cell valid when only they change. Of the device only
    the type counts: a cell that ran on cuda:1 gives the same result on cuda:0 (devices of one run are
    one kind; a different GPU model shows in the record's environment), so it is reused there.
    """
    kept = {name: value for name, value in config.items() if name not in outside_key()}
    for added_later in ("runs_as", "base_quant"):
        if not kept.get(added_later):
            # absent before --method-config and --base-quant existed: cells that use neither keep their keys
            kept.pop(added_later, None)
    if isinstance(kept.get("device"), str):
        kept["device"] = device_type(kept["device"])
    return kept


def cell_key(spec: CellSpec, task_fingerprint: str, model_fingerprint: str) -> str:
    import hashlib

    config = key_config(spec.to_dict())
    blob = json.dumps({"cell": config, "task": task_fingerprint, "model": model_fingerprint,
                       "versions": package_versions(), "tuning_bench": __version__}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def record_path(job: CellJob) -> Path:
    return job.cell_dir.parent / f"{job.key}.json"


REUSABLE_STATUSES = ("ok", "not_applicable")  # a failed cell is tried again by the next run


def comparable(value: Any) -> Any:
    """A value as it reads back from a record file, so a spec and a stored config compare equal."""
    return json.loads(json.dumps(clean_floats(value), default=str))


def read_record(job: CellJob) -> tuple[CellRecord | None, str | None]:
    """The cached record of a cell and None, or None and why the cell must run (None when never run).

    A record is reused only if it is schema-valid, finished (ok or not_applicable) and carries this
    cell's key, task, method, seed, trial and config: a file edited, damaged or copied from another
    cell is run again rather than trusted.
    """
    path = record_path(job)
    if not path.exists():
        return None, None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return None, f"{path} is unreadable ({type(exc).__name__}); the cell runs again"
    try:
        # Checked as the one cell of a document, so the messages name it as reports do (cells[0]).
        [cell] = RunDocument.checked({"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "cells": [record],
                                      "environment": {}, "run": {}}, str(path)).cells
    except UsageError as exc:
        return None, f"{exc}; the cell runs again"
    if cell.status not in REUSABLE_STATUSES:
        return None, None  # an earlier failure is retried, not reported as a cached result
    if cell.ok and not cell.present("per_example"):
        return None, f"{path} was written before per-example scores (schema 1); the cell runs again for its verdict"
    expected = {"key": job.key, "task": job.spec.named_task, "method": job.spec.method, "seed": job.spec.seed,
                "trial": job.spec.trial}
    for name, value in expected.items():
        stored = getattr(cell, name) if cell.present(name) else None
        if stored != value:
            return None, (f"{path} holds {name} {stored!r}, not {value!r} (copied or edited); "
                          "the cell runs again")
    config = key_config(comparable(job.spec.to_dict()))
    stored = cell.config if cell.present("config") else None
    if not isinstance(stored, dict) or key_config(stored) != config:
        return None, f"{path} holds another cell configuration (copied or edited); the cell runs again"
    return cell, None
