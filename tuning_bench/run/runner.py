"""A run: plan the grid of cells, skip the ones already done, execute the rest, assemble the results.

Finished cells are stored one file each under ``OUT/cells/`` keyed by everything that affects their
result, so a second invocation runs nothing, ``--force`` runs everything again, and an interrupted
run resumes with only the missing cells. Failed cells, and records that do not check out against
their cell, run again.
"""

from __future__ import annotations

import datetime
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuning_bench.engine.cell import CellSpec
from tuning_bench.engine.data import epoch_steps
from tuning_bench.api.errors import UsageError
from tuning_bench.run.cellcache import cell_key, read_record, record_path
from tuning_bench.run.executor import CellJob, Executor, InProcessExecutor, LocalExecutor
from tuning_bench.host.lookup import resolve_model, resolve_task
from tuning_bench.engine.precision import PrecisionChoice, choose_precision
from tuning_bench.api.model import ModelSource
from tuning_bench.host.plugins import Catalog, extra_modules
from tuning_bench.run import ray_executor
from tuning_bench.run.output import OutputLock, check_output_folder
from tuning_bench.run.planning import plan_methods, sweep_trials
from tuning_bench.run.records import CellRecord, RunDocument, RunInfo
from tuning_bench.run.results import clean_floats, csv_text, write_json
from tuning_bench.run.settings import SETTINGS, SWEEPS, RunSettings
from tuning_bench.run.slots import Slot, plan_slots
from tuning_bench.run.tracking import Tracking, check_trackers
from tuning_bench.api.task import Task


class Interrupted(Exception):
    """The run was stopped (Ctrl-C or SIGTERM); finished cells are saved."""

    def __init__(self, finished: int, total: int):
        super().__init__(f"interrupted: {finished} of {total} cells are finished and saved")
        self.finished = finished
        self.total = total


@dataclass
class Plan:
    """A validated run: the cells to run and the context they share."""

    settings: RunSettings
    out_dir: Path
    tasks: dict[str, Task]
    source: ModelSource
    jobs: list[CellJob]
    method_configs: dict[str, dict[str, Any]]
    sweep: dict[str, Any] | None
    command: str = ""
    task_fingerprints: dict[str, str] = field(default_factory=dict)
    precision_choice: PrecisionChoice | None = None
    slots: list[Slot] = field(default_factory=list)  # where cells run side by side (run.slots); one by default
    method_families: dict[str, str] = field(default_factory=dict)  # method name -> Method.family


def _resolve_device(requested: str, precision: str) -> tuple[str, PrecisionChoice]:
    import torch

    if requested == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif requested == "cpu" or requested.startswith("cuda"):
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise UsageError(f"--device {requested}: no CUDA device is available here; use --device cpu or auto")
        device = requested
    else:
        raise UsageError(f"--device {requested}: expected auto, cpu, cuda or cuda:N")
    return device, choose_precision(precision, device)


def plan_run(settings: RunSettings, catalog: Catalog, command: str = "") -> Plan:
    """Validate every name, option and number, and lay out the cells; raises UsageError before any work.

    The methods and their configurations (``--set``, ``--method-config``) are planned by ``run/planning``."""
    methods = plan_methods(settings, catalog)
    task_names = list(settings.tasks) + list(settings.task_files)
    if not task_names:
        raise UsageError("no task to run: give --tasks NAME[,NAME] or --task-file FILE.yaml")
    tasks = {name: resolve_task(catalog, name) for name in task_names}
    given_as: dict[str, str] = {}
    for given, task in tasks.items():
        if task.name in given_as:
            raise UsageError(f"{given_as[task.name]} and {given} both name their task '{task.name}'; "
                             "give each task file its own name: (tables and records tell tasks apart by it)")
        given_as[task.name] = given
    source = resolve_model(catalog, settings.model, settings.trust_remote_code)
    check_trackers(settings.log_to)
    ray_executor.check_settings(settings)
    if settings.cell_process != "auto" and settings.executor != "local":
        raise UsageError(f"--cell-process {settings.cell_process} applies to --executor local only; leave it out")
    if settings.devices:
        slots = plan_slots(settings.devices, settings.jobs, settings.device, settings.threads, settings.executor)
        # Cells are planned for the device type; the executor gives each its slot's device (cuda:N).
        device, precision_choice = "cuda", choose_precision(settings.precision, slots[0].device)
    elif settings.executor == "ray":
        device, precision_choice = ray_executor.plan_device(settings)  # the cluster's GPUs need not be here
        slots = plan_slots([], settings.jobs, device, settings.threads, settings.executor)
    else:
        device, precision_choice = _resolve_device(settings.device, settings.precision)
        slots = plan_slots([], settings.jobs, device, settings.threads, settings.executor)
    precision = precision_choice.precision
    sweep = None
    if settings.sweep:
        parameter, factors = SWEEPS[settings.sweep]
        sweep = {"name": settings.sweep, "parameter": parameter, "factors": list(factors)}
    out_dir = Path(settings.out)
    task_fingerprints = {name: task.fingerprint() for name, task in tasks.items()}
    model_fingerprint = source.fingerprint()
    token_cache = out_dir / ".cache"
    jobs = []
    for task_name in task_names:
        steps = (epoch_steps(settings.epochs, len(tasks[task_name].splits()["train"]), settings.batch_size)
                 if settings.epochs else settings.steps)
        val_every = settings.val_every or max(1, steps // (10 if settings.patience else 4))  # a curve, cheaply
        for method_name in methods.names:
            trials = sweep_trials(methods.method_of(method_name), methods.configs[method_name], sweep)
            for seed in settings.seeds:
                for trial, config in trials:
                    per_cell = {s.name: getattr(settings, s.name) for s in SETTINGS if s.per_cell}
                    per_cell.update(device=device, precision=precision,
                                    steps=steps, val_every=val_every)
                    spec = CellSpec(task=task_name, task_name=tasks[task_name].name, method=method_name, seed=seed,
                                    method_config=config, runs_as=methods.runs_as(method_name),
                                    plugin_modules=extra_modules(), trial=trial, **per_cell)
                    key = cell_key(spec, task_fingerprints[task_name], model_fingerprint)
                    jobs.append(CellJob(spec, key, out_dir / "cells" / key, token_cache))
    return Plan(settings, out_dir, tasks, source, jobs, methods.configs, sweep, command, task_fingerprints,
                precision_choice, slots, methods.families)


def _select_sweep(plan: Plan, records: dict[str, CellRecord]) -> list[dict[str, Any]]:
    """Pick, per task and method, the trial with the lowest mean final validation loss over seeds."""
    summaries = []
    groups: dict[tuple[str, str], dict[str, list[CellJob]]] = {}
    for job in plan.jobs:
        groups.setdefault((job.spec.named_task, job.spec.method), {}).setdefault(job.spec.trial, []).append(job)
    for (task, method), trials in groups.items():
        tried = []
        for trial, jobs in trials.items():
            losses = [_final_val_loss(records.get(j.key)) for j in jobs]
            ok = [v for v in losses if v is not None]
            value = jobs[0].spec.method_config.get(plan.sweep["parameter"]) if trial else None
            tried.append({"trial": trial, "value": value, "mean_val_loss": statistics.fmean(ok) if ok else None,
                          "cells_ok": len(ok)})
        scored = [t for t in tried if t["mean_val_loss"] is not None]
        chosen = min(scored, key=lambda t: t["mean_val_loss"])["trial"] if scored else tried[0]["trial"]
        for trial, jobs in trials.items():
            for job in jobs:
                if job.key in records:
                    records[job.key].assign("selected", trial == chosen)
        summaries.append({"task": task, "method": method, "parameter": plan.sweep["parameter"], "tried": tried,
                          "chosen": chosen, "selected_by": "lowest mean final validation loss over seeds"})
    return summaries


def _final_val_loss(record: CellRecord | None) -> float | None:
    return record.measurements.final_val_loss if record is not None and record.measurements is not None else None


def assemble(plan: Plan, records: dict[str, CellRecord], cached: set[str], wall_seconds: float,
             interrupted: bool = False) -> dict[str, Any]:
    """The results.json document for the plan (as JSON), from the records finished so far."""
    import torch

    from tuning_bench.engine.measure import environment

    sweep = _select_sweep(plan, records) if plan.sweep else None
    cells = []
    for job in plan.jobs:
        record = records.get(job.key)
        if record is not None:
            cell = record.copy()
            cell.assign("key", job.key)
            cell.assign("cached", job.key in cached)
            if cell.family is None and job.spec.method in plan.method_families:
                cell.assign("family", plan.method_families[job.spec.method])  # a failed or older cell
            cells.append(cell)
    first_env = next((c.environment for c in cells if c.environment), None)
    device = torch.device(plan.jobs[0].spec.device if plan.jobs else "cpu")
    if device.type == "cuda" and not torch.cuda.is_available():
        device = torch.device("cpu")  # a Ray driver without the cluster's GPUs describes its own machine
    s = plan.settings
    run = RunInfo(
        model=s.model, model_fingerprint=plan.source.fingerprint(),
        tasks=[task.name for task in plan.tasks.values()],
        task_fingerprints={plan.tasks[given].name: fingerprint for given, fingerprint in plan.task_fingerprints.items()},
        methods=list(plan.method_configs), seeds=s.seeds, steps=s.steps, epochs=s.epochs, batch_size=s.batch_size,
        eval_examples=s.eval_examples, val_examples=s.val_examples, val_every=s.val_every,
        patience=s.patience, min_delta=s.min_delta,
        device=device.type, precision=plan.jobs[0].spec.precision if plan.jobs else s.precision,
        precision_choice=plan.precision_choice.as_record() if plan.precision_choice else None,
        base_quant=s.base_quant,
        prompt_format=s.prompt_format, max_length=s.max_length, executor=s.executor,
        slots=[slot.label for slot in plan.slots] or None,
        method_configs=plan.method_configs, sweep=plan.sweep, wall_seconds=wall_seconds,
        cells_total=len(plan.jobs), cells_cached=len(cached & set(records)), quick=s.quick,
    )
    document = RunDocument(
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        command=plan.command,
        interrupted=interrupted,
        pending=[job.spec.label for job in plan.jobs if job.key not in records],
        run=run,
        environment=first_env or environment(device),
        tasks={task.name: task.summary() for task in plan.tasks.values()},
        sweep=sweep,
        cells=cells,
    )
    from tuning_bench.report.verdicts import build_verdicts

    # The verdicts come first in the file, as in every report: they answer the question the run asked.
    document.verdicts = build_verdicts(document)
    return clean_floats(document.to_json())


def write_outputs(out_dir: Path, data: dict[str, Any], reports: bool = True) -> None:
    """results.json, results.csv and (unless a run is still going) the reports."""
    from tuning_bench.files import atomic_write_text

    write_json(out_dir / "results.json", data)
    atomic_write_text(out_dir / "results.csv", csv_text(data))
    if reports:
        from tuning_bench.report import write_reports

        write_reports(out_dir, data)


def make_executor(name: str, slots: list[Slot] | None = None, settings: RunSettings | None = None) -> Executor:
    """The executor named by ``--executor``; the local one runs a cell per slot at a time, the Ray one
    reads its resources and cluster from ``settings``."""
    if name == "ray":
        from tuning_bench.run.ray_executor import RayExecutor

        return RayExecutor.from_settings(settings) if settings is not None else RayExecutor()
    if name == "in-process":
        return InProcessExecutor()
    return LocalExecutor(slots, cell_process=settings.cell_process if settings is not None else "auto")


class RunView:
    """What a run reports as it goes; the CLI passes a rich live view, tests a silent one."""

    def prepare(self, plan: Plan, todo: list[CellJob], done: list[CellJob]) -> None: ...
    def start(self, job: CellJob, index: int, total: int, where: str | None = None) -> None:
        """Cell ``index`` of ``total`` started (``where``: its device or slot, when the executor says)."""

    def event(self, job: CellJob, event: dict[str, Any]) -> None: ...
    def finish(self, job: CellJob, record: dict[str, Any]) -> None: ...
    def close(self) -> None: ...

    def warn(self, message: str) -> None:
        """Something the user should know that does not stop the run (e.g. a cached record not trusted)."""
        print(f"warning: {message}", file=sys.stderr)


class _WriteFailed(Exception):
    def __init__(self, error: OSError):
        self.error = error


def _writing(write: Callable[[], None]) -> None:
    """Run a write of the run's own files, marking its OSError as such (not one of the executor's)."""
    try:
        write()
    except OSError as exc:
        raise _WriteFailed(exc) from exc


def _write_failed(failure: _WriteFailed, plan: Plan, finished: int) -> UsageError:
    exc = failure.error
    where = exc.filename or plan.out_dir
    return UsageError(f"cannot write {where} ({exc.strerror or exc}); free space there or choose another --out "
                      f"({finished} finished cells are saved; the same command resumes)")


def execute(plan: Plan, executor: Executor | None = None, view: RunView | None = None, force: bool = False,
            prepare_model: bool = True, out_overwrite: bool = False) -> dict[str, Any]:
    """Run the plan's missing cells and write results.json, results.csv and the reports.

    Cached records are reused only when they check out (see ``_read_record``); failed cells run again.
    A filesystem error while writing (a full disk) ends the run with one line; finished cells stay saved.
    """
    view = view or RunView()
    executor = executor or make_executor(plan.settings.executor, plan.slots, plan.settings)
    started = time.perf_counter()
    check_output_folder(plan.out_dir, out_overwrite)
    created = not plan.out_dir.exists()
    with OutputLock(plan.out_dir) as lock:
        records: dict[str, CellRecord] = {}
        cached: set[str] = set()
        todo: list[CellJob] = []
        for job in plan.jobs:
            record, problem = (None, None) if force else read_record(job)
            if problem:
                view.warn(problem)
            if record is not None:
                records[job.key] = record
                cached.add(job.key)
            else:
                todo.append(job)
        if todo and hasattr(executor, "start"):
            executor.start()  # the fork server's imports (seconds) overlap with verifying the model below
        if todo and prepare_model:
            try:
                plan.source.prepare()  # fetch and verify once, in this process, before any cell loads
            except Exception:
                if created:  # leave no empty output folder behind a model that could not be had
                    lock.remove_if_empty()
                raise
        view.prepare(plan, todo, [j for j in plan.jobs if j.key in cached])
        tracking = Tracking(plan.settings.log_to, plan.out_dir, view.warn)
        for job in plan.jobs:
            if job.key in cached:  # logged once per tracker: a cached cell only if that tracker lacks it
                tracking.log(records[job.key], job.key)
        starts = iter(range(len(todo)))

        def on_event(job: CellJob, event: dict[str, Any]) -> None:
            if event.get("event") == "start":  # cells in parallel slots start out of plan order
                view.start(job, next(starts, len(todo) - 1), len(todo),
                           where=event.get("slot") or event.get("device"))
            else:
                view.event(job, event)

        results = executor.run(todo, on_event)
        finished = results if getattr(executor, "announces_starts", False) else _started(results, todo, view)
        saved = len(records)
        try:
            for index, (job, record) in enumerate(finished):
                # Where the cell ran; an executor spread over machines (Ray) says so itself.
                record = {**record, "executor": record.get("executor") or executor.name,
                          "node": record.get("node") or platform.node()}
                records[job.key] = CellRecord.from_json(record)  # the executor hands JSON across processes
                _writing(lambda: write_json(record_path(job), clean_floats({**record, "key": job.key})))
                saved += 1
                view.finish(job, record)
                tracking.log(records[job.key], job.key, again=True)
                if index + 1 < len(todo):  # keep results.json current, so an interrupted run leaves a valid file
                    data = assemble(plan, records, cached, time.perf_counter() - started)
                    _writing(lambda: write_outputs(plan.out_dir, data, reports=False))
        except KeyboardInterrupt:
            results.close()
            view.close()
            data = assemble(plan, records, cached, time.perf_counter() - started, interrupted=True)
            write_outputs(plan.out_dir, data, reports=False)
            raise Interrupted(len(records), len(plan.jobs)) from None
        except _WriteFailed as exc:
            results.close()
            view.close()
            raise _write_failed(exc, plan, saved) from None
        view.close()
        data = assemble(plan, records, cached, time.perf_counter() - started)
        try:
            _writing(lambda: write_outputs(plan.out_dir, data))
        except _WriteFailed as exc:
            raise _write_failed(exc, plan, saved) from None
        return data


def _started(results, todo: list[CellJob], view: RunView):
    """For an executor that does not announce starts: tell the view when each cell starts (one after
    another, in order) and pass results through."""
    total = len(todo)
    if total:
        view.start(todo[0], 0, total)
    for index, item in enumerate(results):
        yield item
        if index + 1 < total:
            view.start(todo[index + 1], index + 1, total)


def failed_cells(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in data["cells"] if c["status"] == "failed"]


def print_failures(data: dict[str, Any], out: Callable[[str], None] = lambda s: print(s, file=sys.stderr)) -> None:
    for cell in failed_cells(data):
        out(f"failed: {cell['task']}/{cell['method']}/seed {cell['seed']}: {cell['error']}")
