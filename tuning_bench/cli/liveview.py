"""The live terminal view of a run: which cell, its phase and step, loss, elapsed and estimated time."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.text import Text

from tuning_bench.cli.console import stderr, warn
from tuning_bench.run.executor import CellJob
from tuning_bench.run.runner import Plan, RunView

_STATUS_STYLE = {"ok": "green", "failed": "red", "not_applicable": "yellow"}


class CountColumn(ProgressColumn):
    """"12/80" where the phase has a known total (training steps, test examples); nothing where it has
    none (loading a model), rather than rich's "0/?"."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        return MofNCompleteColumn().render(task)


class LiveView(RunView):
    """A progress bar of cells, one of steps per running cell (several with --devices, --jobs or
    --executor ray), and a line per finished cell."""

    def __init__(self) -> None:
        self.cells = Progress(TextColumn("[bold]cells"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                              TextColumn("eta"), TimeRemainingColumn(), console=stderr)
        self.steps = Progress(TextColumn("{task.description}"), BarColumn(), CountColumn(),
                              TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), TextColumn("eta"),
                              TimeRemainingColumn(), console=stderr)
        self.live: Live | None = None
        self.cells_task = None
        self.step_tasks: dict[str, Any] = {}  # job key -> its steps bar, while the cell runs
        self.cell_started: dict[str, float] = {}
        self.devices: dict[str, str] = {}  # job key -> its device or core share, shown when cells run side by side
        self.parallel = False  # several slots: a bar per running cell, each named with its slot

    def prepare(self, plan: Plan, todo: list[CellJob], done: list[CellJob]) -> None:
        if done:
            stderr.print(escape(f"{len(done)} of {len(plan.jobs)} cells already finished in {plan.out_dir} (skipped; --force re-runs them)"))
        if not todo:
            return
        if plan.precision_choice and plan.precision_choice.warning:
            warn(escape(plan.precision_choice.warning))
        where = plan.jobs[0].spec.device
        if len(plan.slots) > 1:
            where = f"{len(plan.slots)} slots side by side ({', '.join(slot.label for slot in plan.slots)})"
        on_ray = getattr(plan.settings, "executor", "local") == "ray"
        if on_ray:
            where = f"{where} as Ray tasks ({plan.settings.ray_address or 'the default Ray cluster'})"
        # Ray runs as many cells at once as the cluster holds: a bar per running cell, named with its node.
        self.parallel = len(plan.slots) > 1 or on_ray
        stderr.print(escape(f"running {len(todo)} cells on {where} ({plan.jobs[0].spec.precision}), "
                            f"{plan.settings.steps} steps each, results in {plan.out_dir}"))
        self.cells_task = self.cells.add_task("cells", total=len(todo))
        self.live = Live(Group(self.cells, self.steps), console=stderr, refresh_per_second=4, transient=True)
        self.live.start()

    def _name(self, job: CellJob) -> str:
        device = self.devices.get(job.key)
        return escape(f"{job.spec.label} on {device}" if self.parallel and device else job.spec.label)

    def start(self, job: CellJob, index: int, total: int, where: str | None = None) -> None:
        self.cell_started[job.key] = time.perf_counter()
        if where:
            self.devices[job.key] = where
        if not self.parallel:  # one cell at a time: its bar stays until the next starts, as before
            for key in list(self.step_tasks):
                self.steps.remove_task(self.step_tasks.pop(key))
        elif job.key in self.step_tasks:  # started again (Ray retries a cell whose worker died)
            self.steps.remove_task(self.step_tasks.pop(job.key))
        self.step_tasks[job.key] = self.steps.add_task(f"{self._name(job)}: starting", total=None, loss="")

    def event(self, job: CellJob, event: dict[str, Any]) -> None:
        task = self.step_tasks.get(job.key)
        if task is None:
            return
        if event.get("event") == "phase":
            # A new bar per phase: rich cannot set a total back to unknown, and a phase without one
            # (loading, the guard) must not show the previous phase's count.
            self.steps.remove_task(task)
            self.step_tasks[job.key] = self.steps.add_task(f"{self._name(job)}: {escape(str(event['phase']))}",
                                                           total=event.get("total"), loss="")
        elif event.get("event") == "warning" and self.live:
            self.live.console.print(f"[yellow]warning:[/] {escape(job.spec.label)}: {escape(event['message'])}", highlight=False)
        elif event.get("event") == "progress":  # evaluation: more test examples answered
            self.steps.advance(task, event.get("advance", 0))
        elif event.get("event") == "step":
            self.steps.update(task, completed=event["step"], total=event["total"],
                              loss=f"loss {event['loss']:.3f}")

    def finish(self, job: CellJob, record: dict[str, Any]) -> None:
        status = record.get("status", "failed")
        headline = record.get("headline") or {}
        value = headline.get("value")
        detail = f"{headline.get('metric')} {value:.4g}" if isinstance(value, (int, float)) else (record.get("error") or "")
        seconds = time.perf_counter() - self.cell_started.pop(job.key, time.perf_counter())
        if self.parallel and job.key in self.step_tasks:  # side by side: a finished cell's bar makes room
            self.steps.remove_task(self.step_tasks.pop(job.key))
        message = (f"[{_STATUS_STYLE.get(status, 'red')}]{status:>14}[/] {self._name(job)}  {escape(detail)}"
                   f"  ({seconds:.0f} s)")
        if self.live:
            self.live.console.print(message, highlight=False)
        if self.cells_task is not None:
            self.cells.advance(self.cells_task)

    def close(self) -> None:
        if self.live:
            self.live.stop()
            self.live = None
