"""Experiment trackers (``--log-to tensorboard,mlflow,wandb,trackio``): one tracker run per cell, grouped per
tbench run.

The driver writes a cell's tracker run from the cell's finished record (``execute`` calls
``Tracking.log``), so tracking works the same with every executor and needs nothing inside a cell
process. What a tracker run holds (``cell_log``): the cell's config as parameters; per step the train
loss and learning rate, the validation loss at each validation; the final quality metrics with their
95 % bootstrap intervals over the cell's test examples; and the cost figures of the record's
measurements. A tbench run is its output folder: TensorBoard gets ``OUT/tensorboard/<task>/<method>/
seed-N``, MLflow one experiment per output folder, W&B one group (``run_label``) in project ``tbench``, trackio
one project (``tbench-`` + ``run_label``).

Each tracker destination logs a cell once: ``OUT/.tracked.json`` lists the cells already logged, so
running the same command again (every cell cached) logs nothing twice, a cell that runs again
(``--force``, a retried failure) is logged again, and adding ``--log-to`` to a finished run logs its
cached cells. A tracker that fails warns and the run goes on: tracking never costs a result.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuning_bench.api.errors import UsageError, did_you_mean
from tuning_bench.run.records import CellRecord, Measurements

LEDGER = ".tracked.json"


@dataclass
class CellLog:
    """What one cell's tracker run holds, independent of the tracker."""

    name: str  # e.g. "product-descriptions/lora/seed 0"
    folder: str  # a relative path for trackers that store runs as folders, e.g. "product-descriptions/lora/seed-0"
    status: str
    tags: dict[str, str] = field(default_factory=dict)
    params: dict[str, str | int | float | bool] = field(default_factory=dict)
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # tag -> [(step, value)]
    final: dict[str, float] = field(default_factory=dict)  # tag -> value, logged at ``final_step``
    final_step: int = 0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, str | int | float | bool]:
    """Nested config as flat parameters (``method_config.r``); lists and None as their JSON text."""
    flat: dict[str, str | int | float | bool] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        elif isinstance(value, (str, int, float, bool)):
            flat[name] = value
        else:
            flat[name] = json.dumps(value, default=str)
    return flat


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


def run_label(out_dir: Path) -> str:
    """A tbench run's name for trackers that group by a short name (W&B group, trackio project): the output
    folder's name, made unique by a hash of its absolute path, e.g. ``latest-3f9c2a1b``. Letters, digits,
    ``-`` and ``_`` only: trackio names a project's files after what is left of its name."""
    folder = out_dir.resolve()
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", folder.name).strip("-")[:60] or "run"
    return f"{name}-{hashlib.sha256(str(folder).encode()).hexdigest()[:8]}"


def cell_log(cell: CellRecord, key: str, run: str) -> CellLog:
    """The tracker run of a cell record (``key``: the cell's cache key; ``run``: the tbench run it belongs to)."""
    trial = f"/{_slug(cell.trial)}" if cell.trial else ""
    log = CellLog(name=cell.label + (f" [{cell.trial}]" if cell.trial else ""),
                  folder=f"{_slug(cell.task)}/{_slug(cell.method)}/seed-{cell.seed}{trial}", status=cell.status)
    log.tags = {"tbench.run": run, "tbench.cell_key": key, "tbench.task": cell.task, "tbench.method": cell.method,
                "tbench.seed": str(cell.seed), "tbench.status": cell.status}
    if cell.trial:
        log.tags["tbench.trial"] = cell.trial
    if cell.error:
        log.tags["tbench.error"] = str(cell.error)[:500]
    log.params = _flatten(cell.config or {"task": cell.task, "method": cell.method, "seed": cell.seed})
    if cell.curves is not None:
        curves = cell.curves
        log.series["train/loss"] = [(step, v) for step, v in enumerate(map(_number, curves.train_loss), 1) if v is not None]
        log.series["train/learning_rate"] = [(step, v) for step, v in enumerate(map(_number, curves.learning_rate), 1)
                                             if v is not None]
        log.series["validation/loss"] = [(int(pair[0]), float(pair[1])) for pair in curves.val_loss
                                         if isinstance(pair, list) and len(pair) == 2 and _number(pair[1]) is not None]
        log.series = {tag: points for tag, points in log.series.items() if points}
    for metric, value in cell.quality.items():
        if _number(value) is not None:
            log.final[f"quality/{metric}"] = float(value)
    from tuning_bench.report.verdicts import cell_intervals  # numpy and the report: only once a cell is logged

    for metric, (low, high) in cell_intervals(cell).items():
        log.final[f"quality/{metric}_ci95_low"] = low
        log.final[f"quality/{metric}_ci95_high"] = high
    measurements = cell.measurements or Measurements()
    for name in Measurements.keys():
        value = _number(getattr(measurements, name))
        if value is not None:
            log.final[f"cost/{name}"] = value
    for phase in ("train", "eval"):
        peak = _number(measurements.peak(phase))
        if peak is not None:
            log.final[f"cost/{phase}_peak_bytes"] = peak
    log.final_step = measurements.steps or 0
    return log


# --- the trackers --------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrackerKind:
    """A tracker tbench can write to: the modules it needs and how to install them."""

    name: str
    modules: tuple[str, ...]
    install: str
    open: Callable[[Path], Any]
    # Checked before anything runs, once the modules are found: what stops this tracker from logging
    # (e.g. W&B asked to log online without credentials), or None.
    preflight: Callable[[], str | None] | None = None


def _tensorboard(out_dir: Path) -> Any:
    from tuning_bench.run.trackers import TensorBoardTracker

    return TensorBoardTracker(out_dir)


def _mlflow(out_dir: Path) -> Any:
    from tuning_bench.run.trackers import MlflowTracker

    return MlflowTracker(out_dir)


def _wandb(out_dir: Path) -> Any:
    from tuning_bench.run.trackers import WandbTracker

    return WandbTracker(out_dir)


def _wandb_preflight() -> str | None:
    from tuning_bench.run.trackers import wandb_problem

    return wandb_problem()


def _trackio(out_dir: Path) -> Any:
    from tuning_bench.run.trackers import TrackioTracker

    return TrackioTracker(out_dir)


TRACKERS = {
    "tensorboard": TrackerKind("tensorboard", ("tensorboard",), "pip install 'tuning-bench[tensorboard]'", _tensorboard),
    # MLflow's local store is SQLite (its file store is in maintenance mode), which needs SQLAlchemy and Alembic.
    "mlflow": TrackerKind("mlflow", ("mlflow", "sqlalchemy", "alembic"), "pip install 'tuning-bench[mlflow]'", _mlflow),
    "wandb": TrackerKind("wandb", ("wandb",), "pip install 'tuning-bench[wandb]'", _wandb, _wandb_preflight),
    "trackio": TrackerKind("trackio", ("trackio",), "pip install 'tuning-bench[trackio]'", _trackio),
}


def check_trackers(names: list[str]) -> None:
    """Refuse an unknown tracker name, or one whose package is not installed, before any work."""
    for name in names:
        if name not in TRACKERS:
            raise did_you_mean("tracker", name, TRACKERS, of=" in --log-to")
        kind = TRACKERS[name]
        missing = [module for module in kind.modules if importlib.util.find_spec(module) is None]
        if missing:
            raise UsageError(f"--log-to {name}: the {' and '.join(missing)} package{'s are' if len(missing) > 1 else ' is'} "
                             f"not installed; install {'them' if len(missing) > 1 else 'it'} with {kind.install}")
        problem = kind.preflight() if kind.preflight else None
        if problem:
            raise UsageError(f"--log-to {name}: {problem}")


class Tracking:
    """The trackers of one run. ``log`` writes a cell's tracker run to each destination that lacks it."""

    def __init__(self, names: list[str], out_dir: Path, warn: Callable[[str], None]):
        self.out_dir = out_dir
        self.run = str(out_dir.resolve())
        self.warn = warn
        self.trackers = [(name, TRACKERS[name].open(out_dir)) for name in names]
        self.ledger_path = out_dir / LEDGER
        self.ledger: dict[str, list[str]] = {}
        if self.trackers and self.ledger_path.exists():
            try:
                loaded = json.loads(self.ledger_path.read_text(encoding="utf-8"))
                self.ledger = {k: list(v) for k, v in loaded.items() if isinstance(v, list)}
            except (OSError, ValueError, AttributeError):
                self.ledger = {}  # unreadable: log again rather than not at all

    def log(self, cell: CellRecord, key: str, again: bool = False) -> None:
        """Write the cell's tracker run to every tracker that has not logged it (``again``: it ran anew)."""
        if not self.trackers:
            return
        log = None
        for name, tracker in self.trackers:
            logged = self.ledger.setdefault(f"{name} {tracker.destination}", [])
            if key in logged and not again:
                continue
            try:
                log = log or cell_log(cell, key, self.run)
                tracker.log(log)
            except Exception as exc:  # a tracker's failure (disk, server, version) must not cost the run
                reason = (str(exc).strip().splitlines() or [""])[0][:200]
                self.warn(f"--log-to {name}: could not log {cell.label} ({type(exc).__name__}: {reason}); "
                          "the run goes on")
                continue
            if key not in logged:
                logged.append(key)
            self._save()

    def _save(self) -> None:
        from tuning_bench.files import atomic_write_text

        try:
            atomic_write_text(self.ledger_path, json.dumps(self.ledger, indent=1) + "\n")
        except OSError as exc:
            self.warn(f"cannot write {self.ledger_path} ({exc.strerror or exc}); a later run may log cells twice")
