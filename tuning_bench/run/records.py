"""The result records as typed dataclasses: a cell's record and the run document (results.json).

Every writer builds these and every reader reads their fields; the JSON they write is the schema
(``SCHEMA_VERSION``) and keeps the key layout of earlier tbench versions, so existing files and
scripts that read them keep working.

Reading is tolerant, on purpose (``run/jsonrecord``: unknown keys kept, absent ones unwritten,
key order kept); only what reports rely on is checked, with one clear line naming the file and the cell
(``UsageError``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tuning_bench.api.errors import UsageError
# The record machinery; ``Record`` and ``nested`` are imported from here too.
from tuning_bench.run.jsonrecord import Record, nested  # noqa: F401

SCHEMA = "tuning_bench.results"
SCHEMA_VERSION = 2  # 2: cells keep per-example scores; a top-level "verdicts" list
READABLE_VERSIONS = (1, 2)  # version 1 records still report, with a verdict that says it cannot be computed
STATUSES = ("ok", "failed", "not_applicable")
REQUIRED_CELL_KEYS = ("task", "method", "seed", "status", "error")


# --- The cell record ---------------------------------------------------------------------------

@dataclass
class Memory(Record):
    """Peak and baseline memory of a cell's phases. The keys depend on the device (see MemoryProbe),
    so besides ``device_type`` they live in ``extra``; ``peak`` and ``baseline`` pick the right one."""

    device_type: str | None = None

    def peak(self, phase: str) -> int | None:
        """A phase's peak: CUDA max allocated on a GPU, else the process's peak resident memory."""
        if self.device_type == "cuda":
            return self.extra.get(f"{phase}_peak_allocated_bytes")
        return self.extra.get(f"{phase}_peak_rss_bytes")

    def peak_reserved(self, phase: str) -> int | None:
        """A phase's peak of CUDA memory reserved by torch's caching allocator (allocated plus its cached
        blocks: what the GPU must have free to run it); None off CUDA."""
        return self.extra.get(f"{phase}_peak_reserved_bytes") if self.device_type == "cuda" else None

    @property
    def baseline(self) -> int | None:
        """Memory held after loading, before the measured phases."""
        return self.extra.get("cuda_baseline_allocated_bytes", self.extra.get("cpu_baseline_rss_bytes"))


@dataclass
class TaskRetention(Record):
    """One other registered task's zero-shot headline score on the base model (``before``) and on the
    trained model (``after``), over its first ``examples`` test examples; ``error`` when it could not be
    scored."""

    task: str = ""
    metric: str = ""
    higher_is_better: bool = True
    examples: int = 0
    before: float | None = None
    after: float | None = None
    change: float | None = None  # after - before, as the metric reads (higher_is_better says which way is good)
    error: str | None = None


@dataclass
class Retention(Record):
    """What training did to everything else (``measurements.retention`` of a trained cell; see
    docs/measurements.md, Retention). ``before`` is always the base model, measured before ``adapt``;
    ``after`` the model as evaluated. ``skipped`` says why nothing was measured (e.g. an encoder)."""

    probe_loss_before: float | None = None
    probe_loss_after: float | None = None
    probe_loss_change: float | None = None  # after - before: above 0 the model forgot some of what it said
    probe_texts: int | None = None
    probe_tokens: int | None = None
    probe_fingerprint: str | None = None
    tasks: list[TaskRetention] = nested(TaskRetention, many=True)
    tasks_change: float | None = None  # mean over tasks of the change towards better (negative: worse)
    seconds: float | None = None  # the time retention added to this cell (both sides; see base_reused)
    # True: the base side was measured by another cell of the run and read here (its seconds are then only
    # the reading and the other tasks' encoding); None: a record from before the base side was shared.
    base_reused: bool | None = None
    skipped: str | None = None


@dataclass
class Measurements(Record):
    """Cost figures of one cell. Generation-only, classification-only and training-only figures are
    written only by the cells that have them."""

    trainable_params: int | None = None
    total_params: int | None = None
    trainable_percent: float | None = None
    load_seconds: float | None = None
    tokenize_seconds: float | None = None
    token_cache_hit: bool | None = None
    truncated_examples: int | None = None
    memory: Memory = nested(Memory, default=None)
    eval_seconds: float | None = None
    eval_examples: int | None = None
    final_val_loss: float | None = None
    val_perplexity: float | None = None
    saved_bytes: int | None = None
    latency_seconds: float | None = None  # None: not measured (--quick)
    latency_new_tokens: int | None = None
    # Deployment cost (engine.deployment), written by cells that measured latency; the merged figures only
    # by methods that can merge (Method.merged).
    throughput_batch_size: int | None = None
    throughput_answers_per_second: float | None = None
    latency_merged_seconds: float | None = None
    throughput_answers_per_second_merged: float | None = None
    merged_outputs_match: bool | None = None
    merged_answers_differing: int | None = None
    merge_refused: str | None = None
    deployment_seconds: float | None = None
    generation_seconds: float | None = None
    generation_seconds_per_example: float | None = None
    generated_tokens: int | None = None
    classify_seconds: float | None = None
    train_seconds: float | None = None
    train_phase_seconds: float | None = None
    validation_seconds: float | None = None
    median_step_seconds: float | None = None
    tokens_per_second: float | None = None
    train_tokens: int | None = None
    train_target_tokens: int | None = None
    final_train_loss: float | None = None
    steps: int | None = None
    step_budget: int | None = None
    early_stopping: bool | None = None
    stopped_early: bool | None = None
    best_step: int | None = None
    best_val_loss: float | None = None
    seconds_to_best: float | None = None
    evaluated_step: int | None = None
    retention: Retention | None = nested(Retention)  # None: a method that does not train (nothing changed)

    @property
    def trained(self) -> bool:
        """Whether the cell ran any training step."""
        return bool(self.steps)

    def peak(self, phase: str) -> int | None:
        """A phase's ("train" or "eval") peak memory; None when not measured."""
        return self.memory.peak(phase) if self.memory is not None else None

    def peak_reserved(self, phase: str) -> int | None:
        """A phase's CUDA reserved peak (``Memory.peak_reserved``); None off CUDA or when not measured."""
        return self.memory.peak_reserved(phase) if self.memory is not None else None


@dataclass
class Headline(Record):
    """The task's headline metric and the cell's value of it."""

    metric: str = ""
    value: float | None = None
    higher_is_better: bool = True


@dataclass
class Curves(Record):
    """Loss curves: train loss per step (from 1), validation loss as [step, loss] pairs."""

    train_loss: list[float | None] = field(default_factory=list)
    val_loss: list[list[float]] = field(default_factory=list)
    learning_rate: list[float] = field(default_factory=list)


@dataclass
class Sample(Record):
    """One test input with its reference and the cell's prediction."""

    input: str = ""
    reference: str = ""
    prediction: str = ""


@dataclass
class PerExample(Record):
    """Per test example (schema 2): its index in the test split, the reference, each per-example
    metric's scores and corpus metrics' sufficient statistics (chrF's n-gram counts)."""

    index: list[int] = field(default_factory=list)
    references: list[Any] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)
    statistics: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class StateInfo(Record):
    """What the method saved: its kind, the files and their weight bytes, whether they were kept."""

    kind: str | None = None
    files: dict[str, int] = field(default_factory=dict)
    saved_bytes: int | None = None
    kept: bool = False
    path: str = "state"


@dataclass
class CellRecord(Record):
    """One cell's result (task x method x seed [x trial]). Fields from ``warnings`` on exist only for
    finished cells; ``key``, ``cached`` and ``selected`` are added by the runner."""

    task: str = ""
    method: str = ""
    family: str | None = None  # the method's family (Method.family); None: a record from before families
    seed: int = 0
    trial: str = ""
    status: str = "failed"
    error: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # the CellSpec as run
    warnings: list[str] = field(default_factory=list)
    method_config: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, float | None] = field(default_factory=dict)
    headline: Headline = nested(Headline)
    measurements: Measurements = nested(Measurements)
    curves: Curves = nested(Curves)
    samples: list[Sample] = nested(Sample, many=True)
    predictions: list[Any] = field(default_factory=list)
    per_example: PerExample | None = nested(PerExample)  # None: a version-1 record
    prompt: dict[str, Any] = field(default_factory=dict)
    guard: dict[str, Any] | None = None
    state: StateInfo | None = nested(StateInfo)
    classification_by: str | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    task_info: dict[str, Any] = field(default_factory=dict)
    model_info: dict[str, Any] = field(default_factory=dict)
    cell_seconds: float | None = None
    device: str | None = None  # the device that ran the cell, e.g. cuda:1 (None: written before tbench recorded it)
    executor: str | None = None  # local, in-process or ray (None: written before tbench recorded it)
    node: str | None = None  # the host name of the machine that ran the cell
    # "fresh": a process of its own; "reused": a device's process that ran earlier cells (--cell-process
    # device), whose host-memory figures start from what those left; None: not recorded (in-process, older runs).
    process: str | None = None
    # How many cells could run at once on the device that ran this one (its slots there: --jobs N, per GPU
    # on CUDA); 1: the device was the cell's alone. Above 1 its times were taken beside neighbours on the
    # device (memory figures stay its own). None: not recorded (in-process, Ray, older runs).
    device_shared_by: int | None = None
    attempts: int | None = None  # Ray: how many times the cell was started (more than 1: see retried)
    retried: list[dict[str, Any]] = field(default_factory=list)  # Ray: the attempts whose process, worker or node died
    key: str | None = None
    cached: bool | None = None
    selected: bool | None = None  # False: a sweep trial that was not chosen

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def shown(self) -> bool:
        """Whether reports show this cell (every cell but the sweep trials not chosen)."""
        return self.selected is not False

    @property
    def label(self) -> str:
        return f"{self.task}/{self.method}/seed {self.seed}"

    @classmethod
    def checked(cls, data: Any, source: str, index: int) -> CellRecord:
        """Read ``cells[index]`` of ``source``, raising one clear line for what reports cannot use."""
        if not isinstance(data, dict):
            raise UsageError(f"{source}: cells[{index}] must be an object")
        missing = [key for key in REQUIRED_CELL_KEYS if key not in data]
        if missing:
            raise UsageError(f"{source}: cells[{index}] lacks {', '.join(missing)}")
        if data["status"] not in STATUSES:
            raise UsageError(f"{source}: cells[{index}].status is {data['status']!r}; expected one of {', '.join(STATUSES)}")
        if data["status"] == "ok":
            for key in ("measurements", "quality", "headline"):
                if not isinstance(data.get(key), dict):
                    raise UsageError(f"{source}: cells[{index}] ({data['task']}/{data['method']}) has status ok but no '{key}' object")
        return cls.from_json(data)


# --- The run document ----------------------------------------------------------------------------

@dataclass
class RunInfo(Record):
    """The settings a run was made with (the ``run`` object of results.json)."""

    model: str | None = None
    model_fingerprint: str | None = None
    tasks: list[str] = field(default_factory=list)
    task_fingerprints: dict[str, str] = field(default_factory=dict)
    methods: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    steps: int | None = None
    epochs: float | None = None
    batch_size: int | None = None
    eval_examples: int | None = None
    val_examples: int | None = None
    val_every: int | None = None
    patience: int | None = None
    min_delta: float | None = None
    device: str | None = None
    precision: str | None = None
    precision_choice: dict[str, Any] | None = None
    base_quant: str | None = None  # --base-quant: nf4 or int8 (None: fp32 base weights)
    prompt_format: str | None = None
    max_length: int | None = None
    executor: str | None = None
    slots: list[str] | None = None  # where cells ran side by side: devices, or CPU core shares (--jobs)
    method_configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    sweep: dict[str, Any] | None = None
    wall_seconds: float | None = None
    cells_total: int | None = None
    cells_cached: int | None = None
    quick: bool = False


@dataclass
class RunDocument(Record):
    """results.json: the run's settings, environment, task summaries, sweep choices, verdicts, cells."""

    verdicts: list[dict[str, Any]] | None = None  # None: a version-1 file (no verdicts computed)
    schema: str = SCHEMA
    schema_version: int = SCHEMA_VERSION
    created: str | None = None
    command: str | None = None
    interrupted: bool = False
    pending: list[str] = field(default_factory=list)
    run: RunInfo = field(default_factory=RunInfo, metadata={"record": RunInfo})
    environment: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    sweep: list[dict[str, Any]] | None = None
    cells: list[CellRecord] = nested(CellRecord, many=True)

    @classmethod
    def checked(cls, data: Any, source: str) -> RunDocument:
        """Read a results document, raising one clear line (naming ``source``) for what reports cannot use."""
        if not isinstance(data, dict):
            raise UsageError(f"{source}: expected a JSON object at the top level, found {type(data).__name__}")
        if data.get("schema") != SCHEMA:
            raise UsageError(f"{source}: not a tbench results file (missing \"schema\": \"{SCHEMA}\")")
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise UsageError(f"{source}: schema_version {version!r} is not supported by this tbench "
                             f"(reads {', '.join(map(str, READABLE_VERSIONS))})")
        cells = data.get("cells")
        if not isinstance(cells, list):
            raise UsageError(f"{source}: key 'cells' must be a list of cell records")
        records = [CellRecord.checked(cell, source, index) for index, cell in enumerate(cells)]
        for key in ("environment", "run"):
            if not isinstance(data.get(key), dict):
                raise UsageError(f"{source}: key '{key}' must be an object")
        document = cls.from_json({**data, "cells": []})
        document.cells = records
        return document

    def shown_cells(self) -> list[CellRecord]:
        """The cells a report shows: every cell, except sweep trials that were not chosen."""
        return [c for c in self.cells if c.shown]

    def failed_cells(self) -> list[CellRecord]:
        """Every failed cell, sweep trials included, in record order."""
        return [c for c in self.cells if c.status == "failed"]


def as_document(data: RunDocument | dict[str, Any]) -> RunDocument:
    """A RunDocument from either a document or its JSON mapping.

    A mapping is read as it is, not checked (``RunDocument.checked`` and ``load_document`` check), so
    a script can hand the readers a partial mapping, e.g. ``csv_text({"cells": [...]})``, as before.
    """
    return data if isinstance(data, RunDocument) else RunDocument.from_json(data)


def as_cell(cell: CellRecord | dict[str, Any]) -> CellRecord:
    """A CellRecord from either a record or its JSON mapping (not checked)."""
    return cell if isinstance(cell, CellRecord) else CellRecord.from_json(cell)
